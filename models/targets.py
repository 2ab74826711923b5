"""Full-reference quality targets of the self-supervised recipe, each mapped to [−1, 1] (1 = same quality).

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

``ssim_map`` is the general per-pixel SSIM (B, C, H, W) used by CrossScore as well. FovVideoVDP is
optional at run time: without ``pyfvvdp`` importable, asking for it raises a one-line :class:`InputError`.
"""

from __future__ import annotations

import functools
import logging
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from models.frames import InputError
from models.strred import strred

log = logging.getLogger(__name__)

TARGETS = ("ssim", "psnr", "replace", "strred", "fvvdp")
SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2
PSNR_RANGE = (10.0, 40.0)
STRRED_RANGE = (0.0, 15.0)
JOD_RANGE = (0.0, 10.0)
FVVDP_DISPLAY = "standard_fhd"
FVVDP_FPS = 30.0
LUMA_WEIGHTS = (0.2989, 0.5870, 0.1140)  # skvideo.utils.rgb2gray (BT.601), what upstream's ST-RRED saw


# --------------------------------------------------------------------------------------------- SSIM / PSNR
@functools.cache
def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Normalised 1-d Gaussian (size,), float64 (cast where used)."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _blur(x: torch.Tensor, win: torch.Tensor) -> torch.Tensor:
    """Separable depthwise Gaussian filter of (B, C, H, W), 'valid' (no padding)."""
    c = x.shape[1]
    k = win.to(x.dtype).to(x.device)
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def ssim_map(
    a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0,
    padding: Literal["valid", "reflect", "zero"] = "reflect",
    win_size: int = 11, sigma: float = 1.5,
) -> torch.Tensor:  # fmt: skip
    """Per-pixel SSIM of (B, C, H, W) float images in [0, data_range]: Gaussian window, C1=(0.01·L)², C2=(0.03·L)².

    ``padding="reflect"`` returns a map of the input size (borders from reflected neighbours, for per-pixel
    targets); ``"zero"`` too, with zero padding (the pytorch-ssim recipe CrossScore's targets use);
    ``"valid"`` returns the (H − 10, W − 10) interior only (the usual convention for a mean SSIM).
    Computed in float32 at least (float64 inputs stay float64).
    """
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"ssim_map: expected two (B, C, H, W) tensors of one shape, got {tuple(a.shape)}, "
                         f"{tuple(b.shape)}")
    dtype = torch.float64 if a.dtype == torch.float64 else torch.float32
    a, b = a.to(dtype), b.to(dtype)
    if padding in ("reflect", "zero"):
        p, mode = win_size // 2, "reflect" if padding == "reflect" else "constant"
        a, b = F.pad(a, (p, p, p, p), mode=mode), F.pad(b, (p, p, p, p), mode=mode)
    win = gaussian_window(win_size, sigma)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    n = a.shape[0]
    # one filter call for the five moments
    mu_a, mu_b, aa, bb, ab = _blur(torch.cat([a, b, a * a, b * b, a * b]), win).split(n)
    var_a, var_b, cov = aa - mu_a**2, bb - mu_b**2, ab - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM per image of (B, C, H, W) -> (B,), 'valid' window (frames must be at least 11×11)."""
    return ssim_map(a, b, data_range, padding="valid").mean((1, 2, 3))


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR in dB per image of (B, C, H, W) -> (B,); identical images give +inf (clamped by the mapping)."""
    mse = (a.double() - b.double()).pow(2).mean((1, 2, 3))
    return 10 * torch.log10(data_range**2 / mse)


def luminance(frames: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) RGB -> (..., H, W) luma with skvideo's weights, same scale as the input."""
    w = torch.tensor(LUMA_WEIGHTS, dtype=frames.dtype, device=frames.device)
    return (frames * w.view(3, 1, 1)).sum(-3)


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


# --------------------------------------------------------------------------------------------- FovVideoVDP
class FovVideoVDP:
    """pyfvvdp's FovVideoVDP (display ``standard_fhd``, 30 fps) on uint8 sRGB sequences; built on first use."""

    def __init__(self, device: str | torch.device = "cpu") -> None:
        try:
            import pyfvvdp
        except ImportError:
            raise InputError(
                "pyfvvdp: not installed, so the FovVideoVDP target (head 4) is unavailable; "
                "`pip install pyfvvdp==1.2.2` (see requirements.txt) or set its loss weight to 0 (--weights)"
            ) from None
        logging.getLogger("pyfvvdp").setLevel(logging.WARNING)
        self.metric = pyfvvdp.fvvdp(display_name=FVVDP_DISPLAY, heatmap=None, quiet=True, device=torch.device(device))

    def __call__(self, test: torch.Tensor, ref: torch.Tensor) -> float:
        """JOD of ``test`` against ``ref``: (T, 3, H, W) uint8 (or float in [0, 1]) sequences."""
        with torch.no_grad():
            q, _ = self.metric.predict(test.permute(1, 0, 2, 3)[None], ref.permute(1, 0, 2, 3)[None],
                                       dim_order="BCFHW", frames_per_second=FVVDP_FPS)
        return float(q)


def fvvdp_available() -> bool:
    try:
        import pyfvvdp  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------------------------- all five
def pair_targets(
    seq1: torch.Tensor, seq2: torch.Tensor, replace_ratio: float, needed: tuple[bool, ...] = (True,) * 5,
    fvvdp: FovVideoVDP | None = None, timings: dict[str, float] | None = None,
) -> np.ndarray:  # fmt: skip
    """The five targets in [−1, 1] of one pair: (T, 3, H, W) uint8 sequences; NaN where ``needed`` is False.

    ``timings`` (optional) receives the seconds spent per target, for the benchmark.
    """
    import time

    out = np.full(len(TARGETS), np.nan, dtype=np.float32)
    a, b = seq1.float() / 255, seq2.float() / 255

    def timed(name: str, fn):  # noqa: ANN001, ANN202
        t0 = time.perf_counter()
        v = fn()
        if timings is not None:
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0
        return v

    if needed[0]:
        out[0] = timed("ssim", lambda: float(ssim_to_target(ssim(a, b).mean())))
    if needed[1]:
        out[1] = timed("psnr", lambda: float(psnr_to_target(psnr(a, b).mean())))
    if needed[2]:
        out[2] = float(replace_to_target(replace_ratio))
    if needed[3]:
        out[3] = timed("strred", lambda: float(strred_to_target(strred(luminance(seq1.float()),
                                                                        luminance(seq2.float())))))
    if needed[4]:
        metric = fvvdp or FovVideoVDP()
        out[4] = timed("fvvdp", lambda: float(jod_to_target(metric(seq2, seq1))))
    return out
