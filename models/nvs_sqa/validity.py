"""Where the released model's scores can be trusted: the measured limits, and the checks that apply them.

The limits are versioned parameters (``validity_v2.json`` beside this file, written by the calibration
``python -m benchmarks.validity_calibration --write-limits``, i.e. ``make validity``); the measurements behind them
are in ``benchmarks/validity.{json,md}`` and docs/scoring.md. A score outside them is still reported, with a
warning that names what is outside and the validated range; nothing is silently dropped or clipped.

Frame statistics are gathered while the frames stream through the scorer (:class:`FrameStats`), on a subsample,
so the checks cost well under a millisecond a frame:

- background fraction: share of flat black or white pixels — every channel at most ``DARK_LEVEL`` or at least
  ``WHITE_LEVEL`` (holes in a render, or an empty background, which renders show as either);
- noise: Immerkær's (1996) estimate of the standard deviation of white noise (0–255 scale), on the central crop;
- blockiness: JPEG's 8×8 block edges, on the same crop (:func:`blockiness`).

The released model has blind spots (``make validity`` measures them against FovVideoVDP, a reference-based JOD):
it scores Gaussian noise *higher* the stronger it is, and it does not see JPEG artefacts. The limits file holds,
for each, how much a score can be inflated as a function of the statistic above (:class:`BlindSpot`);
:func:`blind_spot_bias` turns two renders' statistics into the bias a comparison of their scores must overcome.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from models.errors import InputError

LIMITS_FILE = Path(__file__).with_name("validity_v2.json")
DARK_LEVEL = 8  # 0–255: a pixel this dark in every channel counts as a hole / black background
WHITE_LEVEL = 247  # 0–255: a pixel this bright in every channel counts as white background
NOISE_CROP = 256  # px: side of the central crop the noise and blockiness estimates read
JPEG_BLOCK = 8  # px: JPEG's block size (luma)
STEP_FLOOR = 1.0  # 0–255: the least mean step inside blocks blockiness divides by (one code value of 8 bits)
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


@dataclass(frozen=True)
class Limits:
    """The validated range of the released model. No field has a default: the versioned limits file, written by
    the calibration (``make validity``), is their one source; :meth:`load` reads it."""

    version: str
    min_frames: int  # shorter sequences: the score is unstable (up to +3.9 JOD at 2–4 frames)
    max_frames: int  # single pass up to here; longer sequences are scored in windows
    window: int  # frames per window for longer sequences
    stride: int  # frames between window starts
    min_side: int  # px, shorter frame side; lower resolutions score higher (+1.2 JOD at 192 px)
    max_side: int  # px
    score_min: float  # range of the 240 benchmark labels (offset JOD)
    score_max: float
    max_background_fraction: float  # mean share of flat black or white pixels (holes, empty background)
    max_noise_sigma: float  # estimated noise sigma, 0–255
    tolerance_jod: float  # the stability criterion the limits were chosen by
    noise_floor_jod: float  # the smallest meaningful score difference: what invisible changes move a score by
    curve_window: int  # frames per window of the quality curve (short: a 120-frame render gets a curve)
    curve_stride: int
    curve_min_frames: int  # sequences this long or longer get a quality curve
    curve_noise_floor_jod: float  # the same floor for one window of the curve
    max_blockiness: float  # estimated JPEG blockiness (0: none) past which a score is flagged (the model is blind)
    noise_bias: list[list[float]]  # [[estimated noise sigma, JOD the score may be inflated by], ...], non-decreasing
    blockiness_bias: list[list[float]]  # [[blockiness, JOD the score may be inflated by], ...], non-decreasing
    measured_by: str
    notes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = LIMITS_FILE) -> Limits:
        """The limits in ``path`` (default: the committed file); a missing, unreadable or incomplete file is an
        :class:`InputError` naming it."""
        try:
            d = json.loads(Path(path).read_text())
            return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})
        except FileNotFoundError:
            raise InputError(f"{path}: the validity limits file is missing; restore it (git checkout) or re-make it "
                             "with `make validity`") from None
        except (OSError, ValueError, TypeError) as e:
            why = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
            raise InputError(f"{path}: not a usable validity limits file ({why}); restore it or re-make it with "
                             "`make validity`") from None

    def to_dict(self) -> dict:
        return asdict(self)


def noise_sigma(gray: np.ndarray) -> float:
    """Immerkær's fast noise estimate: sigma of additive white noise in a (H, W) image (same scale as the input)."""
    g = gray.astype(np.float32)
    h, w = g.shape
    if h < 3 or w < 3:
        return 0.0
    # 3x3 "difference of Laplacians" kernel, valid part, as a sum of shifted views (no scipy call per frame)
    acc = np.zeros((h - 2, w - 2), dtype=np.float32)
    for dy in range(3):
        for dx in range(3):
            acc += _IMMERKAER[dy, dx] * g[dy:dy + h - 2, dx:dx + w - 2]
    return float(math.sqrt(math.pi / 2) * np.abs(acc).sum() / (6 * (w - 2) * (h - 2)))


