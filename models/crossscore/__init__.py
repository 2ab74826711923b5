"""CrossScore (reference-based): per-pixel SSIM maps of a render, predicted from real photos of other viewpoints.

    from models.crossscore import CrossScore
    cs = CrossScore.from_checkpoint()          # the committed demo model examples/.crossscore-demo.pth
    m = cs.predict(render, [ref1, ref2])       # (H', W') float32 map in [0, 1]; arrays or image paths

Modules:
    network      the model: DINOv2 backbone, positional table, cross-reference decoder, patch head, jigsaw
    checkpoint   our checkpoint folder / one-file format and upstream's Lightning file, loaded without running code
    data         images, the reference rule, predict-time sizing, dataset layouts, SSIM targets, batches
    evaluate     predictors (network, constant map), per-image rows, summary tables, upstream's test metrics
    scorer       CrossScore, the API object: maps of renders given as arrays or files
    options      the options of every crossscore.py subcommand (no torch: --help stays fast)
    predict      what crossscore.py predict and test run: find the files, score, write maps and figures
    train        training, exact resume, DDP
    figures      turbo score maps, float maps, summary and attention figures
    demo         the offline demo dataset made from examples/
"""

from typing import Any

__all__ = ["CrossScore"]


def __getattr__(name: str) -> Any:
    # resolved on first use: `crossscore.py --help` imports this package and must not load torch
    if name == "CrossScore":
        from models.crossscore.scorer import CrossScore

        return CrossScore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
