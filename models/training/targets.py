"""What a training pair is degraded with and scored by: the recipes, the noises and the five targets.

:class:`Recipe` / :data:`RECIPES` are the one place that holds every difference between the authors' training
code (``--recipe upstream``) and the paper's description (``--recipe paper``); :func:`apply_noise` (paper) and
:func:`noise_frame_upstream` (upstream) are the noise keys 0–11 (NOISES). pairs.py builds the pairs with them
(and re-exports these names); the loop reads the encoder batching and AMP from the recipe.

The five targets are defined here, one pair at a time (:func:`pair_targets`, the reference definition); the
training loop, its validation and ``--preview`` compute them batched on the training device with
:func:`models.training.device_targets.batch_targets`, which is tested against :func:`pair_targets`.

Full-reference quality targets, each mapped to [−1, 1] (1 = same quality).

Five targets per training pair (sequence 1 = reference, sequence 2 = test), in head order (TARGETS):

====  ==========  =================================================  ==========================================
head  name        raw value                                          mapping to [−1, 1]
====  ==========  =================================================  ==========================================
0     ssim        mean per-frame SSIM (Gaussian 11/1.5, C1=0.01²,    ``clamp(((s + 1) / 2) · 5 − 4, −1, 1)``
                  C2=0.03², frames in [0, 1], 'valid' window)
1     psnr        mean per-frame PSNR in dB (frames in [0, 1])       clamp to [10, 40], linear to [−1, 1]
2     replace     replace ratio r ∈ [0.5, 1]                         ``1 − 2r``
3     strred      ST-RRED of the luminance (models/strred.py)        clamp to [0, 15], linear to [1, −1]
4     fvvdp       FovVideoVDP JOD (pyfvvdp, standard_fhd, 30 fps)    clamp to [0, 10], linear to [−1, 1]
====  ==========  =================================================  ==========================================

That table is ``--recipe paper``. Under ``--recipe upstream`` (the authors' ``qa_methods.py``) SSIM uses zero
padding (a full-size map) and SSIM and PSNR are mapped per frame and then averaged (identical frames: PSNR
+inf → 40 → +1), and ST-RRED sees luminance in [0, 1]. (Upstream gives FovVideoVDP float frames in [0, 1];
pyfvvdp returns the same JOD for those as for the uint8 frames used here.)

SSIM and PSNR come from :mod:`models.ssim` (the one implementation, CrossScore's too); FovVideoVDP from
:mod:`models.fullref.fvvdp` (the report's too), optional at run time: without ``pyfvvdp`` importable, asking for it
raises a one-line :class:`InputError`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from models.errors import InputError
from models.fullref.fvvdp import FovVideoVDP
from models.ssim import psnr, ssim_map
from models.training.strred import strred

log = logging.getLogger(__name__)

TARGETS = ("ssim", "psnr", "replace", "strred", "fvvdp")
SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2
PSNR_RANGE = (10.0, 40.0)
STRRED_RANGE = (0.0, 15.0)
JOD_RANGE = (0.0, 10.0)
LUMA_WEIGHTS = (0.2989, 0.5870, 0.1140)  # skvideo.utils.rgb2gray (BT.601), what upstream's ST-RRED saw
NOISES = ("gaussian", "salt_pepper", "speckle", "poisson", "multiplicative", "jpeg") + ("none",) * 6


def luminance(frames: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) RGB -> (..., H, W) luma with skvideo's weights, same scale as the input."""
    w = torch.tensor(LUMA_WEIGHTS, dtype=frames.dtype, device=frames.device)
    return (frames * w.view(3, 1, 1)).sum(-3)


