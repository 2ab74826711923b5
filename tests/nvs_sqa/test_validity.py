"""Validity checks and windowed scoring: exact values on tiny arrays, the one window plan, and the limits file as
the one source of the limits."""

from __future__ import annotations

import json

import numpy as np
import pytest

from consts import EXAMPLES_DIR
from models.errors import InputError
from models.frames import open_frame_folder
from models.nvs_sqa.network import MIN_FRAME_SIZE
from models.nvs_sqa.validity import LIMITS_FILE, FrameStats, Limits, check, noise_sigma
from models.nvs_sqa.windows import WindowedScore, plan_windows, window_starts

LIM = Limits(version="t", min_frames=6, max_frames=360, window=240, stride=120, min_side=576, max_side=1152,
             score_min=-16.0, score_max=1.4, max_background_fraction=0.1, max_noise_sigma=2.0, tolerance_jod=0.15,
             noise_floor_jod=0.1, curve_window=30, curve_stride=15, curve_min_frames=60, curve_noise_floor_jod=0.2,
             max_blockiness=1.0, noise_bias=[[1.0, 0.0], [3.0, 0.5], [9.0, 4.0]], blockiness_bias=[[0.0, 0.0],
             [3.0, 1.0]], measured_by="test")  # fmt: skip


# --------------------------------------------------------------------------------------------- exact, no model
def test_window_starts_cover_every_frame():
    assert window_starts(300, 120, 60).tolist() == [0, 60, 120, 180]
    assert window_starts(250, 120, 60).tolist() == [0, 60, 120, 130]  # the last window ends at the last frame
    assert window_starts(100, 120, 60).tolist() == [0]  # shorter than a window: one window
    with pytest.raises(Exception, match="must be >= 1"):
        window_starts(10, 0, 1)


def test_windowed_score_summary():
    plan = plan_windows(240, 120, 60)
    w = WindowedScore("s", plan, np.array([-2.0, -3.0, -1.0]))
    assert w.score == pytest.approx(-2.0) and w.worst == (60, 180, -3.0) and w.mode == "windows 120/60 ×3"


def test_one_window_plan_for_every_path():
    """auto: one pass up to max_frames, windows of the validated size beyond; 0: one pass; N: windows of N every
    N/2; a sequence no longer than its window is one pass whatever asked for it."""
    single = plan_windows(120, None, 0, LIM)
    assert single.single and single.mode == "single" and (single.starts.tolist(), single.ends.tolist()) == ([0], [120])
    long = plan_windows(600, None, 0, LIM)
    assert (long.window, long.stride, long.starts.tolist(), long.ends.tolist()) == (240, 120, [0, 120, 240, 360],
                                                                                    [240, 360, 480, 600])
    assert plan_windows(600, 0, 0, LIM).single  # 0: always one pass
    assert plan_windows(24, 60, 0, LIM).mode == "single"  # --window 60 on 24 frames: one pass, said so
    assert plan_windows(130, 60, 0).mode == "windows 60/30 ×4"  # explicit N needs no limits file
    assert plan_windows(130, 60, 50).starts.tolist() == [0, 50, 70]


@pytest.mark.parametrize(("window", "stride", "why"), [
    (-1, 0, "use auto"), (0, 5, "a stride is for windows"), (60, 61, "a stride over the window of 60 frames"),
    (None, 241, "a stride over the window of 240 frames"), (60, -1, "the stride must be >= 0")])
def test_bad_window_settings_are_one_line_naming_the_parameters(window, stride, why):
    with pytest.raises(InputError, match=rf"^window={window}, stride={stride}: {why}"):
        plan_windows(100, window, stride, LIM)


