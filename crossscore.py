"""CrossScore: where is a render wrong? Per-pixel SSIM maps predicted from real photos of other viewpoints.

    python crossscore.py predict render.png --references photos/         # or a folder of renders
    python crossscore.py predict renders/ --references photos/ --gt gt/  # also the true SSIM maps
    python crossscore.py train --data DATASET --backbone tiny --name my-run
    python crossscore.py test  --data DATASET --checkpoint my-run/model     # = runs/my-run/model
    python crossscore.py demo-data                                        # the offline training set

Default model: the committed offline demo model examples/.crossscore-demo.pth (`make crossscore-demo` re-makes
it); the upstream CrossScore-v1.0.0.ckpt loads with --checkpoint. In Python: models.crossscore.CrossScore.
Exit code: 0 done, 2 bad input (one error line).
"""

from __future__ import annotations

import re
import sys
from dataclasses import fields
from typing import Any

from models import cli
from models.crossscore.options import (
    CrossScoreTrainConfig,
    DemoDataConfig,
    PredictConfig,
    TestConfig,
    locate_checkpoints,
)
from models.crossscore.predict import (
    SCORE_HELP,
    TEST_COLUMNS,
    predict_maps,
    score_dataset,
)
from models.errors import InputError
from models.results import table, write_csv, write_json

# subcommand -> (its config, its one-line help)
COMMANDS: dict[str, tuple[type, str]] = {
    "predict": (PredictConfig, "score maps for rendered images, given real reference photos"),
    "test": (TestConfig, "L1, PSNR, pixel Pearson and SRCC on a dataset with ground truth"),
    "train": (CrossScoreTrainConfig, "train (or resume) runs/<name>/"),
    "demo-data": (DemoDataConfig, "build the offline training set from examples/"),
}


def parse_args(argv: list[str] | None = None) -> Any:
    """The config of the subcommand in ``argv`` (a PredictConfig, TestConfig, CrossScoreTrainConfig or
    DemoDataConfig)."""
    return cli.parse_subcommand(COMMANDS, argv, description=__doc__.split("\n")[0], epilog=SCORE_HELP)


def run_predict(cfg: PredictConfig) -> int:
    r = predict_maps(cfg)  # each batch is merged into --out as it is done
    print(table(r.rows, ["image", "pred_ssim", "true_ssim", "width", "height", "working_width", "working_height"]))
    extra = "attention/, " if cfg.attention else ""
    print(f"{SCORE_HELP}; maps at the render's size (made at the working size shown, then resampled)\nwrote maps/, "
          f"figures/, {extra}scores.csv, scores_upstream.csv (upstream's columns), scores.json to {r.out}")
    return 0


def run_test(cfg: TestConfig) -> int:
    r = score_dataset(cfg)
    write_csv(r.out / "per_image.csv", r.rows, [k for k in r.rows[0] if not k.startswith("_")])  # _: pixel sums
    write_csv(r.out / "summary.csv", r.summary, TEST_COLUMNS)
    write_json(r.out / "summary.json", {**r.meta, "rows": r.summary})
    print(table(r.summary, TEST_COLUMNS))
    print("L1 and PSNR (= -10·log10(L1²)) of the maps, mean per-image pixel Pearson, SRCC of per-image means; "
          "upstream_*: upstream's test metrics (batches of 24, Pearson pooled over a batch's pixels; quote these "
          f"against the paper); wrote per_image.csv, summary.csv, summary.json to {r.out}")
    return 0


def run_train(cfg: CrossScoreTrainConfig) -> int:
    from models.crossscore.train import train_crossscore  # torch: imported only to run, not for --help

    print(f"model written to {train_crossscore(cfg)}")
    return 0


def run_demo_data(cfg: DemoDataConfig) -> int:
    from models.crossscore.demo import build_demo_dataset

    print(f"demo dataset written to {cfg.out}: {build_demo_dataset(cfg)}")
    return 0


RUNNERS = {PredictConfig: run_predict, TestConfig: run_test, CrossScoreTrainConfig: run_train,
           DemoDataConfig: run_demo_data}


# the library's parameter names that differ from the config fields they come from
PARAMETERS = {"render": "query", "patches": "attention", "head": "attn_head"}


def as_flags(message: str, cfg: Any) -> str:
    """A library error in this subcommand's flags (``precision=fp8: ...`` -> ``--precision fp8: ...``). A message
    that starts with a value the user typed (a folder named like a parameter, ``data: ...``) is left as it is."""
    flags = cli.flags_of(type(cfg))
    flags |= {p: flags[f] for p, f in PARAMETERS.items() if f in flags}
    typed = {str(getattr(cfg, f.name)) for f in fields(cfg)}
    m = re.match(r"(\w+):", message)
    return message if m and m[1] in typed else cli.as_flags(message, flags)


def run(cfg: Any) -> int:
    """Run the subcommand whose config ``cfg`` is; returns the exit code."""
    locate_checkpoints(cfg)  # --checkpoint/--init: a path, else a name under checkpoints/ or runs/
    try:
        return RUNNERS[type(cfg)](cfg)
    except InputError as e:
        raise InputError(as_flags(str(e), cfg)) from None


def main(argv: list[str] | None = None) -> int:
    return cli.main(parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
