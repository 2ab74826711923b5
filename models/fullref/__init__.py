"""Full-reference metrics of renders against their ground truth (PSNR, SSIM, MS-SSIM, LPIPS, DISTS, FLIP), offline,
calibrated, and computed as a named protocol (NerfBaselines, nerfstudio, 3DGS) computes them.

    from models.fullref import FullReference, create
    fr = FullReference(preset="nerfbaselines")     # psnr, ssim, mae, mse, lpips as NerfBaselines reports them
    fr.compute("render.png", "gt.png")             # {"psnr": ..., "ssim": ..., "lpips": ...}
    create("dists")(render, gt)                    # one metric on (B, 3, H, W) tensors in [0, 1] -> (B,)

Modules:
    weights      fetch (pip, sha256-verified), convert and load the LPIPS v0.1 / DISTS weights (make setup)
    networks     AlexNet / VGG16 feature taps, LPIPS v0.1 and DISTS in plain torch
    metrics      the metric registry (name -> implementation + options) and create()
    protocols    the presets as data: input quantisation, metric options, averaging, sources
    inputs       image paths and arrays -> validated RGB arrays, one-line errors
    scorer       FullReference, the API object: compute, maps, compute_many, mean, describe
    fvvdp        FovVideoVDP (pyfvvdp): a reference-based video metric in JOD units, whole or per window
"""

from typing import Any

__all__ = ["PROTOCOLS", "FullReference", "create", "list_metrics"]


def __getattr__(name: str) -> Any:
    # resolved on first use: `python -m models.fullref.weights` (make setup) imports this package without the metrics
    if name == "FullReference":
        from models.fullref.scorer import FullReference

        return FullReference
    if name in ("create", "list_metrics"):
        from models.fullref import metrics

        return getattr(metrics, name)
    if name == "PROTOCOLS":
        from models.fullref.protocols import PROTOCOLS

        return PROTOCOLS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
