"""Evaluation protocols as data: named presets that reproduce what a paper's or a tool's evaluation computed.

A preset fixes everything that changes the numbers: how pixels become [0, 1] floats (clipping, 8-bit quantisation
and its rounding), which metrics with which options (SSIM window, padding, variance clamp, data range; LPIPS
backbone, version, input scaling), and how per-image values are averaged. ``Protocol.describe()`` returns all of
it for results files. The evidence for each preset (source file and commit, the test that checks it) is in
docs/fullref.md.

RGBA renders and ground truth are handled as each tool does (``Protocol.background``, :func:`background_of`):
NerfBaselines and nerfstudio composite them onto a background before scoring, in float32, ``rgb·a + (1 − a)·bg``
(then the preset's quantisation); 3DGS drops the alpha channel (``[:3]``). A greyscale image is replicated to RGB.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
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
Background = tuple[int, int, int]  # 0-255 per channel, as NerfBaselines' uint8 background_color
BACKGROUNDS: dict[str, Background] = {"white": (255, 255, 255), "black": (0, 0, 0)}
DROP_ALPHA = "alpha channel dropped (colour channels as stored, as 3DGS' [:3])"
Compositing = Literal["float", "uint8"]
COMPOSITING_RULES: dict[str, str] = {
    "float": "RGBA composited onto background {bg} in float32: rgb·a + (1 − a)·bg/255 with rgb, a = stored/255 "
             "(NerfBaselines image_to_srgb, nerfstudio InputDataset.get_image_float32), then quantised as above",
    "uint8": "RGBA composited onto background {bg} on the 0-255 scale in float32: rgb·(a/255) + 255·(bg/255)·(1 − "
             "a/255), truncated to uint8 (nerfstudio InputDataset.get_image_uint8, splatfacto's uint8 image cache)",
}  # fmt: skip
AVERAGING = ("mean of per-image values; an infinite value (the PSNR of an exact copy) makes the mean infinite, as "
             "NerfBaselines (np.mean), torchmetrics and 3DGS (torch mean) report it; an undefined (NaN) value is left "
             "out and counted")
NB = "nerfbaselines/nerfbaselines@cde53bda"
NS = "nerfstudio-project/nerfstudio@50e0e3c7 (1.1.5)"
GS = "graphdeco-inria/gaussian-splatting"


@dataclass(frozen=True)
class Reduced:
    """A metric's dataset value (NaN when no value is defined), how many per-image values it averages, and the
    positions of the undefined (NaN) values left out."""

    value: float
    used: int
    undefined: tuple[int, ...] = ()


def average(values: Sequence[float]) -> Reduced:
    """Every preset's averaging (:data:`AVERAGING`): the mean of the defined per-image values, infinite when one
    of them is (+inf and -inf together: NaN)."""
    a = np.asarray(values, np.float64)
    undefined = tuple(int(i) for i in np.flatnonzero(np.isnan(a)))
    kept = a[~np.isnan(a)]
    if not len(kept):
        return Reduced(float("nan"), 0, undefined)
    with np.errstate(invalid="ignore"):
        return Reduced(float(np.mean(kept)), len(kept), undefined)


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
    background: Background | None = None  # RGBA composited onto it; None: alpha dropped
    background_why: str = "3DGS' metrics.py reads renders and ground truth with [:3]"
    compositing: Compositing = "float"  # how (:data:`COMPOSITING_RULES`)

    def prepare(self, arr: np.ndarray) -> np.ndarray:
        """An (H, W, 3) or RGBA (H, W, 4) uint8, uint16 or float image as the protocol's float32 values in [0, 1]
        (RGBA composited onto :attr:`background`, or its alpha dropped when that is None)."""
        if arr.shape[-1] == 4:
            if self.background is None:
                arr = arr[..., :3]
            elif self.compositing == "uint8" and arr.dtype == np.uint8:
                arr = composite_uint8(arr, self.background)
            else:
                return self._quantize(composite(arr, self.background))
        if arr.dtype == np.uint8:
            return arr.astype(np.float32) / 255.0  # exact: every quantisation rule leaves k/255 as it is
        return self._quantize(arr.astype(np.float32) / 65535.0 if arr.dtype == np.uint16 else arr.astype(np.float32))

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        """Float32 values as the protocol's 8-bit quantisation leaves them (:data:`QUANTIZE_RULES`)."""
        if self.quantize == "floor":
            return np.clip(x * 255.0, 0, 255).astype(np.uint8).astype(np.float32) / 255.0
        if self.quantize == "round":
            return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8).astype(np.float32) / 255.0
        return np.clip(x, 0.0, 1.0)

    @property
    def alpha_rule(self) -> str:
        """What happens to an alpha channel under this protocol, in words."""
        if self.background is None:
            return DROP_ALPHA
        return COMPOSITING_RULES[self.compositing].format(bg=",".join(map(str, self.background)))

    def describe(self) -> dict[str, Any]:
        """The preset and every input rule, for results files (metric options come from the metric objects)."""
        return {"preset": self.name, "about": self.about, "source": list(self.source),
                "inputs": {"quantize": self.quantize, "rule": QUANTIZE_RULES[self.quantize], "alpha": self.alpha_rule,
                           "background": None if self.background is None else list(self.background),
                           "background_why": self.background_why,
                           "greyscale": "replicated to RGB", "colour": "sRGB values as stored, RGB order"},
                "averaging": AVERAGING, "notes": list(self.notes)}

    def reduce(self, values: Sequence[float]) -> Reduced:
        """The dataset value of one metric from its per-image values, by the protocol's averaging
        (:data:`AVERAGING`): the report and :meth:`FullReference.mean` both use this one rule."""
        return average(values)

    def with_background(self, background: str | Sequence[int] | None) -> Protocol:
        """This protocol with RGBA composited onto ``background`` (:func:`background_of`); None: as the preset."""
        if background is None:
            return self
        return replace(self, background=background_of(background), background_why="set by the background parameter")