def blockiness(gray: np.ndarray, block: int = JPEG_BLOCK) -> float:
    """JPEG blockiness of a (H, W) image whose block grid starts at (0, 0): how much larger the mean absolute step
    between neighbouring pixels is across block edges than inside blocks, relative to the step inside (0: no block
    structure; measured by ``make validity``: about 1 at JPEG quality 50, 3 at quality 15). The step inside counts
    as at least :data:`STEP_FLOOR`: on a very smooth render (a strong blur) the steps inside blocks are a fraction
    of a code value and the bare ratio would call a high-quality JPEG of it blocky."""
    g = np.asarray(gray, np.float32)
    dh, dv = np.abs(np.diff(g, axis=1)), np.abs(np.diff(g, axis=0))
    edge = np.zeros(dh.shape[1], bool)
    edge[block - 1::block] = True
    row = np.zeros(dv.shape[0], bool)
    row[block - 1::block] = True
    inside = dh[:, ~edge].sum() + dv[~row].sum()
    if not edge.any() or not row.any() or inside == 0:
        return 0.0
    across = (dh[:, edge].sum() + dv[row].sum()) / (edge.sum() * dh.shape[0] + row.sum() * dv.shape[1])
    inside = inside / ((~edge).sum() * dh.shape[0] + (~row).sum() * dv.shape[1])
    return float((across - inside) / max(inside, STEP_FLOOR))


