"""FovVideoVDP (Mantiuk et al. 2021, pyfvvdp): a reference-based video metric in JOD units — the same unit as
NVS-SQA's scores, so a render's no-reference JOD can be set beside a reference JOD of the same scale.

    from models.fullref.fvvdp import FovVideoVDP
    m = FovVideoVDP()                       # display standard_fhd, 30 fps, CPU
    m(test, ref)                            # (T, 3, H, W) uint8 sequences -> JOD (10 = identical)
    m.windows(test_frames, ref_frames, [(0, 12), (12, 24)])   # one JOD per window of (T, H, W, 3) uint8 frames

pyfvvdp's parameters ship in its wheel (no download). Its JOD is 10 for a sequence identical to its reference and
falls as differences become visible; 1 JOD = 75 % of observers prefer the better of two conditions, as for NVS-SQA.
Used by the training targets (head 4) and by the scene report (per window of the camera path).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import torch

from models.errors import InputError

DISPLAY = "standard_fhd"
FPS = 30.0


def fvvdp_available() -> bool:
    """Whether pyfvvdp can be imported (FovVideoVDP is optional at run time)."""
    try:
        import pyfvvdp  # noqa: F401
    except ImportError:
        return False
    return True


class FovVideoVDP:
    """pyfvvdp's FovVideoVDP (display :data:`DISPLAY`, :data:`FPS` fps) on uint8 sRGB sequences."""

    def __init__(self, device: str | torch.device = "cpu") -> None:
        try:
            import pyfvvdp
        except ImportError:
            raise InputError("pyfvvdp: not installed, so FovVideoVDP is unavailable; `pip install pyfvvdp==1.2.2` "
                             "(see requirements.txt)") from None
        logging.getLogger("pyfvvdp").setLevel(logging.WARNING)
        self.device = torch.device(device)
        self.metric = pyfvvdp.fvvdp(display_name=DISPLAY, heatmap=None, quiet=True, device=self.device)

    def __call__(self, test: torch.Tensor, ref: torch.Tensor) -> float:
        """JOD of ``test`` against ``ref``: (T, 3, H, W) uint8 (or float in [0, 1]) sequences."""
        with torch.no_grad():
            q, _ = self.metric.predict(test.permute(1, 0, 2, 3)[None], ref.permute(1, 0, 2, 3)[None],
                                       dim_order="BCFHW", frames_per_second=FPS)
        return float(q)

    def windows(self, read_test: Callable[[int, int], np.ndarray], read_ref: Callable[[int, int], np.ndarray],
                spans: Sequence[tuple[int, int]]) -> list[float]:
        """One JOD per window ``[start, end)`` of ``spans``; ``read_test(start, end)`` / ``read_ref(start, end)``
        return that window's frames as (T, H, W, 3) uint8, so only one window is in memory at a time."""
        out = []
        for s, e in spans:
            t, r = read_test(s, e), read_ref(s, e)
            if t.shape != r.shape:
                raise InputError(f"frames {s}-{e - 1}: the render is {t.shape[2]}x{t.shape[1]} but the ground "
                                 f"truth {r.shape[2]}x{r.shape[1]}; render at the ground truth's size")
            out.append(self(_tchw(t), _tchw(r)))
        return out


def _tchw(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
