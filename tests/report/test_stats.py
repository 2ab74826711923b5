"""The report's statistics: against scipy's bootstrap (same resamples), exact cases computed by hand, and the
guards that withhold decisions."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from models.report import stats
from models.report.stats import BETTER, TIE, WORSE, Guard


def test_preference_is_75_percent_at_one_jod():
    assert stats.preference(0.0) == 0.5
    assert stats.preference(1.0) == pytest.approx(0.75, abs=1e-12)
    assert stats.preference(-1.0) == pytest.approx(0.25, abs=1e-12)
    assert stats.preference(2.0) == pytest.approx(0.5 * (1 + math.erf(2 * 0.6744897501960817 / math.sqrt(2))))


def test_min_units_is_where_a_sign_test_can_reach_the_level():
    assert stats.MIN_UNITS == 6
    assert 2 / 2 ** stats.MIN_UNITS <= 1 - stats.LEVEL < 2 / 2 ** (stats.MIN_UNITS - 1)


def test_expanded_alpha_by_hand_and_its_limit():
    # n = 10: sqrt(10/9) * t_9(0.975) = 1.0541 * 2.2622 = 2.3846 -> 2 * Phi(-2.3846) = 0.01710
    assert stats.expanded_alpha(10) == pytest.approx(2 * sps.norm.cdf(-math.sqrt(10 / 9) * sps.t.ppf(0.975, 9)))
    assert stats.expanded_alpha(10) == pytest.approx(0.0171, abs=1e-4)
    assert stats.expanded_alpha(100000) == pytest.approx(0.05, abs=1e-4)
    with pytest.raises(ValueError):
        stats.expanded_alpha(1)


@pytest.mark.parametrize("n", [8, 40])
def test_paired_interval_equals_scipy_bootstrap_on_the_same_resamples(n):
    """scipy.stats.bootstrap(paired=True, method='percentile') draws rng.integers(0, n, (B, n)) once: with the same
    generator state and the expanded level, its interval is ours."""
    rng = np.random.default_rng(7)
    a, b = rng.normal(0.3, 1, n), rng.normal(0, 1, n)
    c = stats.compare("A", "B", a, b, True, "frames", stats.rng_for(3, "m", "A", "B"), 3000)
    level = 1 - stats.expanded_alpha(n)
    ref = sps.bootstrap((a, b), lambda x, y, axis=-1: np.mean(x - y, axis=axis), paired=True, vectorized=True,
                        n_resamples=3000, batch=None, method="percentile", confidence_level=level,
                        rng=stats.rng_for(3, "m", "A", "B"))
    assert c.delta == pytest.approx(float(np.mean(a - b)), abs=1e-15)
    assert (c.low, c.high) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high), abs=1e-12)


def test_unpaired_interval_equals_scipy_bootstrap_on_the_same_resamples():
    rng = np.random.default_rng(8)
    a, b = rng.normal(1, 1, 30), rng.normal(0, 1, 30)
    c = stats.compare("A", "B", a, b, False, "frames", stats.rng_for(0, "m"), 2000)
    ref = sps.bootstrap((a, b), lambda x, y, axis=-1: np.mean(x, axis=axis) - np.mean(y, axis=axis),
                        vectorized=True, n_resamples=2000, batch=None, method="percentile",
                        confidence_level=1 - stats.expanded_alpha(30), rng=stats.rng_for(0, "m"))
    assert (c.low, c.high) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high), abs=1e-12)
    assert c.decision == BETTER and not c.paired and "unpaired" in c.why


def test_estimate_is_the_mean_of_the_units_with_its_interval():
    units = np.arange(10.0)
    e = stats.estimate(units, stats.rng_for(0, "x"), 2000)
    assert e.mean == 4.5 and e.units == 10 and e.low < 4.5 < e.high
    ref = sps.bootstrap((units,), np.mean, n_resamples=2000, method="percentile", batch=None,
                        confidence_level=1 - stats.expanded_alpha(10), rng=stats.rng_for(0, "x"))
    assert (e.low, e.high) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high), abs=1e-12)
    one = stats.estimate(np.array([1.0]), stats.rng_for(0, "x"), 100)
    assert (one.mean, one.low, one.high, one.units) == (1.0, None, None, 1)


def test_identical_on_shared_units_is_a_tie_whatever_else_differs():
    """The difference comes from the shared units only: a method equal to another on every shared frame is tied
    with it (an interval of width 0 around 0), never 'decisively different'."""
    x = np.random.default_rng(1).normal(30, 2, 59)
    c = stats.compare("A", "B", x, x.copy(), True, "frames", stats.rng_for(0, "psnr"), 2000)
    assert (c.delta, c.low, c.high, c.decision) == (0.0, 0.0, 0.0, TIE) and "includes 0" in c.why


def test_infinite_values_exact_copies_tie_and_beat_everything_finite():
    inf = np.full(20, np.inf)
    finite = np.random.default_rng(2).normal(40, 1, 20)
    both = stats.compare("copy", "copy2", inf, inf.copy(), True, "frames", stats.rng_for(0, "p"), 500)
    assert both.delta == 0.0 and both.decision == TIE
    win = stats.compare("copy", "x", inf, finite, True, "frames", stats.rng_for(0, "p"), 500)
    assert win.delta == math.inf and win.low == math.inf and win.decision == BETTER
    assert win.mirror().decision == WORSE and win.mirror().high == -math.inf
    # exact on different frames both ways: the mean difference is undefined, nothing is decided
    a, b = finite.copy(), finite.copy() - 1
    a[0], b[1] = np.inf, np.inf
    undefined = stats.compare("a", "b", a, b, True, "frames", stats.rng_for(0, "p"), 500)
    assert undefined.decision == TIE and "undefined" in undefined.why
    # one infinite frame among 20: most resamples are infinite, but not the lower tail of the expanded interval
    one = finite + 1.0
    one[3] = np.inf
    partial = stats.compare("a", "b", one, finite, True, "frames", stats.rng_for(0, "p"), 2000)
    assert partial.delta == math.inf and math.isfinite(partial.low) and partial.decision == BETTER


def test_quantile_is_numpys_linear_and_exact_between_equal_neighbours():
    x = np.random.default_rng(3).normal(size=101)
    for q in (0.0, 0.013, 0.5, 0.975, 1.0):
        assert stats.quantile(x, q) == pytest.approx(float(np.quantile(x, q)), abs=1e-15)
    assert stats.quantile(np.array([1.0, np.inf, np.inf]), 0.9) == math.inf
    assert stats.quantile(np.array([1.0, 2.0, np.inf]), 0.25) == 1.5


def test_too_few_units_decide_nothing_even_when_all_agree():
    a, b = np.arange(5.0) + 10, np.arange(5.0)
    c = stats.compare("A", "B", a, b, True, "windows", stats.rng_for(0, "j"), 500)
    assert c.decision == TIE and c.low is None and c.why.startswith("only 5 windows to compare")
    six = stats.compare("A", "B", np.arange(6.0) + 10, np.arange(6.0), True, "windows", stats.rng_for(0, "j"), 500)
    assert six.decision == BETTER


def test_floor_flag_and_blind_spot_guards():
    rng = np.random.default_rng(4)
    base = rng.normal(0, 0.05, 12)
    a, b = base + 0.5, base
    args = ("A", "B", a, b, True, "windows", stats.rng_for(0, "jod"), 2000)
    assert stats.compare(*args).decision == BETTER
    floored = stats.compare(*args, Guard(floor=0.6))
    assert floored.decision == TIE and floored.why == "within the 0.6 noise floor"
    flagged = stats.compare(*args, Guard(floor=0.08, flagged="A's score is flagged: estimated noise sigma 8.6"))
    assert flagged.decision == TIE and flagged.why == "not decisive: A's score is flagged: estimated noise sigma 8.6"
    biased = stats.compare(*args, Guard(floor=0.08, bias_a=0.7, bias_why="NVS-SQA rewards noise"))
    assert biased.decision == TIE and biased.why == "not decisive: NVS-SQA rewards noise"
    # a bias in favour of the *worse* method does not withhold the decision against it
    against = stats.compare(*args, Guard(floor=0.08, bias_b=0.7, bias_why="NVS-SQA rewards noise"))
    assert against.decision == BETTER and "above 0 and beyond the 0.08 noise floor" in against.why
    assert against.mirror().decision == WORSE and against.mirror().why.startswith("95% interval below 0")
    assert biased.mirror().guard.bias_b == 0.7 and biased.mirror().decision == TIE


def test_ranks_count_decisively_better_methods_and_leave_the_uncompared_unranked():
    def comp(a, b, d, reason=stats.DECIDED):
        return stats.Comparison(a, b, 0.0, 0.0, 0.0, 10, "frames", True, d, reason, Guard())

    pairs = {}
    for a, b, d in (("A", "B", TIE), ("A", "C", BETTER), ("B", "C", BETTER)):
        pairs[(a, b)] = comp(a, b, d)
        pairs[(b, a)] = pairs[(a, b)].mirror()
    for other in "ABC":
        pairs[("D", other)] = comp("D", other, TIE, stats.TOO_FEW)
        pairs[(other, "D")] = pairs[("D", other)].mirror()
    assert stats.ranks(["A", "B", "C", "D"], pairs) == {"A": 1, "B": 1, "C": 3, "D": None}


def test_seeded_by_seed_and_names():
    x = np.arange(10.0)
    a = stats.resample_means(x, stats.rng_for(0, "psnr", "A"), 500)
    b = stats.resample_means(x, stats.rng_for(0, "psnr", "A"), 500)
    c = stats.resample_means(x, stats.rng_for(0, "psnr", "B"), 500)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_disjoint_windows_are_taken_greedily_from_the_start():
    starts, ends = [0, 15, 30, 45, 60, 75, 90], [30, 45, 60, 75, 90, 105, 120]
    assert stats.disjoint(starts, ends) == [0, 2, 4, 6]
    assert stats.disjoint([0, 10], [10, 20]) == [0, 1]


def test_kendall_tau_ranks_infinities_first():
    assert stats.kendall_tau([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert stats.kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert stats.kendall_tau([1, 2, math.inf], [1, 2, 3]) == pytest.approx(1.0)
    assert stats.kendall_tau([1, 2], [1, 2]) is None
    assert stats.kendall_tau([1, 2, 3], [5, 5, 5]) is None
