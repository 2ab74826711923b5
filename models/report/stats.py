"""Uncertainty and decisions of the scene report, as small pure functions: bootstrap intervals, paired "A better
than B" decisions with the guards that can withhold them, ranks with ties, Kendall tau, JOD as a preference.

The rules (docs/report.md says the same to the user):

- **One set of units per comparison.** A difference, its interval and its decision all come from the same
  paired units: the frames (full-reference metrics, CrossScore) or the windows (NVS-SQA, FovVideoVDP) that both
  methods have. The difference is the mean of the per-unit differences; the interval resamples those
  differences (``scipy.stats.bootstrap(..., paired=True, method="percentile")`` draws the same resamples from the
  same generator: the tests check that). Only where the two methods share no unit are they compared unpaired
  (each resampled on its own), and the comparison says so.
- **Small samples.** The percentile interval is Hesterberg's *expanded* percentile interval: its tail is widened
  to what a Student t interval of the same number of units would need, so a handful of units does not give an
  over-confident interval; for many units it is the plain percentile interval. With fewer than
  :data:`MIN_UNITS` units no decision is made: below that, not even units that all agree reach the level
  (a sign test's smallest p-value, 2 / 2^n, exceeds 1 − LEVEL).
- **Infinite values are kept.** An exact copy of the ground truth has an infinite PSNR; a mean with an infinite
  value is infinite (what NerfBaselines, torchmetrics and 3DGS report). Two equal values differ by 0 (also two
  infinities), so two exact copies tie; a difference that is infinite both ways is undefined and decides
  nothing.
- **Guards** (:class:`Guard`): a difference must also reach a floor (NVS-SQA's measured noise floor), it is not
  decisive when one of the two values is flagged, and a difference in favour of a method that a known blind spot
  of the metric favours must exceed that bias (``bias_a`` / ``bias_b``, measured by ``make validity``).

Resamples come from a generator seeded by the report's seed and the names compared: the same inputs and seed give
the same intervals, bit for bit. No correction for multiple comparisons is made.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist

import numpy as np

from models.stats import correlations

LEVEL = 0.95
MIN_UNITS = math.ceil(math.log2(2 / (1 - LEVEL)))  # 6
TARGET_UNITS = 10  # windows per sequence: enough for a decision (>= MIN_UNITS), each as long as it can be
JOD_PREFERENCE_AT_1 = 0.75  # 1 JOD: 75 % of observers prefer the better condition (JOD's definition)
_NORMAL = NormalDist()
BETTER, WORSE, TIE = "better", "worse", "tie"
MIRROR = {BETTER: WORSE, WORSE: BETTER, TIE: TIE}


def preference(delta_jod: float) -> float:
    """Share of observers expected to prefer the condition ``delta_jod`` JOD better: Phi(Phi^-1(0.75) · ΔJOD)
    (JOD units are scaled so that 1 JOD = 75 % preference; ColorVideoVDP's and pwcmp's convention)."""
    return _NORMAL.cdf(_NORMAL.inv_cdf(JOD_PREFERENCE_AT_1) * delta_jod)


def rng_for(seed: int, *names: str) -> np.random.Generator:
    """A generator for one comparison: seeded by the report's seed and the names compared (order matters)."""
    return np.random.default_rng([seed, zlib.crc32("\0".join(names).encode())])


