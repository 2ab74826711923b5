"""Graded-degradation benchmark: distort a clip at increasing levels, score every variant, expect falling scores.

Every distortion is a pure function of (clip, level, rng); the rng of variant (distortion d, level l) is
``numpy.random.default_rng([seed, d, l])``, so variants are identical bit for bit across runs and machines
with the same numpy/OpenCV, and do not depend on which other variants are built. Level 0 is the clean clip.
Clips are uint8 (T, H, W, 3) RGB. Parameters per level are in ``LEVELS`` (documented in docs/evaluation.md).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from models.frames import FrameSequence
from models.stats import correlations

log = logging.getLogger(__name__)
Clip = np.ndarray  # uint8 (T, H, W, 3)


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def blur(clip: Clip, sigma: float, rng: np.random.Generator) -> Clip:
    """Gaussian blur of every frame, sigma in pixels (kernel ±3 sigma)."""
    return np.stack([cv2.GaussianBlur(f, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
                     for f in clip])


def jpeg(clip: Clip, quality: float, rng: np.random.Generator) -> Clip:
    """JPEG round trip of every frame at ``quality`` (OpenCV's libjpeg, 4:2:0)."""
    out = []
    for f in clip:
        ok, buf = cv2.imencode(".jpg", f[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        out.append(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    return np.ascontiguousarray(np.stack(out))


def noise(clip: Clip, sigma: float, rng: np.random.Generator) -> Clip:
    """Additive white Gaussian noise, sigma on the 0-255 scale, independent per pixel and frame."""
    return _u8(clip + rng.normal(0.0, sigma, clip.shape))


def flicker(clip: Clip, amplitude: float, rng: np.random.Generator) -> Clip:
    """Temporal flicker: frame t is scaled by 1 ± amplitude * u_t, u_t ~ U(0.25, 1), the sign alternating."""
    u = rng.uniform(0.25, 1.0, len(clip)) * np.where(np.arange(len(clip)) % 2, -1.0, 1.0)
    return _u8(clip * (1.0 + amplitude * u)[:, None, None, None])


def ghosting(clip: Clip, weight: float, rng: np.random.Generator) -> Clip:
    """Blend every frame with its next neighbour in the clip (the last with its previous): (1-w) f_t + w f_t±1."""
    nb = np.concatenate([clip[1:], clip[-2:-1]]) if len(clip) > 1 else clip
    return _u8((1.0 - weight) * clip + weight * nb.astype(np.float64))


def floaters(clip: Clip, count: float, rng: np.random.Generator) -> Clip:
    """Floater-like blobs: soft semi-transparent grey discs that drift slowly across the frames (parallax).

    Each blob: centre uniform in the frame, radius 2-6 % of the short side, opacity 0.5-0.9, grey level
    100-255, a constant drift of up to 1 % of the width per frame.
    """
    t, h, w, _ = clip.shape
    n = int(count)
    cy, cx = rng.uniform(0, h, n), rng.uniform(0, w, n)
    radius = rng.uniform(0.02, 0.06, n) * min(h, w)
    alpha, grey = rng.uniform(0.5, 0.9, n), rng.uniform(100, 255, n)
    vy, vx = rng.uniform(-0.01, 0.01, (2, n)) * w
    out = clip.astype(np.float64)
    for i in range(t):
        for j in range(n):
            y0, x0, sd = cy[j] + vy[j] * i, cx[j] + vx[j] * i, radius[j] / 2
            # the blob's support (±4 sd; beyond it alpha < 3e-4 of its peak) clipped to the frame
            ya, yb = max(0, int(y0 - 4 * sd)), min(h, int(y0 + 4 * sd) + 1)
            xa, xb = max(0, int(x0 - 4 * sd)), min(w, int(x0 + 4 * sd) + 1)
            if ya >= yb or xa >= xb:
                continue
            yy, xx = np.mgrid[ya:yb, xa:xb].astype(np.float64)
            a = alpha[j] * np.exp(-((yy - y0) ** 2 + (xx - x0) ** 2) / (2 * sd**2))[..., None]
            out[i, ya:yb, xa:xb] = (1 - a) * out[i, ya:yb, xa:xb] + a * grey[j]
    return _u8(out)


def downup(clip: Clip, factor: float, rng: np.random.Generator) -> Clip:
    """Downscale by ``factor`` (area) then upscale back (bilinear): the loss of detail of a low-res render."""
    t, h, w, _ = clip.shape
    small = (max(1, round(w / factor)), max(1, round(h / factor)))
    return np.stack([cv2.resize(cv2.resize(f, small, interpolation=cv2.INTER_AREA), (w, h),
                                interpolation=cv2.INTER_LINEAR) for f in clip])


# name -> (function, parameter name, parameter at levels 1..5)
DISTORTIONS: dict[str, tuple[Callable[[Clip, float, np.random.Generator], Clip], str, tuple[float, ...]]] = {
    "blur": (blur, "sigma_px", (0.5, 1.0, 2.0, 3.0, 5.0)),
    "jpeg": (jpeg, "quality", (80, 50, 30, 15, 5)),
    "noise": (noise, "sigma_255", (4, 8, 16, 32, 64)),
    "flicker": (flicker, "amplitude", (0.04, 0.08, 0.16, 0.24, 0.32)),
    "ghosting": (ghosting, "weight", (0.1, 0.2, 0.3, 0.4, 0.5)),
    "floaters": (floaters, "count", (2, 4, 8, 16, 32)),
    "downup": (downup, "factor", (1.5, 2.0, 3.0, 4.0, 6.0)),
}


def degrade(clip: Clip, name: str, level: int, seed: int = 0) -> Clip:
    """Variant ``level`` (0 = clean, 1..5) of distortion ``name``; deterministic in (clip, name, level, seed)."""
    if level == 0:
        return clip
    fn, _, params = DISTORTIONS[name]
    rng = np.random.default_rng([seed, list(DISTORTIONS).index(name), level])
    return fn(clip, float(params[level - 1]), rng)


def prepare_clip(seq: FrameSequence, n_frames: int = 8, max_side: int = 320) -> Clip:
    """``n_frames`` frames evenly spaced over the sequence (first and last included), resized (area) so that
    the longer side is at most ``max_side`` px: keeps the benchmark fast on a CPU."""
    idx = set(np.rint(np.linspace(0, seq.n_frames - 1, min(n_frames, seq.n_frames))).astype(int).tolist())
    s = min(1.0, max_side / max(seq.width, seq.height))
    size = (round(seq.width * s), round(seq.height * s))
    out = [f if s == 1.0 else cv2.resize(f, size, interpolation=cv2.INTER_AREA)
           for i, f in enumerate(seq) if i in idx]  # streamed: only the kept frames stay in memory
    return np.stack(out)


def feature_similarity(f: np.ndarray, clean: np.ndarray) -> float:
    """Cosine similarity of a variant's representation to the clean clip's: 1 at level 0, lower as it moves.

    The regressor-free score of the degradation benchmark, for encoders that have no regressor yet.
    """
    f64, c64 = f.astype(np.float64), clean.astype(np.float64)
    return float(f64 @ c64 / (np.linalg.norm(f64) * np.linalg.norm(c64) + 1e-12))


def run_degradations(
    score: Callable[[str, Clip], float], clips: dict[str, Clip], seed: int = 0, progress: bool = True,
    names: list[str] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:  # fmt: skip
    """Score every variant of every clip with ``score(sequence name, clip)``. Returns (score rows, SRCC rows).

    Score rows: sequence, distortion, level, param, score, seconds. SRCC rows: per distortion, the SRCC between
    level (0..5) and score for each sequence (``srcc[<sequence>]``) and their mean; a sound model gives -1.
    ``names`` picks distortions (default: all of ``DISTORTIONS``).
    """
    from tqdm import tqdm

    names = names or list(DISTORTIONS)
    n_levels = len(next(iter(DISTORTIONS.values()))[2])
    todo = [(s, d, lv) for s in clips for d in names for lv in range(1, n_levels + 1)]
    bar = tqdm(total=len(todo) + len(clips), desc="variants", unit="clip", disable=not progress)
    rows: list[dict[str, Any]] = []
    with bar:
        for s, clip in clips.items():
            t0 = time.perf_counter()
            val = score(s, clip)
            bar.update()
            rows += [{"sequence": s, "distortion": d, "level": 0, "param": "", "score": val,
                      "seconds": round(time.perf_counter() - t0, 3)} for d in names]
        for s, d, lv in todo:
            t0 = time.perf_counter()
            val = score(s, degrade(clips[s], d, lv, seed))
            rows.append({"sequence": s, "distortion": d, "level": lv, "param": DISTORTIONS[d][2][lv - 1],
                         "score": val, "seconds": round(time.perf_counter() - t0, 3)})
            bar.update()
    srcc_rows = []
    for d in names:
        row: dict[str, Any] = {"distortion": d, "param": DISTORTIONS[d][1],
                               "levels": ", ".join(str(p) for p in DISTORTIONS[d][2])}
        vals = []
        for s in clips:
            pts = sorted((r["level"], r["score"]) for r in rows if r["sequence"] == s and r["distortion"] == d)
            row[f"srcc[{s}]"] = correlations(np.array([p[1] for p in pts]), np.array([p[0] for p in pts]))["srcc"]
            vals.append(row[f"srcc[{s}]"])
        finite = [v for v in vals if not math.isnan(v)]
        row["srcc_mean"] = float(np.mean(finite)) if finite else math.nan
        srcc_rows.append(row)
    return rows, srcc_rows


def plot_degradations(rows: list[dict[str, Any]], srcc_rows: list[dict[str, Any]]) -> bytes:
    """PNG bytes: one panel per distortion, score against level, one line per sequence."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["distortion"] for r in srcc_rows]
    cols = 4
    fig, axes = plt.subplots(math.ceil(len(names) / cols), cols, figsize=(4 * cols, 3.2 * math.ceil(len(names) / cols)),
                             squeeze=False)
    seqs = list(dict.fromkeys(r["sequence"] for r in rows))
    for ax, d, sr in zip(axes.flat, names, srcc_rows, strict=False):
        for s in seqs:
            pts = sorted((r["level"], r["score"]) for r in rows if r["sequence"] == s and r["distortion"] == d)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=s)
        ax.set_title(f"{d} ({DISTORTIONS[d][1]})  SRCC {sr['srcc_mean']:+.2f}")
        ax.set_xlabel("level (0 = clean)")
        ax.set_ylabel("score (JOD)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
