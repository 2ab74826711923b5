"""benchmarks/noise_floor.py (part of make validity): the perturbations on exact tiny frames, and the floor rule."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import noise_floor as nf


def test_one_code_value_shifts_clip_at_the_ends():
    f = np.array([[[[0, 128, 255]]]], np.uint8)
    assert nf.perturbed(f, "+1").tolist() == [[[[1, 129, 255]]]]
    assert nf.perturbed(f, "-1").tolist() == [[[[0, 127, 254]]]]


def test_reencodes_keep_the_frames_and_change_them_a_little():
    rng = np.random.default_rng(0)
    frames = np.repeat(rng.integers(60, 200, (2, 96, 128, 3), dtype=np.uint8), 2, axis=0)
    for kind in ("jpeg95", "h264-crf18"):
        out = nf.perturbed(frames, kind)
        assert out.shape == frames.shape and out.dtype == np.uint8
        assert 0 < np.abs(out.astype(int) - frames).mean() < 40
    with pytest.raises(ValueError):
        nf.perturbed(frames, "reversed")  # done on the features, not the frames


def test_the_floor_is_the_largest_counted_change_rounded_up():
    rows = [{"change": c, "delta": d, "max_window_delta": w}
            for c, d, w in (("+1", -0.0650, 0.1864), ("-1", 0.0743, 0.0648), ("reversed", 0.9, 0.9))]
    assert nf.floors({"a": {"nuisances": rows}}) == (0.08, 0.19)  # reversed: reported, not counted
    assert nf.floors({"a": {"nuisances": [{"change": "+1", "delta": 0.07, "max_window_delta": 0.2}]}}) == (0.07, 0.2)