@dataclass
class FrameStats:
    """Running statistics of a sequence's frames (uint8 HWC), gathered as they stream past."""

    n: int = 0
    background: float = 0.0  # sum of per-frame fractions of flat black or white pixels
    noise: list[float] = field(default_factory=list)
    blocks: list[float] = field(default_factory=list)

    def update(self, frame: np.ndarray) -> None:
        sub = frame[::4, ::4]
        r, g, b = sub[..., 0], sub[..., 1], sub[..., 2]  # per-channel planes: a reduction over axis 2 is ~10x slower
        flat = (np.maximum(np.maximum(r, g), b) <= DARK_LEVEL) | (np.minimum(np.minimum(r, g), b) >= WHITE_LEVEL)
        self.background += float(flat.mean())
        h, w = frame.shape[:2]
        c = min(NOISE_CROP, h, w)
        y0, x0 = (h - c) // 2, (w - c) // 2
        y0, x0 = y0 - y0 % JPEG_BLOCK, x0 - x0 % JPEG_BLOCK  # on JPEG's block grid, which starts at (0, 0)
        gray = frame[y0:y0 + c, x0:x0 + c].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        self.noise.append(noise_sigma(gray))
        self.blocks.append(blockiness(gray))
        self.n += 1

    def watch(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Pass ``frames`` through unchanged, updating the statistics."""
        for f in frames:
            self.update(f)
            yield f

    @property
    def background_fraction(self) -> float:
        return self.background / self.n if self.n else 0.0

    @property
    def noise_sigma(self) -> float:
        return float(np.median(self.noise)) if self.noise else 0.0

    @property
    def blockiness(self) -> float:
        return float(np.median(self.blocks)) if self.blocks else 0.0


def check(n_frames: int, width: int, height: int, score: float | None, stats: FrameStats | None = None,
          limits: Limits | None = None, window: int = 0) -> list[str]:
    """The reasons a score is outside the validated range (empty: inside). Each reason names what is outside and
    the validated range. ``window``: the window the score was made with (0: one pass over all frames)."""
    lim = limits or Limits.load()
    out = []
    if n_frames < lim.min_frames:
        out.append(f"{n_frames} frames < {lim.min_frames} (validated: {lim.min_frames}+ frames)")
    side = min(width, height)
    if not lim.min_side <= side <= lim.max_side:
        out.append(f"shorter side {side} px outside the validated {lim.min_side}-{lim.max_side} px")
    if score is not None and not lim.score_min <= score <= lim.score_max:
        out.append(f"score {score:.2f} outside the benchmark labels' range {lim.score_min:.2f}..{lim.score_max:.2f}")
    if window == 0 and n_frames > lim.max_frames:
        out.append(f"{n_frames} frames in one pass > {lim.max_frames} (validated: up to {lim.max_frames}; the "
                   "default, window auto, scores longer sequences in windows)")
    if window and not lim.min_frames <= window <= lim.max_frames:
        out.append(f"windows of {window} frames outside the validated {lim.min_frames}-{lim.max_frames}")
    if stats is not None and stats.n:
        if stats.background_fraction > lim.max_background_fraction:
            out.append(f"{stats.background_fraction:.0%} of the pixels are flat black or white (holes or empty "
                       f"background; validated: up to {lim.max_background_fraction:.0%})")
        if stats.noise_sigma > lim.max_noise_sigma:
            out.append(f"estimated noise sigma {stats.noise_sigma:.1f} > {lim.max_noise_sigma:g} (0-255 scale; "
                       "NVS-SQA scores noise higher the stronger it is)")
        if stats.blockiness > lim.max_blockiness:
            out.append(f"JPEG blockiness {stats.blockiness:.2f} > {lim.max_blockiness:g} (NVS-SQA does not see "
                       "JPEG artefacts)")
    return out


@dataclass(frozen=True)
class BlindSpot:
    """One blind spot of the released model: a statistic of the frames (:class:`FrameStats`) and, from the limits
    file, how much the score may be inflated at each value of it (``curve``: non-decreasing [[value, JOD], ...])."""

    name: str
    statistic: str  # the FrameStats property
    says: str  # what the model does, in words
    curve: list[list[float]]

    def inflation(self, value: float) -> float:
        """JOD the score may be inflated by at ``value`` (the curve, linearly interpolated; flat outside it)."""
        xs, ys = zip(*self.curve, strict=True) if self.curve else ((0.0,), (0.0,))
        return float(np.interp(value, xs, ys))


def blind_spots(limits: Limits) -> list[BlindSpot]:
    """The measured blind spots of the released model, with their curves from ``limits``."""
    return [BlindSpot("noise", "noise_sigma", "NVS-SQA rewards noise", limits.noise_bias),
            BlindSpot("jpeg", "blockiness", "NVS-SQA does not see JPEG artefacts", limits.blockiness_bias)]


@dataclass(frozen=True)
class Bias:
    """How much the blind spots may have raised A's score relative to B's (``a``) and B's relative to A's
    (``b``), both >= 0, and why, in words."""

    a: float
    b: float
    why: str


def blind_spot_bias(a: dict[str, float], b: dict[str, float], limits: Limits, names: tuple[str, str] = ("A", "B")
                    ) -> Bias:  # fmt: skip
    """The bias a comparison of two scores must overcome: for each blind spot, the difference of the inflation at
    the two renders' statistics (``a``/``b``: FrameStats property -> value), credited to the render it favours."""
    bias_a = bias_b = 0.0
    parts = []
    for spot in blind_spots(limits):
        if spot.statistic not in a or spot.statistic not in b:
            continue
        va, vb = a[spot.statistic], b[spot.statistic]
        d = spot.inflation(va) - spot.inflation(vb)
        if d > 0:
            bias_a += d
        else:
            bias_b -= d
        if abs(d) > 0:
            hi, lo = (names[0], names[1]) if d > 0 else (names[1], names[0])
            label = "noise σ" if spot.name == "noise" else "blockiness"
            parts.append(f"{spot.says}; {hi}'s {label} {max(va, vb):.2g} vs {lo}'s {min(va, vb):.2g} can raise "
                         f"{hi}'s score by {abs(d):.2f} JOD")
    return Bias(bias_a, bias_b, "; ".join(parts))


def scene_of(name: str) -> str:
    """The scene a sequence's score is compared within: the folder part of a ``scene/method`` name, else the part
    before ``+`` of upstream's ``Scene+Method`` names, else one scene for all."""
    if "/" in name:
        return name.rsplit("/", 1)[0]
    return name.split("+", 1)[0] if "+" in name else ""


def tie_ranks(scores: dict[str, float], floor: float) -> dict[str, str]:
    """Rank of each sequence within its scene, highest score first; sequences less than ``floor`` JOD below the
    first of their group share its rank, marked ``=`` (a difference under the noise floor is not a difference)."""
    out: dict[str, str] = {}
    scenes: dict[str, list[str]] = {}
    for name in scores:
        scenes.setdefault(scene_of(name), []).append(name)
    for names in scenes.values():
        order = sorted(names, key=lambda n: -scores[n])
        i = 0
        while i < len(order):
            group = [order[i]] + [n for n in order[i + 1:] if scores[order[i]] - scores[n] < floor]
            for n in group:
                out[n] = f"{i + 1}{'=' if len(group) > 1 else ''}"
            i += len(group)
    return out