# --------------------------------------------------------------------------------------------- recipes
@dataclass(frozen=True)
class Recipe:
    """Every way the authors' training code differs from the paper's description: one field per difference.

    ``RECIPES["upstream"]`` is what the authors' code does (spec, "What the upstream training code actually
    does", items 1–6); ``RECIPES["paper"]`` what the paper describes.
    """

    name: str
    # sequence 2: "all_or_nothing" = with probability floor(rL)/L all of it is m2's frames (own noise), else it *is*
    # sequence 1 (same noisy frames); "positions" = floor(rL) random positions replaced, own noise on all of it
    replacement: Literal["all_or_nothing", "positions"]
    # "batch": one crop size and segment length per batch (w, h drawn then clipped to the batch's smallest frame
    # minus crop_margin, L capped by the batch's shortest sequence); "pair": per pair, w, h uniform in the range
    crop: Literal["batch", "pair"]
    crop_margin: tuple[int, int] | None  # (x, y) margin in px; None: --crop-margin on both sides
    # "upstream": per frame on the full frame before crop/flip, upstream's parameters, truncation to uint8;
    # "paper": per sequence on the crop, skimage-like parameters, rounding (see apply_noise)
    noise: Literal["upstream", "paper"]
    ssim_padding: Literal["zero", "valid"]  # border rule of the SSIM target
    map_per_frame: bool  # SSIM and PSNR targets: map each frame's value, then average (else map the mean)
    strred_scale: float  # luminance scale of ST-RRED's input: 1.0 = [0, 1] (upstream), 255.0 = 0–255
    amp: bool  # mixed precision allowed on CUDA (upstream: fp32 only)
    # "frame_index": the view encoder runs once per frame index over the B pairs, each sequence separately
    # (BatchNorm over B frames); "pair": once per pair over its 2·T frames
    encoder_batching: Literal["frame_index", "pair"]
    # epoch checkpoints kept besides every --save-every-th and the last: upstream keeps epochs 1..4 too (spec item 6)
    keep_first_epochs: int = 0

    def __post_init__(self) -> None:
        # The pair builder implements these three together (sample_pair_upstream / sample_pair): no mixes.
        if not (self.replacement == "all_or_nothing") == (self.crop == "batch") == (self.noise == "upstream"):
            raise ValueError(f"recipe {self.name}: replacement, crop and noise must be all upstream or all paper")


RECIPES: dict[str, Recipe] = {
    "upstream": Recipe("upstream", replacement="all_or_nothing", crop="batch", crop_margin=(15, 5), noise="upstream",
                       ssim_padding="zero", map_per_frame=True, strred_scale=1.0, amp=False,
                       encoder_batching="frame_index", keep_first_epochs=4),
    "paper": Recipe("paper", replacement="positions", crop="pair", crop_margin=None, noise="paper",
                    ssim_padding="valid", map_per_frame=False, strred_scale=255.0, amp=True, encoder_batching="pair"),
}


def get_recipe(recipe: str | Recipe) -> Recipe:
    """The recipe named ``recipe`` (a :class:`Recipe` is returned as it is)."""
    if isinstance(recipe, Recipe):
        return recipe
    if recipe not in RECIPES:
        raise InputError(f"`recipe`={recipe}: unknown; choose one of {', '.join(RECIPES)}")
    return RECIPES[recipe]


