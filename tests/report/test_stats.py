"""The report's statistics on exact, made-up numbers."""

import math

import numpy as np
import pytest

from models.report import stats


def test_preference_is_75_percent_at_one_jod():
    assert stats.preference(0.0) == 0.5
    assert stats.preference(1.0) == pytest.approx(0.75, abs=1e-12)
    assert stats.preference(-1.0) == pytest.approx(0.25, abs=1e-12)
    assert stats.preference(2.0) == pytest.approx(0.5 * (1 + math.erf(2 * 0.6744897501960817 / math.sqrt(2))))


def test_disjoint_windows_are_taken_greedily_from_the_start():
    starts, ends = [0, 15, 30, 45, 60, 75, 90], [30, 45, 60, 75, 90, 105, 120]
    assert stats.disjoint(starts, ends) == [0, 2, 4, 6]
    assert stats.disjoint([0, 10], [10, 20]) == [0, 1]


def test_bootstrap_is_seeded_by_seed_and_names():
    x = np.arange(10.0)
    a = stats.bootstrap_means(x, stats.rng_for(0, "psnr", "A"), 500)
    b = stats.bootstrap_means(x, stats.rng_for(0, "psnr", "A"), 500)
    c = stats.bootstrap_means(x, stats.rng_for(0, "psnr", "B"), 500)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_estimate_interval_is_centred_on_the_value_and_needs_two_units():
    units = np.array([1.0, 2.0, 3.0, 4.0])
    e = stats.estimate(10.0, units, "windows", stats.rng_for(0, "x"), 2000)
    lo, hi = stats.interval(stats.bootstrap_means(units, stats.rng_for(0, "x"), 2000))
    assert (e.low, e.high) == pytest.approx((lo + 7.5, hi + 7.5))
    assert e.units == 4 and e.low < 10.0 < e.high
    one = stats.estimate(1.0, np.array([1.0]), "frames", stats.rng_for(0, "x"), 100)
    assert one.low is None and one.high is None and one.units == 1


def test_paired_difference_decides_better_and_respects_the_floor():
    rng = np.random.default_rng(1)
    base = rng.normal(0, 1, 40)
    a, b = base + 0.5, base  # paired: A is 0.5 better on every unit
    c = stats.compare("A", "B", 0.5, a, b, True, stats.rng_for(0, "m"), 1000)
    assert c.decision == "better" and c.low == pytest.approx(0.5) and c.high == pytest.approx(0.5)
    floored = stats.compare("A", "B", 0.5, a, b, True, stats.rng_for(0, "m"), 1000, floor=0.6)
    assert floored.decision == "tie" and "noise floor" in floored.why
    worse = stats.compare("B", "A", -0.5, b, a, True, stats.rng_for(0, "m"), 1000)
    assert worse.decision == "worse"


def test_unpaired_noise_is_a_tie_and_too_few_units_say_so():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 1, 30), rng.normal(0, 1, 30)
    c = stats.compare("A", "B", float(a.mean() - b.mean()), a, b, False, stats.rng_for(0, "m"), 2000)
    assert c.decision == "tie" and c.low < 0 < c.high and "includes 0" in c.why
    short = stats.compare("A", "B", 3.0, None, None, False, stats.rng_for(0, "m"), 100)
    assert short.decision == "tie" and "too few" in short.why


def test_ranks_count_decisively_better_methods():
    def comp(a, b, d):
        return stats.Comparison(a, b, 0.0, None, None, 0, True, d, "")

    pairs = {("A", "B"): comp("A", "B", "tie"), ("B", "A"): comp("B", "A", "tie"),
             ("A", "C"): comp("A", "C", "better"), ("C", "A"): comp("C", "A", "worse"),
             ("B", "C"): comp("B", "C", "better"), ("C", "B"): comp("C", "B", "worse")}
    assert stats.ranks(["A", "B", "C"], pairs) == {"A": 1, "B": 1, "C": 3}


def test_kendall_tau():
    assert stats.kendall_tau([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert stats.kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert stats.kendall_tau([1, 2], [1, 2]) is None
    assert stats.kendall_tau([1, 2, 3], [5, 5, 5]) is None
