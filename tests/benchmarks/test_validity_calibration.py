"""benchmarks/validity_calibration.py (make validity): its helpers exactly, and the two findings behind the
window limits reproduced with the released model: a long single pass leaves the labels' range, windows keep the
score; a blur on part of the path is where the window curve is lowest."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from benchmarks.validity_calibration import pingpong, rise_limit
from consts import EXAMPLES_DIR
from models.frames import open_frame_folder
from models.nvs_sqa.network import MIN_FRAME_SIZE


def test_pingpong_path():
    assert pingpong(4, 10).tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    assert pingpong(1, 3).tolist() == [0, 0, 0]


def test_rise_limit_interpolates_the_crossing():
    rows = [{"x": 0.0, "score": -2.0}, {"x": 1.0, "score": -1.95}, {"x": 2.0, "score": -1.75}]
    assert rise_limit(rows, "x", 0.15) == pytest.approx(1.5)  # -1.85 is reached halfway between 1 and 2
    assert rise_limit(rows[:2], "x", 0.15) == 1.0  # never crosses: the last level


def test_examples_repeated_to_1200_frames_score_like_120(released_model, example_feats):
    """One pass over 1200 frames scores +4.7/+5.0 (the temporal model leaves its range); the default windows keep
    the score within 0.3 JOD of the 120-frame one."""
    for seq, f in example_feats.items():
        ref = released_model.score_features(f)
        assert ref.mode == "single"
        ref = ref.score
        long = f[pingpong(len(f), 1200)]
        one_pass = released_model.score_features(long, window=0).score
        windowed = released_model.score_features(long)
        assert windowed.mode.startswith("windows")
        windowed = windowed.score
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
    curve = released_model.score_features(feats, 60, 30)
    assert curve.worst[:2] == (60, 120), list(zip(curve.starts, curve.scores, strict=True))


@pytest.fixture(scope="module")
def example_feats(released_model):
    """Per-frame features of both examples (the view encoder is per frame, so paths can be assembled from them)."""
    torch.manual_seed(0)
    return {s: released_model.frame_features(EXAMPLES_DIR / s, batch_size=2)
            for s in ("Giraffe+NeRF", "Giraffe+IBRNet-C")}
