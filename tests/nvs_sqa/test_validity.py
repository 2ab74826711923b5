"""Validity checks and windowed scoring: exact values on tiny arrays, and the released model's behaviour on the
examples repeated to 1200 frames and blurred over part of a 240-frame path."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from consts import EXAMPLES_DIR
from models.frames import open_frame_folder
from models.nvs_sqa.network import MIN_FRAME_SIZE
from models.nvs_sqa.scorer import WindowedScore, window_starts
from models.nvs_sqa.validity import LIMITS_FILE, FrameStats, Limits, check, noise_sigma
from models.nvs_sqa.validity_bench import pingpong, rise_limit


# --------------------------------------------------------------------------------------------- exact, no model
def test_window_starts_cover_every_frame():
    assert window_starts(300, 120, 60).tolist() == [0, 60, 120, 180]
    assert window_starts(250, 120, 60).tolist() == [0, 60, 120, 130]  # the last window ends at the last frame
    assert window_starts(100, 120, 60).tolist() == [0]  # shorter than a window: one window
    with pytest.raises(Exception, match="must be >= 1"):
        window_starts(10, 0, 1)


def test_windowed_score_summary():
    w = WindowedScore("s", np.array([0, 60, 120]), np.array([120, 180, 240]), np.array([-2.0, -3.0, -1.0]))
    assert w.score == pytest.approx(-2.0) and w.worst == (60, 180, -3.0)


def test_pingpong_path():
    assert pingpong(4, 10).tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    assert pingpong(1, 3).tolist() == [0, 0, 0]


def test_noise_estimate_measures_white_noise():
    flat = np.full((256, 256), 128.0)
    assert noise_sigma(flat) == 0.0
    rng = np.random.default_rng(0)
    assert noise_sigma(flat + rng.normal(0, 10, flat.shape)) == pytest.approx(10.0, rel=0.03)


def test_frame_stats_dark_fraction_and_noise():
    frame = np.full((64, 64, 3), 200, np.uint8)
    frame[:, :32] = 0  # left half: a hole
    st = FrameStats()
    out = list(st.watch([frame, frame]))
    assert len(out) == 2 and out[0] is frame  # frames pass through unchanged
    assert st.n == 2 and st.dark_fraction == 0.5
    assert st.noise_sigma >= 0.0


def test_check_names_what_is_outside_and_the_range():
    lim = Limits(min_frames=6, min_side=576, max_side=1152, score_min=-16.0, score_max=1.4, max_dark_fraction=0.1,
                 max_noise_sigma=2.0)
    assert check(120, 960, 768, -2.0, None, lim) == []
    reasons = check(2, 240, 192, 4.5, None, lim)
    assert reasons == ["2 frames < 6 (validated: 6+ frames)",
                       "shorter side 192 px outside the validated 576-1152 px",
                       "score 4.50 outside the benchmark labels' range -16.00..1.40"]
    dark = FrameStats(n=1, dark=0.5, noise=[5.0])
    assert check(120, 960, 768, -2.0, dark, lim) == [
        "50% of the pixels are black holes (validated: up to 10%)",
        "estimated noise sigma 5.0 > 2 (0-255 scale)"]


def test_rise_limit_interpolates_the_crossing():
    rows = [{"x": 0.0, "score": -2.0}, {"x": 1.0, "score": -1.95}, {"x": 2.0, "score": -1.75}]
    assert rise_limit(rows, "x", 0.15) == pytest.approx(1.5)  # -1.85 is reached halfway between 1 and 2
    assert rise_limit(rows[:2], "x", 0.15) == 1.0  # never crosses: the last level


def test_committed_limits_are_the_measured_ones():
    """validity_v1.json is what `make validity` derived; the examples' own conditions are inside it."""
    saved = json.loads(LIMITS_FILE.read_text())
    lim = Limits.load()
    assert lim.to_dict() == {**Limits().to_dict(), **saved}
    assert lim.min_frames <= 120 <= lim.max_frames and lim.min_side <= 768 <= lim.max_side
    assert lim.window <= lim.max_frames and 0 < lim.stride <= lim.window


def test_examples_raise_no_warning_from_their_frames():
    lim = Limits.load()
    for seq in ("Giraffe+NeRF", "Giraffe+IBRNet-C"):
        s = open_frame_folder(EXAMPLES_DIR / seq, MIN_FRAME_SIZE)
        st = FrameStats()
        for _ in st.watch(s):
            pass
        assert check(s.n_frames, s.width, s.height, -2.0, st, lim) == [], seq


# --------------------------------------------------------------------------------------------- released model
@pytest.fixture(scope="module")
def example_feats(released_model):
    """Per-frame features of both examples (the view encoder is per frame, so paths can be assembled from them)."""
    torch.manual_seed(0)
    return {s: released_model.frame_features(EXAMPLES_DIR / s, batch_size=2)
            for s in ("Giraffe+NeRF", "Giraffe+IBRNet-C")}


def test_examples_repeated_to_1200_frames_score_like_120(released_model, example_feats):
    """One pass over 1200 frames scores +4.7/+5.0 (the temporal model leaves its range); the default windows keep
    the score within 0.3 JOD of the 120-frame one."""
    for seq, f in example_feats.items():
        ref, mode = released_model.score_features(f)
        assert mode == "single"
        long = f[pingpong(len(f), 1200)]
        one_pass, _ = released_model.score_features(long, window=0)
        windowed, mode = released_model.score_features(long)
        assert mode.startswith("windows")
        assert one_pass > ref + 5.0, (seq, one_pass, ref)
        assert abs(windowed - ref) < 0.3, (seq, windowed, ref)


def test_blur_on_part_of_the_path_is_where_the_curve_is_lowest(released_model, example_feats):
    """Gaussian blur (sigma 3 px) on frames 60-119 of a 240-frame path: the lowest window lies over that span."""
    seq = "Giraffe+NeRF"
    frames = np.stack(list(open_frame_folder(EXAMPLES_DIR / seq, MIN_FRAME_SIZE)))
    path = pingpong(len(frames), 240)
    blurred = np.stack([np.clip(np.rint(gaussian_filter(frames[i].astype(np.float32), (3, 3, 0))), 0, 255)
                        .astype(np.uint8) for i in path[60:120]])
    feats = example_feats[seq][path].clone()
    feats[60:120] = released_model.frame_features(blurred, batch_size=2)
    starts, ends, scores = released_model.window_scores(feats, 60, 30)
    worst = int(np.argmin(scores))
    assert (starts[worst], ends[worst]) == (60, 120), list(zip(starts, scores, strict=True))