def mean_of(values: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """The mean, infinite when a value is (NaN when values are infinite both ways), without a warning."""
    with np.errstate(invalid="ignore"):
        return np.mean(values, axis=axis)


def resample_means(values: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` bootstrap means of ``values``: each resample draws ``len(values)`` units with replacement, as
    ``rng.integers(0, m, (n, m))`` (the draw of ``scipy.stats.bootstrap``)."""
    idx = rng.integers(0, len(values), size=(n, len(values)))
    return np.asarray(mean_of(values[idx], axis=1))


def expanded_alpha(n_units: int, level: float = LEVEL) -> float:
    """The two-sided tail of Hesterberg's expanded percentile interval for ``n_units`` units:
    2·Phi(−sqrt(n / (n − 1)) · t_{n−1}(1 − α/2)), α = 1 − ``level`` (→ α as n grows)."""
    from scipy.stats import t

    if n_units < 2:
        raise ValueError(f"n_units={n_units}: an interval needs at least 2 units")
    z = math.sqrt(n_units / (n_units - 1)) * float(t.ppf(1 - (1 - level) / 2, n_units - 1))
    return 2 * _NORMAL.cdf(-z)


def quantile(values: np.ndarray, q: float) -> float:
    """The ``q`` quantile by linear interpolation (numpy's and scipy's default), exact where the two neighbours
    are equal, so that infinite resample means give an infinite bound instead of NaN."""
    s = np.sort(values)
    pos = q * (len(s) - 1)
    i = int(math.floor(pos))
    j = min(i + 1, len(s) - 1)
    lo, hi, frac = float(s[i]), float(s[j]), pos - i
    if lo == hi or frac == 0.0:
        return lo
    return lo + (hi - lo) * frac


def percentile_interval(means: np.ndarray, n_units: int, level: float = LEVEL) -> tuple[float, float]:
    """The expanded percentile interval from bootstrap ``means`` of ``n_units`` units."""
    tail = expanded_alpha(n_units, level) / 2
    return quantile(means, tail), quantile(means, 1 - tail)


@dataclass(frozen=True)
class Estimate:
    """The mean of one method's units with its interval (None with fewer than 2 units)."""

    mean: float
    low: float | None
    high: float | None
    units: int


def estimate(values: np.ndarray, rng: np.random.Generator, n: int) -> Estimate:
    """The mean of ``values`` (the units) and its expanded percentile interval from ``n`` resamples."""
    values = np.asarray(values, np.float64)
    mean = float(mean_of(values)) if len(values) else math.nan
    if len(values) < 2:
        return Estimate(mean, None, None, len(values))
    lo, hi = percentile_interval(resample_means(values, rng, n), len(values))
    return Estimate(mean, lo, hi, len(values))


def paired_differences(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a − b`` per unit, 0 where the two are equal (two exact copies: both +inf)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    with np.errstate(invalid="ignore"):
        return np.where(a == b, 0.0, a - b)


@dataclass(frozen=True)
class Guard:
    """What can withhold a decision besides the interval. ``floor``: the smallest difference that counts;
    ``flagged``: why one of the two values is not to be trusted (no decision then); ``bias_a`` / ``bias_b``: how
    much a blind spot of the metric may have raised A's / B's value relative to the other's, ``bias_why`` says
    which (a decision in that method's favour must exceed it)."""

    floor: float = 0.0
    flagged: str = ""
    bias_a: float = 0.0
    bias_b: float = 0.0
    bias_why: str = ""


# why a comparison was decided as it was (the text is made per direction by Comparison.why)
DECIDED, INCLUDES_ZERO, WITHIN_FLOOR, BIASED = "decided", "includes-zero", "within-floor", "blind-spot"
FLAGGED, TOO_FEW, UNDEFINED = "flagged", "too-few", "undefined"
UNRANKED = (FLAGGED, TOO_FEW, UNDEFINED)  # reasons that leave a method uncompared


@dataclass(frozen=True)
class Comparison:
    """A vs B on one metric, oriented so that > 0 means A is better: the mean paired difference over ``units``
    shared units (unpaired: the difference of means), its interval, the decision and the reason for it."""

    a: str
    b: str
    delta: float
    low: float | None
    high: float | None
    units: int
    unit: str  # "frames" | "windows"
    paired: bool
    decision: str  # "better" | "worse" | "tie"
    reason: str
    guard: Guard

    @property
    def why(self) -> str:
        """The reason in words, from A's side."""
        g, level = self.guard, f"{LEVEL:.0%}"
        floor = f" and beyond the {g.floor:g} noise floor" if g.floor else ""
        kind = "" if self.paired else " (unpaired: no shared units)"
        text = {
            DECIDED: f"{level} interval {'above' if self.decision == BETTER else 'below'} 0{floor}{kind}",
            INCLUDES_ZERO: f"{level} interval includes 0{kind}",
            WITHIN_FLOOR: f"within the {g.floor:g} noise floor",
            BIASED: f"not decisive: {g.bias_why}",
            FLAGGED: f"not decisive: {g.flagged}",
            TOO_FEW: f"only {self.units} {self.unit} to compare: a {level} decision needs at least {MIN_UNITS}",
            UNDEFINED: "each reproduces some units exactly where the other does not: the mean difference is "
                       "undefined",
        }  # fmt: skip
        return text[self.reason]

    def mirror(self) -> Comparison:
        """B vs A: the same evidence seen from B."""
        g = replace(self.guard, bias_a=self.guard.bias_b, bias_b=self.guard.bias_a)
        return replace(self, a=self.b, b=self.a, delta=-self.delta,
                       low=None if self.high is None else -self.high, high=None if self.low is None else -self.low,
                       decision=MIRROR[self.decision], guard=g)  # fmt: skip


def decide(delta: float, lo: float, hi: float, guard: Guard) -> tuple[str, str]:
    """(decision, reason) for an interval: A better when the interval, less A's possible bias, lies above 0 and
    the difference, less that bias, reaches the floor; worse likewise; else a tie, with the reason that held it."""
    if guard.flagged:
        return TIE, FLAGGED
    if lo - guard.bias_a > 0 and delta - guard.bias_a >= guard.floor:
        return BETTER, DECIDED
    if hi + guard.bias_b < 0 and delta + guard.bias_b <= -guard.floor:
        return WORSE, DECIDED
    if (lo > 0 and delta >= guard.floor) or (hi < 0 and delta <= -guard.floor):
        return TIE, BIASED
    if lo <= 0 <= hi:
        return TIE, INCLUDES_ZERO
    return TIE, WITHIN_FLOOR


def compare(a: str, b: str, ua: np.ndarray, ub: np.ndarray, paired: bool, unit: str, rng: np.random.Generator,
            n: int, guard: Guard = Guard()) -> Comparison:  # noqa: B008 (a frozen, immutable default)
    """Compare A and B on oriented values (> 0 better). ``paired``: ``ua`` and ``ub`` are the same units in the
    same order and their differences are resampled; else each is resampled on its own."""
    ua, ub = np.asarray(ua, np.float64), np.asarray(ub, np.float64)
    if paired:
        d = paired_differences(ua, ub)
        units, delta = len(d), float(mean_of(d)) if len(d) else math.nan
    else:
        units = min(len(ua), len(ub))
        delta = float(mean_of(ua) - mean_of(ub)) if units else math.nan

    def tie(reason: str, lo: float | None = None, hi: float | None = None) -> Comparison:
        return Comparison(a, b, delta, lo, hi, units, unit, paired, TIE, reason, guard)

    if units < MIN_UNITS:
        return tie(TOO_FEW)
    if math.isnan(delta):
        return tie(UNDEFINED)
    means = resample_means(d, rng, n) if paired else resample_means(ua, rng, n) - resample_means(ub, rng, n)
    lo, hi = percentile_interval(means, units)
    decision, reason = decide(delta, lo, hi, guard)
    return Comparison(a, b, delta, lo, hi, units, unit, paired, decision, reason, guard)


def ranks(names: Sequence[str], comparisons: dict[tuple[str, str], Comparison]) -> dict[str, int | None]:
    """Rank of each method: 1 + the number of methods decisively better than it (ties share a rank). A method
    none of whose comparisons could decide anything (too few units, a flagged value) has no rank (None): it is
    not placed above methods it was not compared with."""
    out: dict[str, int | None] = {}
    for m in names:
        mine = [c for (x, _), c in comparisons.items() if x == m]
        if not mine or all(c.reason in UNRANKED for c in mine):
            out[m] = None
        else:
            out[m] = 1 + sum(c.decision == WORSE for c in mine)
    return out


def unit_window(n_frames: int, min_frames: int, max_window: int) -> int:
    """Frames per unit window of a sequence (NVS-SQA, FovVideoVDP): about :data:`TARGET_UNITS` disjoint windows,
    each at least ``min_frames`` (the shortest sequence NVS-SQA scores stably) and at most ``max_window`` long."""
    return max(min_frames, min(max_window, n_frames // TARGET_UNITS))


def unit_spans(n_frames: int, window: int) -> list[tuple[int, int]]:
    """The disjoint windows ``[start, end)`` of ``window`` frames from the start of the path (a remainder shorter
    than a window is left out)."""
    return [(s, s + window) for s in range(0, n_frames - window + 1, window)]


def disjoint(starts: Sequence[int], ends: Sequence[int]) -> list[int]:
    """Indices of windows that do not overlap, taken greedily from the start of the path."""
    keep, end = [], -1
    for i, (s, e) in enumerate(zip(starts, ends, strict=True)):
        if s >= end:
            keep.append(i)
            end = e
    return keep


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-b between two metrics' values over the same methods (both oriented so higher is better),
    :func:`models.stats.correlations`' KRCC; None for fewer than 3 methods or a constant metric."""
    if len(x) < 3:
        return None
    t = correlations(_finite_order(x), _finite_order(y))["krcc"]
    return None if not np.isfinite(t) else float(t)


def _finite_order(x: Sequence[float]) -> np.ndarray:
    """``x`` with infinities replaced by values beyond every finite one: the same order, which is all tau reads."""
    a = np.asarray(x, np.float64)
    finite = a[np.isfinite(a)]
    span = (finite.max() - finite.min() + 1.0) if len(finite) else 1.0
    top, bottom = (finite.max() if len(finite) else 0.0) + span, (finite.min() if len(finite) else 0.0) - span
    return np.where(a == np.inf, top, np.where(a == -np.inf, bottom, a))
