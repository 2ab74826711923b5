"""Evaluation protocols as data: named presets that reproduce what a paper's or a tool's evaluation computed.

A preset fixes everything that changes the numbers: how pixels become [0, 1] floats (clipping, 8-bit quantisation
and its rounding), which metrics with which options (SSIM window, padding, variance clamp, data range; LPIPS
backbone, version, input scaling), and how per-image values are averaged. ``Protocol.describe()`` returns all of
it for results files. The evidence for each preset (source file and commit, the test that checks it) is in
docs/fullref.md.

Every preset drops an alpha channel (the colour channels are used as stored, as the 3DGS protocol's ``[:3]``) and
replicates a greyscale image to RGB; NerfBaselines and nerfstudio instead composite RGBA onto the dataset's
background, so images with transparency must be composited before they are scored (a warning says so).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from models.errors import InputError

Quantize = Literal["none", "floor", "round"]
QUANTIZE_RULES: dict[str, str] = {
    "none": "float values clipped to [0, 1], not quantised",
    "floor": "clip to [0, 1], uint8 = trunc(x·255) in float32, then /255 (NerfBaselines' convert_image_dtype: it "
             "truncates although its comment says 'Round')",
    "round": "uint8 = trunc(clamp(x·255 + 0.5, 0, 255)) in float32, then /255 (torchvision save_image, which "
             "3DGS' render.py writes its PNGs with)",
}  # fmt: skip
ALPHA_RULE = ("an alpha channel is dropped (colour channels as stored, as 3DGS' [:3]); NerfBaselines and nerfstudio "
              "composite RGBA onto the dataset background, so composite such images before scoring")
AVERAGING = "mean of per-image values"
NB = "nerfbaselines/nerfbaselines@cde53bda"
NS = "nerfstudio-project/nerfstudio@50e0e3c7 (1.1.5)"
GS = "graphdeco-inria/gaussian-splatting"


@dataclass(frozen=True)
class MetricRef:
    """One reported metric: a registry name of :mod:`models.fullref.metrics` and the options that differ from its
    defaults."""

    metric: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Protocol:
    """A named evaluation protocol. ``metrics``: the keys its results use (the tool's own column names) ->
    metric; ``quantize``: how float inputs become 8-bit first (:data:`QUANTIZE_RULES`); integer inputs are already
    8-bit (or 16-bit: scaled to [0, 1], then quantised like floats)."""

    name: str
    about: str
    source: tuple[str, ...]
    quantize: Quantize
    metrics: Mapping[str, MetricRef]
    notes: tuple[str, ...] = ()

    def prepare(self, arr: np.ndarray) -> np.ndarray:
        """An (H, W, 3) uint8, uint16 or float image as the protocol's float32 values in [0, 1]."""
        if arr.dtype == np.uint8:
            return arr.astype(np.float32) / 255.0  # exact: every quantisation rule leaves k/255 as it is
        x = arr.astype(np.float32) / 65535.0 if arr.dtype == np.uint16 else arr.astype(np.float32)
        if self.quantize == "floor":
            return np.clip(x * 255.0, 0, 255).astype(np.uint8).astype(np.float32) / 255.0
        if self.quantize == "round":
            return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8).astype(np.float32) / 255.0
        return np.clip(x, 0.0, 1.0)

    def describe(self) -> dict[str, Any]:
        """The preset and every input rule, for results files (metric options come from the metric objects)."""
        return {"preset": self.name, "about": self.about, "source": list(self.source),
                "inputs": {"quantize": self.quantize, "rule": QUANTIZE_RULES[self.quantize], "alpha": ALPHA_RULE,
                           "greyscale": "replicated to RGB", "colour": "sRGB values as stored, RGB order"},
                "averaging": AVERAGING, "notes": list(self.notes)}


_NB_SSIM = MetricRef("ssim", {"clamp": "dm_pix"})
_NB = {"psnr": MetricRef("psnr"), "ssim": _NB_SSIM, "mae": MetricRef("mae"), "mse": MetricRef("mse"),
       "lpips": MetricRef("lpips-alex")}
_NS_LPIPS = MetricRef("lpips-alex", {"feature_norm": "torchmetrics"})
_NS_NOTES = ("the render is clamped to [0, 1] (RGBRenderer in eval) and not quantised; the ground truth is the "
             "dataset's uint8 image / 255",
             "PSNR per image: torchmetrics PeakSignalNoiseRatio(data_range=1.0) is called on one image at a time",
             "LPIPS: torchmetrics LearnedPerceptualImagePatchSimilarity(normalize=True): AlexNet, v0.1, [0, 1] "
             "scaled to [-1, 1], features normalised as x / sqrt(sum x² + 1e-8)")
_NS_SOURCE = (f"{NS}: nerfstudio/models/nerfacto.py (get_image_metrics_and_images)",
              f"{NS}: nerfstudio/pipelines/base_pipeline.py (get_average_image_metrics)")

PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (
    Protocol(
        "nerfbaselines", "NerfBaselines 'default' protocol (colmap/bundler datasets)",
        (f"{NB}: nerfbaselines/evaluation.py (DefaultEvaluationProtocol, compute_metrics)",
         f"{NB}: nerfbaselines/metrics.py (psnr, ssim = dm_pix copy, mae, mse, lpips)",
         f"{NB}: nerfbaselines/utils.py (image_to_srgb, convert_image_dtype)"),
        "floor", _NB,
        ("SSIM is dm_pix's: valid window, variances >= float32 eps², covariance clipped to ±sqrt(var·var)",
         "lpips = LPIPS v0.1 AlexNet on [0, 1] scaled to [-1, 1] (NerfBaselines' copy of lpips 0.1)")),
    Protocol(
        "nerfbaselines-nerf", "NerfBaselines 'nerf' protocol (blender, llff, mipnerf360 datasets): default + VGG LPIPS",
        (f"{NB}: nerfbaselines/evaluation.py (NerfEvaluationProtocol: _lpips_vgg = True)",
         f"{NB}: nerfbaselines/_registry.py (which dataset uses which protocol)"),
        "floor", {**_NB, "lpips_vgg": MetricRef("lpips-vgg")},
        ("as 'nerfbaselines', plus lpips_vgg = LPIPS v0.1 VGG16 on [0, 1] scaled to [-1, 1]",)),
    Protocol(
        "nerfstudio-nerfacto", "nerfstudio ns-eval of nerfacto (and other models using torchmetrics' SSIM), "
        "torchmetrics >= 1.5",
        _NS_SOURCE + ("Lightning-AI/torchmetrics 1.5.0 .. 1.9.0: functional/image/ssim.py (PR #2721)",),
        "none",
        {"psnr": MetricRef("psnr"), "ssim": MetricRef("ssim", {"padding": "reflect", "clamp": "variance",
                                                               "data_range": "auto"}), "lpips": _NS_LPIPS},
        ("SSIM: torchmetrics' functional default: data_range=None = max(range(render), range(gt)) of the one image; "
         "reflect padding, the full-size map averaged (torchmetrics >= 1.5); variances clamped at 0",
         *_NS_NOTES)),
    Protocol(
        "nerfstudio-nerfacto-tm14", "nerfstudio ns-eval of nerfacto with torchmetrics <= 1.4 (results before "
        "September 2024)",
        _NS_SOURCE + ("Lightning-AI/torchmetrics 1.4.0: functional/image/ssim.py (reflect pad, then crop = valid)",),
        "none",
        {"psnr": MetricRef("psnr"), "ssim": MetricRef("ssim", {"padding": "valid", "clamp": "variance",
                                                               "data_range": "auto"}), "lpips": _NS_LPIPS},
        ("SSIM: as 'nerfstudio-nerfacto' but the map is cropped to the valid window (torchmetrics <= 1.4; 1.0-1.3 "
         "did not clamp variances, which moves values by float rounding only)", *_NS_NOTES)),
    Protocol(
        "nerfstudio-splatfacto", "nerfstudio ns-eval of splatfacto (pytorch_msssim SSIM)",
        (f"{NS}: nerfstudio/models/splatfacto.py (get_image_metrics_and_images)",
         f"{NS}: nerfstudio/pipelines/base_pipeline.py (get_average_image_metrics)",
         "pytorch_msssim 1.0.0: ssim.py (SSIM(data_range=1.0, size_average=True, channel=3))"),
        "none",
        {"psnr": MetricRef("psnr"), "ssim": MetricRef("ssim", {"padding": "valid", "clamp": "none"}),
         "lpips": _NS_LPIPS},
        ("SSIM: pytorch_msssim, data_range 1, valid window, no clamping, mean of per-channel SSIMs", *_NS_NOTES)),
    Protocol(
        "3dgs", "3D Gaussian Splatting's metrics.py on the PNGs render.py wrote",
        (f"{GS}@15d64e67: metrics.py (readImages, evaluate), utils/image_utils.py (psnr)",
         f"{GS}@ad8f3a12: utils/loss_utils.py (ssim)", f"{GS}@cf407e83: lpipsPyTorch/ (lpips)",
         f"{GS}@1152adc9: render.py (torchvision.utils.save_image)"),
        "round",
        {"psnr": MetricRef("psnr"), "ssim": MetricRef("ssim", {"padding": "zero"}),
         "lpips": MetricRef("lpips-vgg", {"scale_input": False})},
        ("LPIPS is NOT standard LPIPS-VGG: lpipsPyTorch feeds the [0, 1] images to a network made for [-1, 1] (no "
         "2x-1 step; graphdeco-inria/gaussian-splatting issue #1239); reproduced faithfully",
         "SSIM: zero padding, same-size map averaged over channels and pixels, no clamping",
         "renders are 8-bit PNGs (save_image rounds half up); alpha dropped by [:3]")),
    Protocol(
        "reference", "every metric by its reference definition on float inputs (pyiqa-style), no quantisation",
        ("docs/fullref.md (metric registry)",),
        "none",
        {name: MetricRef(name) for name in ("psnr", "ssim", "ms-ssim", "lpips-alex", "lpips-vgg", "dists", "flip")},
        ("LPIPS-alex and DISTS are calibrated on pyiqa's official values (tests/fullref/test_calibration.py)",)),
)}


def get(name: str) -> Protocol:
    """The preset ``name``; an unknown one is an :class:`InputError` listing them."""
    if name not in PROTOCOLS:
        raise InputError(f"preset={name!r}: unknown; choose one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]
