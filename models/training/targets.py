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

SSIM and PSNR come from :mod:`models.ssim` (the one implementation, CrossScore's too). FovVideoVDP is
optional at run time: without ``pyfvvdp`` importable, asking for it raises a one-line :class:`InputError`.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from models.errors import InputError
from models.ssim import psnr, ssim
from models.training.strred import strred

log = logging.getLogger(__name__)

TARGETS = ("ssim", "psnr", "replace", "strred", "fvvdp")
SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2
PSNR_RANGE = (10.0, 40.0)
STRRED_RANGE = (0.0, 15.0)
JOD_RANGE = (0.0, 10.0)
FVVDP_DISPLAY = "standard_fhd"
FVVDP_FPS = 30.0
LUMA_WEIGHTS = (0.2989, 0.5870, 0.1140)  # skvideo.utils.rgb2gray (BT.601), what upstream's ST-RRED saw


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
