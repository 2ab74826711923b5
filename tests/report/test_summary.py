"""The scene summary on measured parts made up so that the right statement is known: flags, blind spots, exact
copies, missing frames, methods without units, failures within the floor."""

import math

import numpy as np
import pytest

from models.nvs_sqa.validity import Limits
from models.report import stats
from models.report.failures import Floors
from models.report.summary import scene_summary

LIM = Limits(version="t", min_frames=6, max_frames=360, window=240, stride=120, min_side=576, max_side=1152,
             score_min=-16.0, score_max=1.4, max_background_fraction=0.1, max_noise_sigma=2.0, tolerance_jod=0.15,
             noise_floor_jod=0.08, curve_window=30, curve_stride=15, curve_min_frames=60, curve_noise_floor_jod=0.2,
             max_blockiness=1.0, noise_bias=[[0.4, 0.0], [2.0, 0.6], [9.0, 4.0]], blockiness_bias=[[0.2, 0.0],
             [3.0, 1.0]], measured_by="test")  # fmt: skip
FLOORS = Floors("t", "test", {"lpips-alex": 0.01, "psnr": 1e-4, "ssim": 0.01})
FRAMES = [f"{i:04d}.png" for i in range(60)]


def jod(name, score, units, noise=0.4, block=0.2, warnings=()):
    starts = list(range(0, 6 * len(units), 6))
    return {"score": score, "units": {"starts": starts, "ends": [s + 6 for s in starts], "scores": list(units)},
            "warnings": list(warnings), "noise_sigma": noise, "blockiness": block, "curve": None}


def fullref(psnr, lpips, frames=FRAMES, unmatched=()):
    rows = [{"frame": f, "psnr": p, "lpips": v} for f, p, v in zip(frames, psnr, lpips, strict=True)]
    return {"preset": "nerfbaselines", "higher_is_better": {"psnr": True, "lpips": False}, "rows": rows,
            "unmatched": list(unmatched), "n_paired": len(rows), "errors": []}


def method(name, **parts):
    return {"name": name, "key": f"s/{name}", "errors": [], **parts}


def summary(methods, n=1000):
    return scene_summary("s", methods, LIM, 0, n, 2, FLOORS)


rng = np.random.default_rng(0)
BASE = rng.normal(-2.0, 0.05, 10)


def test_noise_the_model_rewards_is_not_called_better():
    """noise6 scores 0.4 JOD above the clean copy on every window, but its estimated noise alone can add 0.6: no
    decision for it, no '% prefer'; the clean copy is still decisively better than a blurred render whose noise
    is lower (a bias in the other method's favour does not withhold a decision against it)."""
    s = summary([method("copy", jod=jod("copy", -2.0, BASE)),
                 method("noise6", jod=jod("noise6", -1.6, BASE + 0.4, noise=2.0)),
                 method("blur", jod=jod("blur", -2.5, BASE - 0.5, noise=0.2))])
    j = s.metric("jod")
    c = j.pairs[("noise6", "copy")]
    assert c.decision == stats.TIE and c.reason == stats.BIASED and j.prefer(c) is None
    assert "NVS-SQA rewards noise" in c.why and "noise6's noise σ 2 vs copy's 0.4" in c.why
    assert j.pairs[("copy", "blur")].decision == stats.BETTER and j.prefer(j.pairs[("copy", "blur")]) > 0.5
    assert any("blind spots (copy vs noise6" in line for line in s.statements)


def test_flagged_scores_are_neither_compared_nor_ranked_and_named_on_top():
    s = summary([method("copy", jod=jod("copy", -2.0, BASE)),
                 method("noise15", jod=jod("noise15", 1.5, BASE + 3.5, noise=8.6,
                                           warnings=["estimated noise sigma 8.6 > 2"]))])
    j = s.metric("jod")
    assert j.entries["noise15"].rank is None and j.entries["noise15"].flags
    assert j.pairs[("noise15", "copy")].reason == stats.FLAGGED
    assert "noise15's score is flagged — estimated noise sigma 8.6 > 2" in j.pairs[("copy", "noise15")].why
    assert any(line.startswith("⚠ noise15: NVS-SQA score not to be trusted — estimated noise") for line in s.statements)
    assert j.entries["copy"].rank is None  # its only comparison could decide nothing


def test_exact_copy_ranks_first_with_an_infinite_psnr_and_ties_with_another_copy():
    finite = list(rng.normal(35, 1, 60))
    s = summary([method("copy", fullref=fullref([math.inf] * 60, [0.0] * 60)),
                 method("copy2", fullref=fullref([math.inf] * 60, [0.0] * 60)),
                 method("q95", fullref=fullref(finite, list(rng.uniform(0.01, 0.02, 60))))])
    p = s.metric("psnr")
    assert p.entries["copy"].value == math.inf and p.entries["copy"].rank == 1 and p.entries["copy2"].rank == 1
    assert p.pairs[("copy", "copy2")].decision == stats.TIE and p.pairs[("copy", "q95")].decision == stats.BETTER
    assert p.entries["q95"].rank == 3 and p.order()[:2] == ["copy", "copy2"]


def test_identical_on_shared_frames_but_one_frame_short_is_a_tie():
    psnr = list(rng.normal(30, 2, 60))
    lp = list(rng.uniform(0.05, 0.2, 60))
    s = summary([method("full", fullref=fullref(psnr, lp)),
                 method("short", fullref=fullref(psnr[:59], lp[:59], FRAMES[:59], unmatched=[]))])
    for key in ("psnr", "lpips"):
        c = s.metric(key).pairs[("full", "short")]
        assert (c.delta, c.units, c.decision) == (0.0, 59, stats.TIE), key
        assert s.metric(key).entries["short"].rank == s.metric(key).entries["full"].rank == 1


def test_a_method_without_units_is_not_ranked_above_anyone():
    s = summary([method("a", jod=jod("a", -2.0, BASE)), method("b", jod=jod("b", -2.5, BASE - 0.5)),
                 method("short", jod=jod("short", -1.0, []))])
    j = s.metric("jod")
    assert j.entries["short"].rank is None and "only 0 windows" in j.entries["short"].unranked_why
    assert (j.entries["a"].rank, j.entries["b"].rank) == (1, 2)
    assert j.order() == ["a", "b", "short"]


def test_frames_left_out_are_counted():
    s = summary([method("a", fullref=fullref([30.0] * 50, [0.1] * 50, FRAMES[:50], unmatched=FRAMES[50:]))])
    assert s.metric("psnr").entries["a"].excluded == {"no ground truth": 10}


def test_failures_only_beyond_the_floor():
    near = [0.009] * 59 + [0.012]
    bad = [0.009] * 50 + [0.3] * 10
    s = summary([method("near", fullref=fullref([45.0] * 60, near)), method("bad", fullref=fullref([45.0] * 60, bad))])
    assert s.failures["near"].frames == [] and "no frame is worse" in s.failures["near"].frames_note
    assert [f.frame for f in s.failures["bad"].frames] == ["0050.png", "0051.png"]
    assert s.failures["bad"].frames[0].beyond == pytest.approx(0.3 - 0.009)
