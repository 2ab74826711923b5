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

    def batch(self, tests: torch.Tensor, refs: torch.Tensor, chunk_frames: int = 0) -> torch.Tensor:
        """JODs of N pairs of one shape at once: ``tests``, ``refs`` (N, T, 3, H, W) uint8 -> (N,) float32.

        pyfvvdp 1.2.2's video path (display model, temporal filters with replicated first frames, contrast pyramid,
        CSF, masking, pooling) with every frame of every pair in one batch instead of one frame of one pair at a
        time (:func:`_batched_jods`): the same values, from 1/(N·T) of the tensor operations; what makes the target
        affordable on a GPU, where pyfvvdp's per-frame loop is launch-bound. ``chunk_frames`` (0: all) bounds the
        frames of a pyramid, for memory. Another pyfvvdp version: pair by pair through its own ``predict``."""
        import pyfvvdp

        if tests.shape != refs.shape or tests.dim() != 5:
            raise InputError(f"FovVideoVDP.batch: need two (N, T, 3, H, W) tensors of one shape, got "
                             f"{tuple(tests.shape)} and {tuple(refs.shape)}")
        if tests.dtype != torch.uint8 or self.metric.foveated or tests.shape[1] < 2 or \
                getattr(pyfvvdp, "__version__", "1.2.2") != "1.2.2":
            return torch.tensor([self(t, r) for t, r in zip(tests, refs, strict=True)], dtype=torch.float32)
        with torch.no_grad():
            return _batched_jods(self.metric, tests.to(self.device), refs.to(self.device), chunk_frames)

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


def _luminance(metric: object, frames: torch.Tensor) -> torch.Tensor:
    """(N, T, 3, H, W) uint8 sRGB -> (N, T, H, W) absolute luminance, as pyfvvdp's array video source makes it."""
    from pyfvvdp import utils

    rgb2y = utils.json2dict(utils.config_files.find("color_spaces.json"))[metric.color_space]["RGB2Y"]
    light = metric.display_photometry.forward(frames.to(torch.float32) / 255)
    return light[:, :, 0] * rgb2y[0] + light[:, :, 1] * rgb2y[1] + light[:, :, 2] * rgb2y[2]


def _temporal_channels(metric: object, test: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """pyfvvdp's sliding window of ``filter_len`` frames (the first frame replicated before the start) filtered by
    the sustained and transient filters: (4, N, T, H, W) = test-sustained, ref-sustained, test-transient,
    ref-transient."""
    n_frames, fl = test.shape[1], metric.filter_len
    idx = (torch.arange(n_frames)[:, None] + torch.arange(fl)[None, :] - (fl - 1)).clamp(min=0).to(test.device)
    out = []
    for cc in range(2):
        taps = metric.F[cc].flip(0).view(1, 1, fl, 1, 1)
        out += [(x[:, idx] * taps).sum(dim=2) for x in (test, ref)]
    return torch.stack(out)


def _frame_qualities(metric: object, lpyr: object, channels: torch.Tensor) -> torch.Tensor:
    """Per band, temporal channel and frame, the p-norm of the masked differences (pyfvvdp's
    ``process_block_of_frames`` for every frame at once): (4, M, H, W) -> (bands, 2, M)."""
    bands, gbands = lpyr.decompose(channels)
    rho_band = lpyr.get_freqs()
    out = torch.zeros((lpyr.get_band_count() - 1, 2, channels.shape[1]), device=channels.device)
    for cc in range(2):
        for bb in range(lpyr.get_band_count() - 1):
            band = lpyr.get_band(bands, bb)
            t_f, r_f, l_bkg = band[cc * 2], band[cc * 2 + 1], lpyr.get_gband(gbands, bb)
            rho = (rho_band[bb] * torch.ones(r_f.shape[-2:], device=channels.device)).expand(l_bkg.shape)
            ecc = torch.zeros(r_f.shape[-2:], device=channels.device).expand(l_bkg.shape)
            s = metric.cached_sensitivity(rho, metric.omega[cc], l_bkg, ecc, metric.csf_sigma)
            n_csf = torch.reciprocal(s * 10.0 ** (metric.sensitivity_correction / 20.0))
            d = metric.apply_masking_model(t_f, r_f, n_csf, cc)[0].flatten(1)  # (M, h·w)
            out[bb, cc] = torch.norm(d, metric.beta, dim=1) / (float(d.shape[1]) ** (1.0 / metric.beta))
    return out


def _batched_jods(metric: object, tests: torch.Tensor, refs: torch.Tensor, chunk_frames: int) -> torch.Tensor:
    """JODs (N,) of (N, T, 3, H, W) uint8 pairs; see :meth:`FovVideoVDP.batch`."""
    from pyfvvdp.fvvdp_lpyr_dec import fvvdp_contrast_pyr

    if metric.local_adapt != "gpyr" or metric.contrast != "weber" or metric.pu_dilate != 0:
        raise InputError("FovVideoVDP.batch: pyfvvdp's parameters are not those of version 1.2.2")
    n, t, _, h, w = tests.shape
    metric.filter_len = int(np.ceil(250.0 / (1000.0 / FPS)))
    metric.F, metric.omega = metric.get_temporal_filters(FPS)
    lpyr = fvvdp_contrast_pyr(w, h, metric.pix_per_deg, tests.device)
    channels = _temporal_channels(metric, _luminance(metric, tests), _luminance(metric, refs)).flatten(1, 2)
    step = chunk_frames or n * t
    q = torch.cat([_frame_qualities(metric, lpyr, channels[:, i:i + step].contiguous())
                   for i in range(0, n * t, step)], dim=2)  # fmt: skip
    rho = lpyr.get_freqs()[:-1]
    return torch.stack([metric.do_pooling_and_jods(q[:, :, i * t:(i + 1) * t], rho) for i in range(n)]).float()