# --------------------------------------------------------------------------------------------- noise
def apply_noise(frames: np.ndarray, key: int, rng: np.random.Generator, jpeg_quality: tuple[int, int]) -> np.ndarray:
    """Degrade (T, H, W, 3) uint8 frames with noise ``key`` (NOISES) on 0–255 values; returns uint8."""
    kind = NOISES[key]
    if kind == "none":
        return frames
    if kind == "jpeg":
        import cv2

        q = int(rng.integers(jpeg_quality[0], jpeg_quality[1] + 1))
        out = []
        for f in frames:
            ok, buf = cv2.imencode(".jpg", f[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
            out.append(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
        return np.ascontiguousarray(np.stack(out))
    x = frames.astype(np.float64)
    if kind == "gaussian":
        x = x + rng.normal(0.0, np.sqrt(0.1), x.shape)  # σ² = 0.1 on 0–255 values (spec)
    elif kind == "salt_pepper":  # 4 % of the values, half to 0, half to 255 (skimage's s&p, amount 0.04)
        hit = rng.random(x.shape) < 0.04
        x = np.where(hit, np.where(rng.random(x.shape) < 0.5, 0.0, 255.0), x)
    elif kind == "speckle":
        x = x + x * rng.normal(0.0, np.sqrt(0.01), x.shape)  # skimage's speckle default var 0.01
    elif kind == "poisson":
        x = rng.poisson(x).astype(np.float64)  # photon counts = the 0–255 values
    elif kind == "multiplicative":
        x = x * rng.normal(1.0, 0.05, x.shape)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def noise_frame_upstream(frame: np.ndarray, key: int, rng: np.random.Generator,
                         jpeg_quality: tuple[int, int]) -> np.ndarray:
    """The authors' noise on one full (H, W, 3) uint8 frame (spec item 3); returns uint8.

    0 Gaussian N(0, σ² = 0.1); 1 salt & pepper, amount 0.04 half and half, ceil(0.02·size) coordinates per kind
    drawn per axis *including the channel axis* as randint(0, n) (every index, upstream train_utils.py:388-397),
    salt value 1, pepper 0; 2 speckle x + x·N(0, 1); 3 Poisson with
    v = 2^ceil(log2 #unique values); 4 x·N(1, 0.05); 5 JPEG (PIL) quality randint[lo, hi] per frame; 6–11 none.
    After 0–4: clip to [0, 255], then truncation to uint8 (``astype``).
    """
    kind = NOISES[key]
    if kind == "none":
        return frame
    if kind == "jpeg":
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="JPEG", quality=int(rng.integers(jpeg_quality[0], jpeg_quality[1] + 1)))
        return np.asarray(Image.open(buf).convert("RGB"))
    return np.clip(noise_values_upstream(frame, key, rng), 0, 255).astype(np.uint8)


def noise_values_upstream(frame: np.ndarray, key: int, rng: np.random.Generator) -> np.ndarray:
    """Keys 0–4 of :func:`noise_frame_upstream` before the clip and truncation: float64 values."""
    kind = NOISES[key]
    x = frame.astype(np.float64)
    if kind == "gaussian":
        x = x + rng.normal(0.0, 0.1**0.5, x.shape)
    elif kind == "salt_pepper":
        for value in (1.0, 0.0):  # salt (value 1, as upstream), then pepper
            n = int(np.ceil(0.04 * x.size * 0.5))
            x[tuple(rng.integers(0, d, n) for d in x.shape)] = value  # train_utils.py: randint(0, i, n)
    elif kind == "speckle":
        x = x + x * rng.standard_normal(x.shape)
    elif kind == "poisson":
        v = 2 ** np.ceil(np.log2(len(np.unique(x))))
        x = rng.poisson(x * v) / float(v)
    elif kind == "multiplicative":
        x = x * rng.normal(1.0, 0.05, x.shape)
    else:
        raise ValueError(f"noise key {key} ({kind}) has no values before truncation")
    return x


# --------------------------------------------------------------------------------------------- mappings
def ssim_to_target(s: torch.Tensor | float) -> torch.Tensor:
    return torch.clamp(((torch.as_tensor(s, dtype=torch.float64) + 1) / 2) * 5 - 4, -1, 1)


def _linear(v: torch.Tensor | float, lo: float, hi: float, at_lo: float, at_hi: float) -> torch.Tensor:
    v = torch.as_tensor(v, dtype=torch.float64).clamp(lo, hi)
    return at_lo + (v - lo) * (at_hi - at_lo) / (hi - lo)


def psnr_to_target(p: torch.Tensor | float) -> torch.Tensor:
    return _linear(p, *PSNR_RANGE, -1.0, 1.0)


def replace_to_target(r: torch.Tensor | float) -> torch.Tensor:
    return 1 - 2 * torch.as_tensor(r, dtype=torch.float64)


def strred_to_target(v: torch.Tensor | float) -> torch.Tensor:
    return _linear(v, *STRRED_RANGE, 1.0, -1.0)


def jod_to_target(j: torch.Tensor | float) -> torch.Tensor:
    return _linear(j, *JOD_RANGE, -1.0, 1.0)


def ssim_target_per_frame(a: torch.Tensor, b: torch.Tensor, padding: str = "zero") -> torch.Tensor:
    """Upstream's SSIM target of (T, 3, H, W) frames in [0, 1]: each frame's mean SSIM (``padding`` border rule)
    mapped by :func:`ssim_to_target`, then the mean over frames."""
    return ssim_to_target(ssim_map(a, b, padding=padding).mean((1, 2, 3))).mean()


def psnr_target_per_frame(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Upstream's PSNR target of (T, 3, H, W) frames in [0, 1]: 20·log10(1/sqrt(mse)) per frame, clamped to
    [10, 40] and mapped to [−1, 1] per frame, then the mean (an identical frame gives +1)."""
    mse = (a.double() - b.double()).pow(2).mean((1, 2, 3))
    return psnr_to_target(20 * torch.log10(1 / torch.sqrt(mse))).mean()


# --------------------------------------------------------------------------------------------- all five
def pair_targets(
    seq1: torch.Tensor, seq2: torch.Tensor, replace_ratio: float, needed: tuple[bool, ...] = (True,) * 5,
    fvvdp: FovVideoVDP | None = None, timings: dict[str, float] | None = None, recipe: Recipe | None = None,
) -> np.ndarray:  # fmt: skip
    """The five targets in [−1, 1] of one pair: (T, 3, H, W) uint8 sequences; NaN where ``needed`` is False.

    The reference definition, one pair at a time: training, validation and the preview use
    :func:`models.training.device_targets.batch_targets` (batched, on the training device), which
    tests/training/test_device_targets.py holds to this function, and test_upstream_diff.py holds this one to the
    authors' code. ``timings`` (optional) receives the CPU seconds of this thread spent per target, for the
    per-target costs of ``make bench-train`` (CPU time: a loaded machine does not inflate it; with one torch thread
    it is the whole cost). ``recipe`` (a :class:`Recipe`; None = the paper's) picks the target details that differ.
    """
    recipe = recipe or RECIPES["paper"]
    out = np.full(len(TARGETS), np.nan, dtype=np.float32)
    a, b = seq1.float() / 255, seq2.float() / 255

    def timed(name: str, fn):  # noqa: ANN001, ANN202
        t0 = time.thread_time()
        v = fn()
        if timings is not None:
            timings[name] = timings.get(name, 0.0) + time.thread_time() - t0
        return v

    if needed[0] and recipe.map_per_frame:  # float64: upstream's formula without fp32 cancellation (~5e-6)
        out[0] = timed("ssim", lambda: float(ssim_target_per_frame(a.double(), b.double(), recipe.ssim_padding)))
    elif needed[0]:
        out[0] = timed("ssim", lambda: float(ssim_to_target(ssim_map(a, b, padding=recipe.ssim_padding)
                                                            .mean((1, 2, 3)).mean())))
    if needed[1]:
        out[1] = timed("psnr", lambda: float(psnr_target_per_frame(a, b) if recipe.map_per_frame
                                             else psnr_to_target(psnr(a, b).mean())))
    if needed[2]:
        out[2] = float(replace_to_target(replace_ratio))
    if needed[3]:
        k = recipe.strred_scale / 255
        out[3] = timed("strred", lambda: float(strred_to_target(strred(luminance(seq1.float() * k),
                                                                        luminance(seq2.float() * k)))))
    if needed[4]:
        metric = fvvdp or FovVideoVDP()
        out[4] = timed("fvvdp", lambda: float(jod_to_target(metric(seq2, seq1))))
    return out
