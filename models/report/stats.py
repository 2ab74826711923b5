"""Uncertainty and decisions: bootstrap confidence intervals, paired "A better than B" decisions, ranks with ties,
agreement between metrics, and JOD differences as a share of observers.

Why these resampling units (docs/report.md says the same to the user):

- **JOD: blocks of the camera path.** NVS-SQA scores a sequence, not a frame: one score comes from the whole path
  (or its long windows). Its sampling uncertainty is how much the score depends on which stretch of the path was
  rendered, so the unit is the quality curve's window (``Limits.curve_window`` frames), taking only windows that
  do not overlap (overlapping windows share frames and would make the interval too narrow). The interval is the
  percentile bootstrap of those windows' mean, centred on the sequence's score. A difference must also exceed the
  measured noise floor (``Limits.noise_floor_jod``: what invisible changes move a score by) to count.
- **Full-reference metrics and CrossScore: frames.** They are per-image numbers averaged over the test views, so
  the unit is the frame; comparisons are paired over the frames both methods have.

Intervals are 95 % percentile intervals from ``n`` resamples drawn by a generator seeded from the report's seed
and the names compared: the same inputs and seed give the same intervals, bit for bit. No correction for multiple
comparisons is made: with many methods, expect about one spurious decision in twenty pairs of ties.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from models.stats import correlations

LEVEL = 0.95
JOD_PREFERENCE_AT_1 = 0.75  # 1 JOD: 75 % of observers prefer the better condition (JOD's definition)
_NORMAL = NormalDist()


def preference(delta_jod: float) -> float:
    """Share of observers expected to prefer the condition ``delta_jod`` JOD better: Phi(Phi^-1(0.75) · ΔJOD)
    (JOD units are scaled so that 1 JOD = 75 % preference; ColorVideoVDP's and pwcmp's convention)."""
    return _NORMAL.cdf(_NORMAL.inv_cdf(JOD_PREFERENCE_AT_1) * delta_jod)


def rng_for(seed: int, *names: str) -> np.random.Generator:
    """A generator for one comparison: seeded by the report's seed and the names compared (order matters)."""
    return np.random.default_rng([seed, zlib.crc32("\0".join(names).encode())])


def bootstrap_means(values: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` bootstrap means of ``values`` (resampled with replacement)."""
    idx = rng.integers(0, len(values), size=(n, len(values)))
    return values[idx].mean(axis=1)


def interval(means: np.ndarray) -> tuple[float, float]:
    lo, hi = np.quantile(means, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return float(lo), float(hi)


def disjoint(starts: Sequence[int], ends: Sequence[int]) -> list[int]:
    """Indices of windows that do not overlap, taken greedily from the start of the path."""
    keep, end = [], -1
    for i, (s, e) in enumerate(zip(starts, ends, strict=True)):
        if s >= end:
            keep.append(i)
            end = e
    return keep


@dataclass(frozen=True)
class Estimate:
    """A value with its confidence interval (None where there are too few units) and what was resampled."""

    value: float
    low: float | None
    high: float | None
    units: int
    unit: str  # "windows" | "frames"


def curve_units(curve: dict | None) -> np.ndarray | None:
    """The scores of a quality curve's non-overlapping windows (None without a curve)."""
    if not curve or not curve.get("scores"):
        return None
    keep = disjoint(curve["starts"], curve["ends"])
    return np.asarray(curve["scores"], np.float64)[keep]


def estimate(value: float, units: np.ndarray | None, unit: str, rng: np.random.Generator, n: int) -> Estimate:
    """``value`` with the bootstrap interval of the mean of ``units``, shifted to centre on ``value`` (for the
    full-reference metrics ``value`` is that mean, and the shift is 0)."""
    if units is None or len(units) < 2:
        return Estimate(value, None, None, 0 if units is None else len(units), unit)
    lo, hi = interval(bootstrap_means(units, rng, n))
    shift = value - float(units.mean())
    return Estimate(value, lo + shift, hi + shift, len(units), unit)


@dataclass(frozen=True)
class Comparison:
    """A vs B on one metric: the difference (oriented: > 0 means A is better), its interval and the decision."""

    a: str
    b: str
    delta: float
    low: float | None
    high: float | None
    units: int
    paired: bool
    decision: str  # "better" | "worse" | "tie"
    why: str


def decide(delta: float, lo: float | None, hi: float | None, floor: float) -> tuple[str, str]:
    """Better/worse only when the interval excludes 0 and the difference reaches ``floor``; else a tie, saying why."""
    if lo is None or hi is None:
        return "tie", "too few windows or frames for a confidence interval"
    if lo > 0 and delta >= floor:
        return "better", f"{LEVEL:.0%} interval above 0" + (f" and beyond the {floor:g} noise floor" if floor else "")
    if hi < 0 and delta <= -floor:
        return "worse", f"{LEVEL:.0%} interval below 0" + (f" and beyond the {floor:g} noise floor" if floor else "")
    if lo <= 0 <= hi:
        return "tie", f"{LEVEL:.0%} interval includes 0"
    return "tie", f"within the {floor:g} noise floor"


def compare(a: str, b: str, delta: float, ua: np.ndarray | None, ub: np.ndarray | None, paired: bool,
            rng: np.random.Generator, n: int, floor: float = 0.0) -> Comparison:
    """Compare A and B (``delta``: A − B, oriented so that > 0 is better). Paired: ``ua`` and ``ub`` are aligned
    units (same windows or frames) and their differences are resampled; unpaired: each is resampled on its own."""
    lo = hi = None
    units = 0
    if ua is not None and ub is not None and min(len(ua), len(ub)) >= 2:
        if paired:
            d = ua - ub
            means = bootstrap_means(d, rng, n)
            centre = float(d.mean())
            units = len(d)
        else:
            means = bootstrap_means(ua, rng, n) - bootstrap_means(ub, rng, n)
            centre = float(ua.mean() - ub.mean())
            units = min(len(ua), len(ub))
        lo, hi = interval(means)
        lo, hi = lo + delta - centre, hi + delta - centre
    decision, why = decide(delta, lo, hi, floor)
    return Comparison(a, b, delta, lo, hi, units, paired, decision, why)


def ranks(names: Sequence[str], comparisons: dict[tuple[str, str], Comparison]) -> dict[str, int]:
    """Rank of each method: 1 + the number of methods decisively better than it (ties share a rank)."""
    return {m: 1 + sum(comparisons[(o, m)].decision == "better" for o in names if o != m and (o, m) in comparisons)
            for m in names}  # fmt: skip


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-b between two metrics' values over the same methods (both oriented so higher is better),
    :func:`models.stats.correlations`' KRCC; None for fewer than 3 methods or a constant metric."""
    if len(x) < 3:
        return None
    t = correlations(np.asarray(x), np.asarray(y))["krcc"]
    return None if not np.isfinite(t) else float(t)