def test_limits_have_one_source_the_file(tmp_path):
    with pytest.raises(TypeError):
        Limits()  # no defaults: nothing can silently stand in for the measured limits
    with pytest.raises(InputError, match=r"nope.json: the validity limits file is missing; restore it"):
        Limits.load(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text('{"version": "v1"}')
    with pytest.raises(InputError, match=r"bad.json: not a usable validity limits file \(TypeError: "):
        Limits.load(tmp_path / "bad.json")
    (tmp_path / "worse.json").write_text("{")
    with pytest.raises(InputError, match=r"worse.json: not a usable validity limits file \(JSONDecodeError"):
        Limits.load(tmp_path / "worse.json")


def test_noise_estimate_measures_white_noise():
    flat = np.full((256, 256), 128.0)
    assert noise_sigma(flat) == 0.0
    rng = np.random.default_rng(0)
    assert noise_sigma(flat + rng.normal(0, 10, flat.shape)) == pytest.approx(10.0, rel=0.03)


def test_frame_stats_background_fraction_and_noise():
    frame = np.full((64, 64, 3), 200, np.uint8)
    frame[:, :32] = 0  # left half: a hole
    st = FrameStats()
    out = list(st.watch([frame, frame]))
    assert len(out) == 2 and out[0] is frame  # frames pass through unchanged
    assert st.n == 2 and st.background_fraction == 0.5
    white = np.full((64, 64, 3), 250, np.uint8)  # an empty white background counts like a black one
    white[:32] = 120
    st = FrameStats()
    list(st.watch([white]))
    assert st.background_fraction == 0.5
    assert st.noise_sigma >= 0.0


def test_check_names_what_is_outside_and_the_range():
    lim = LIM
    assert check(120, 960, 768, -2.0, None, lim) == []
    reasons = check(2, 240, 192, 4.5, None, lim)
    assert reasons == ["2 frames < 6 (validated: 6+ frames)",
                       "shorter side 192 px outside the validated 576-1152 px",
                       "score 4.50 outside the benchmark labels' range -16.00..1.40"]
    dark = FrameStats(n=1, background=0.5, noise=[5.0])
    assert check(120, 960, 768, -2.0, dark, lim) == [
        "50% of the pixels are flat black or white (holes or empty background; validated: up to 10%)",
        "estimated noise sigma 5.0 > 2 (0-255 scale; NVS-SQA scores noise higher the stronger it is)"]
    blocky = FrameStats(n=1, noise=[0.5], blocks=[2.5])
    assert check(120, 960, 768, -2.0, blocky, lim) == [
        "JPEG blockiness 2.50 > 1 (NVS-SQA does not see JPEG artefacts)"]
    assert check(400, 960, 768, -2.0, None, lim) == [
        "400 frames in one pass > 360 (validated: up to 360; the default, window auto, scores longer sequences in "
        "windows)"]
    assert check(400, 960, 768, -2.0, None, lim, window=240) == []
    assert check(400, 960, 768, -2.0, None, lim, window=4) == ["windows of 4 frames outside the validated 6-360"]


def test_ranks_within_a_scene_tie_under_the_noise_floor():
    from models.nvs_sqa.validity import scene_of, tie_ranks

    assert [scene_of(n) for n in ("a/b/c", "Giraffe+NeRF", "x")] == ["a/b", "Giraffe", ""]
    scores = {"s/a": -1.0, "s/b": -1.05, "s/c": -1.5, "t/a": -3.0, "Giraffe+NeRF": -2.04, "Giraffe+IBRNet-C": -2.11}
    assert tie_ranks(scores, 0.1) == {"s/a": "1=", "s/b": "1=", "s/c": "3", "t/a": "1", "Giraffe+NeRF": "1=",
                                      "Giraffe+IBRNet-C": "1="}
    assert tie_ranks(scores, 0.05)["Giraffe+IBRNet-C"] == "2" and tie_ranks(scores, 0.0)["s/b"] == "2"


def test_committed_limits_are_the_measured_ones():
    """validity_v2.json is what `make validity` derived; the examples' own conditions are inside it."""
    saved = json.loads(LIMITS_FILE.read_text())
    lim = Limits.load()
    assert lim.to_dict() == saved
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


def test_blockiness_reads_jpeg_block_edges_and_nothing_else():
    """0 for a smooth ramp and for white noise (no 8x8 structure); exact on a construction whose steps sit only on
    block edges; and rising with JPEG compression on an example frame."""
    import cv2

    from models.nvs_sqa.validity import blockiness

    ramp = np.tile(np.arange(64, dtype=np.float32), (64, 1))
    assert blockiness(ramp) == pytest.approx(0.0, abs=1e-6)
    rng = np.random.default_rng(0)
    assert abs(blockiness(rng.normal(128, 20, (256, 256)))) < 0.05
    steps = np.repeat(np.repeat(rng.integers(0, 255, (8, 8)).astype(np.float32), 8, 0), 8, 1)
    steps += np.tile(np.arange(64, dtype=np.float32) % 2, (64, 1))  # a step of 1 between every two pixels
    # inside blocks every step is 1 or 0, across edges |block difference ± 1|: the exact value computed by hand
    dh, dv = np.abs(np.diff(steps, axis=1)), np.abs(np.diff(steps, axis=0))
    across = (dh[:, 7::8].sum() + dv[7::8].sum()) / (dh[:, 7::8].size + dv[7::8].size)
    inside = (np.delete(dh, np.s_[7::8], 1).sum() + np.delete(dv, np.s_[7::8], 0).sum()) / (
        np.delete(dh, np.s_[7::8], 1).size + np.delete(dv, np.s_[7::8], 0).size)
    assert blockiness(steps) == pytest.approx((across - inside) / max(inside, 1.0), rel=1e-6)
    # a very smooth image: steps of 0.1 inside blocks, 0.3 across: relative to one code value, not to 0.1
    edges = np.concatenate([[0.0], np.cumsum(np.where(np.arange(63) % 8 == 7, 0.3, 0.1))])
    smooth = (edges[:, None] + edges[None, :]).astype(np.float32)  # every step 0.1, across an edge 0.3
    assert blockiness(smooth) == pytest.approx(0.3 - 0.1, abs=1e-5)  # the bare ratio would give 0.3 / 0.1 - 1 = 2
    frame = next(iter(open_frame_folder(EXAMPLES_DIR / "Giraffe+NeRF", MIN_FRAME_SIZE)))
    gray = frame[:256, :256].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    levels = []
    for q in (95, 50, 15):
        ok, buf = cv2.imencode(".jpg", frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
        dec = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1][:256, :256].astype(np.float32)
        levels.append(blockiness(dec @ np.array([0.299, 0.587, 0.114], np.float32)))
    assert blockiness(gray) < levels[1] < levels[2] and levels[2] > 1.5


def test_blind_spot_bias_credits_the_render_the_blind_spot_favours():
    from models.nvs_sqa.validity import blind_spot_bias

    clean, noisy = {"noise_sigma": 1.0, "blockiness": 0.0}, {"noise_sigma": 3.0, "blockiness": 0.0}
    b = blind_spot_bias(noisy, clean, LIM, ("noisy", "clean"))
    assert (b.a, b.b) == (pytest.approx(0.5), 0.0)
    assert b.why == "NVS-SQA rewards noise; noisy's noise σ 3 vs clean's 1 can raise noisy's score by 0.50 JOD"
    assert blind_spot_bias(clean, noisy, LIM).b == pytest.approx(0.5)
    # past the curve's last point the inflation stays at its last value; below the first, at the first
    assert blind_spot_bias({"noise_sigma": 20.0}, {"noise_sigma": 0.1}, LIM).a == pytest.approx(4.0)
    blocky = {"noise_sigma": 1.0, "blockiness": 1.5}
    both = blind_spot_bias(noisy, blocky, LIM, ("n", "j"))
    assert (both.a, both.b) == (pytest.approx(0.5), pytest.approx(0.5)) and "JPEG" in both.why
    assert blind_spot_bias(clean, dict(clean), LIM) == type(b)(0.0, 0.0, "")
