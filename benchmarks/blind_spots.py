"""The released NVS-SQA model's blind spots, measured against a reference JOD (part of ``make validity``).

The degradation benchmark (docs/evaluation.md) found the model scoring Gaussian noise *higher* the stronger it is
(SRCC +1.00) and blind to JPEG (+0.11). Here both are measured as a function of a statistic the report can
estimate on a render without ground truth (:class:`models.nvs_sqa.validity.FrameStats`: Immerkær's noise sigma,
JPEG blockiness), on ``--frames`` frames of each example sequence (every fifth, 960x768):

- bases: the clean frames and a 1 px Gaussian blur of them (a smoother render, so that the curve also covers
  renders with less texture than the examples);
- noise: white Gaussian noise of sigma 1, 2, 3, 4, 6, 8, 12, 16 (0–255) on each base; JPEG: quality 90 … 10 on
  the clean frames (OpenCV, 4:2:0). Seeded.

For every variant the *bias* is how much NVS-SQA's score moved relative to its base beyond what FovVideoVDP (a
reference-based metric in the same JOD units, the clean frames as reference; on the central ``FV_CROP`` pixels of
the frames, at their own pixel density — a quarter of the cost, the same distortion statistics) says changed:
``(NVS-SQA(variant) − NVS-SQA(base)) − (FovVideoVDP(variant) − FovVideoVDP(base))``. The inflation curve of a
blind spot is the running maximum of the bias over the statistic (non-decreasing, 0 at the bases): the most a
score may have been raised by that blind spot at that value, over both sequences and bases. The report credits
the difference of two renders' inflations to the render it favours (:func:`models.nvs_sqa.validity.blind_spot_bias`).
``max_blockiness``: the blockiness past which the bias exceeds the tolerance (the model is blind to what
FovVideoVDP sees), where a score is flagged.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from models.evaluation import degrade
from models.frames import open_array
from models.fullref.fvvdp import FovVideoVDP
from models.nvs_sqa.network import MIN_FRAME_SIZE
from models.nvs_sqa.scorer import NVSSQA
from models.nvs_sqa.validity import FrameStats

log = logging.getLogger(__name__)
NOISE = (1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
JPEG = (90.0, 70.0, 50.0, 30.0, 15.0, 10.0)
BASE_BLUR = 1.0
FV_CROP = (384, 480)  # (h, w): FovVideoVDP's view of a variant, centred


def _score(model: NVSSQA, frames: np.ndarray) -> tuple[float, FrameStats]:
    st = FrameStats()
    feats = model.frame_features(open_array(np.stack(list(st.watch(frames))), MIN_FRAME_SIZE), 2)
    return float(model.predict(model.aggregate(feats))[0]), st


def _tchw(frames: np.ndarray) -> torch.Tensor:
    """The central :data:`FV_CROP` of (T, H, W, 3) frames as FovVideoVDP's (T, 3, h, w)."""
    h, w = frames.shape[1:3]
    ch, cw = min(FV_CROP[0], h), min(FV_CROP[1], w)
    y, x = (h - ch) // 2, (w - cw) // 2
    return torch.from_numpy(np.ascontiguousarray(frames[:, y:y + ch, x:x + cw])).permute(0, 3, 1, 2)


def variants(clip: np.ndarray, seed: int = 0) -> list[tuple[str, str, float, np.ndarray]]:
    """(base, kind, level, frames) of every variant, the two bases first (kind "base")."""
    bases = {"clean": clip, "blur1": degrade.blur(clip, BASE_BLUR, np.random.default_rng(seed))}
    out = [(b, "base", 0.0, f) for b, f in bases.items()]
    for bi, (b, f) in enumerate(bases.items()):
        out += [(b, "noise", s, degrade.noise(f, s, np.random.default_rng([seed, bi, i])))
                for i, s in enumerate(NOISE)]  # fmt: skip
    out += [("clean", "jpeg", q, degrade.jpeg(clip, q, np.random.default_rng(seed))) for q in JPEG]
    return out


def measure_sequence(model: NVSSQA, fv: FovVideoVDP, clip: np.ndarray, name: str) -> list[dict]:
    """One row per variant: statistics, NVS-SQA, FovVideoVDP (reference: the clean clip) and the bias."""
    from tqdm import tqdm

    rows, ref = [], _tchw(clip)
    for base, kind, level, frames in tqdm(variants(clip), desc=f"{name}: blind spots", unit="variant"):
        nvs, st = _score(model, frames)
        rows.append({"sequence": name, "base": base, "kind": kind, "level": level, "noise_sigma": st.noise_sigma,
                     "blockiness": st.blockiness, "nvs_sqa": nvs, "fvvdp": fv(_tchw(frames), ref)})
    for r in rows:
        b = next(x for x in rows if x["base"] == r["base"] and x["kind"] == "base")
        r["bias"] = (r["nvs_sqa"] - b["nvs_sqa"]) - (r["fvvdp"] - b["fvvdp"])
    return rows


def inflation_curve(points: list[tuple[float, float]], digits: int = 3) -> list[list[float]]:
    """The running maximum of (statistic, bias) points as a non-decreasing curve from 0, keeping the points where
    it rises (rounded: ``digits`` decimals)."""
    curve: list[list[float]] = []
    top = 0.0
    for x, y in sorted(points):
        if not curve:
            curve.append([round(x, digits), 0.0])
        if y > top:
            top = y
            curve.append([round(x, digits), round(top, digits)])
    return curve


def crossing(curve: list[list[float]], level: float) -> float:
    """The statistic at which ``curve`` first exceeds ``level`` (linear between points; the last x if never)."""
    for (x0, y0), (x1, y1) in zip(curve, curve[1:], strict=False):
        if y1 > level:
            return x0 + (x1 - x0) * max(0.0, min(1.0, (level - y0) / (y1 - y0))) if y1 != y0 else x1
    return curve[-1][0] if curve else 0.0


def derive(rows: list[dict], tolerance: float) -> dict:
    """The limits-file fields of the blind spots from the measured rows."""
    noise = [(r["noise_sigma"], r["bias"]) for r in rows if r["kind"] in ("noise", "base")]
    jpeg = [(r["blockiness"], r["bias"]) for r in rows if r["kind"] == "jpeg" or (r["kind"] == "base"
                                                                                  and r["base"] == "clean")]
    blocky = inflation_curve(jpeg)
    return {"noise_bias": inflation_curve(noise), "blockiness_bias": blocky,
            "max_blockiness": round(crossing(blocky, tolerance), 2)}


def measure(model: NVSSQA, clips: dict[str, np.ndarray]) -> list[dict]:
    """Every sequence's rows (FovVideoVDP on the CPU)."""
    fv = FovVideoVDP("cpu")
    return [r for name, clip in clips.items() for r in measure_sequence(model, fv, clip, name)]