def background_of(value: str | Sequence[int]) -> Background:
    """``"white"``, ``"black"``, ``"R,G,B"`` (0-255 each) or a sequence of three such integers, as an RGB triple; an
    :class:`InputError` naming ``background`` otherwise."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in BACKGROUNDS:
            return BACKGROUNDS[text]
        parts = text.split(",")
        ok = len(parts) == 3 and all(p.strip().isdigit() for p in parts)
        rgb: tuple = tuple(int(p) for p in parts) if ok else ()
    else:
        rgb = tuple(value)
        ok = len(rgb) == 3 and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in rgb)
    if not ok or not all(0 <= v <= 255 for v in rgb):
        raise InputError(f"background={value!r}: choose white, black or R,G,B with each of R, G, B in 0-255 "
                         "(e.g. 255,255,255)")
    return (int(rgb[0]), int(rgb[1]), int(rgb[2]))


def composite(arr: np.ndarray, background: Background) -> np.ndarray:
    """An RGBA image (uint8, uint16 or float in [0, 1]) composited onto ``background`` as NerfBaselines'
    ``image_to_srgb`` and nerfstudio's ``get_image_float32`` do it, in float32: ``rgb·a + (1 − a)·bg`` with
    ``rgb, a`` = stored / 255 (65535 for uint16) and ``bg`` = background / 255. Returns float32 (H, W, 3)."""
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(arr.dtype)
    x = arr.astype(np.float32) / scale if scale is not None else arr.astype(np.float32)
    alpha = x[..., 3:]
    out = x[..., :3] * alpha
    out += (1 - alpha) * (np.asarray(background, np.float32) / 255.0)
    return out


def composite_uint8(arr: np.ndarray, background: Background) -> np.ndarray:
    """A uint8 RGBA image composited onto ``background`` as nerfstudio's ``get_image_uint8`` does it: in float32 on
    the 0-255 scale, ``rgb·(a/255) + (255·bg)·(1 − a/255)`` with ``bg`` = background / 255, clamped to [0, 255] and
    truncated to uint8 (H, W, 3)."""
    x = arr.astype(np.float32)
    a = x[..., 3:] / 255.0
    bg = 255.0 * (np.asarray(background, np.float32) / 255.0)
    return np.clip(x[..., :3] * a + bg * (1.0 - a), 0, 255).astype(np.uint8)


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
              f"{NS}: nerfstudio/pipelines/base_pipeline.py (get_average_image_metrics)",
              f"{NS}: nerfstudio/data/dataparsers/blender_dataparser.py (alpha_color='white'), "
              "nerfstudio/data/datasets/base_dataset.py (get_image_float32)")
_NS_BG = dict(background=BACKGROUNDS["white"],
              background_why="nerfstudio's Blender dataparser: alpha_color='white', composited when the dataset is "
                             "read (get_image_float32), before the model sees the ground truth; other dataparsers "
                             "leave RGBA to the model: pass the background that model uses")
_NB_BLACK = dict(background=BACKGROUNDS["black"],
                 background_why="NerfBaselines' image_to_srgb with the dataset's background_color, which the default "
                                "protocol's datasets (colmap, bundler) do not set: black")

PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (
    Protocol(
        "nerfbaselines", "NerfBaselines 'default' protocol (colmap/bundler datasets)",
        (f"{NB}: nerfbaselines/evaluation.py (DefaultEvaluationProtocol, compute_metrics)",
         f"{NB}: nerfbaselines/metrics.py (psnr, ssim = dm_pix copy, mae, mse, lpips)",
         f"{NB}: nerfbaselines/utils.py (image_to_srgb, convert_image_dtype)"),
        "floor", _NB,
        ("SSIM is dm_pix's: valid window, variances >= float32 eps², covariance clipped to ±sqrt(var·var)",
         "lpips = LPIPS v0.1 AlexNet on [0, 1] scaled to [-1, 1] (NerfBaselines' copy of lpips 0.1)"), **_NB_BLACK),
    Protocol(
        "nerfbaselines-nerf", "NerfBaselines 'nerf' protocol (blender, llff, mipnerf360 datasets): default + VGG LPIPS",
        (f"{NB}: nerfbaselines/evaluation.py (NerfEvaluationProtocol: _lpips_vgg = True)",
         f"{NB}: nerfbaselines/_registry.py (which dataset uses which protocol)",
         f"{NB}: nerfbaselines/datasets/blender.py (background_color [255, 255, 255])"),
        "floor", {**_NB, "lpips_vgg": MetricRef("lpips-vgg")},
        ("as 'nerfbaselines', plus lpips_vgg = LPIPS v0.1 VGG16 on [0, 1] scaled to [-1, 1]",),
        background=BACKGROUNDS["white"],
        background_why="NerfBaselines' Blender loader sets background_color [255, 255, 255]; the protocol's other "
                       "datasets (llff, mipnerf360) have no alpha"),
    Protocol(
        "nerfstudio-nerfacto", "nerfstudio ns-eval of nerfacto (and other models using torchmetrics' SSIM), "
        "torchmetrics >= 1.5",
        _NS_SOURCE + ("Lightning-AI/torchmetrics 1.5.0 .. 1.9.0: functional/image/ssim.py (PR #2721)",),
        "none",
        {"psnr": MetricRef("psnr"), "ssim": MetricRef("ssim", {"padding": "reflect", "clamp": "variance",
                                                               "data_range": "auto"}), "lpips": _NS_LPIPS},
        ("SSIM: torchmetrics' functional default: data_range=None = max(range(render), range(gt)) of the one image; "
         "reflect padding, the full-size map averaged (torchmetrics >= 1.5); variances clamped at 0",
         *_NS_NOTES), **_NS_BG),
    Protocol(
        "nerfstudio-nerfacto-tm14", "nerfstudio ns-eval of nerfacto with torchmetrics <= 1.4 (results before "
        "September 2024)",
        _NS_SOURCE + ("Lightning-AI/torchmetrics 1.4.0: functional/image/ssim.py (reflect pad, then crop = valid)",),
        "none",
        {"psnr": MetricRef("psnr"), "ssim": MetricRef("ssim", {"padding": "valid", "clamp": "variance",
                                                               "data_range": "auto"}), "lpips": _NS_LPIPS},
        ("SSIM: as 'nerfstudio-nerfacto' but the map is cropped to the valid window (torchmetrics <= 1.4; 1.0-1.3 "
         "did not clamp variances, which moves values by float rounding only)", *_NS_NOTES), **_NS_BG),
    Protocol(
        "nerfstudio-splatfacto", "nerfstudio ns-eval of splatfacto (pytorch_msssim SSIM)",
        (f"{NS}: nerfstudio/models/splatfacto.py (get_image_metrics_and_images)",
         f"{NS}: nerfstudio/pipelines/base_pipeline.py (get_average_image_metrics)",
         "pytorch_msssim 1.0.0: ssim.py (SSIM(data_range=1.0, size_average=True, channel=3))", *_NS_SOURCE[2:]),
        "none",
        {"psnr": MetricRef("psnr"), "ssim": MetricRef("ssim", {"padding": "valid", "clamp": "none"}),
         "lpips": _NS_LPIPS},
        ("SSIM: pytorch_msssim, data_range 1, valid window, no clamping, mean of per-channel SSIMs", *_NS_NOTES),
        **_NS_BG, compositing="uint8"),
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
        ("LPIPS-alex and DISTS are calibrated on pyiqa's official values (tests/fullref/test_calibration.py)",),
        background_why="the toolkit's rule for images: alpha dropped (pass background to composite)"),
)}


def get(name: str) -> Protocol:
    """The preset ``name``; an unknown one is an :class:`InputError` listing them."""
    if name not in PROTOCOLS:
        raise InputError(f"preset={name!r}: unknown; choose one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]
