"""Graded distortions: bit-for-bit reproducible, graded (more level -> further from the clean clip), clip sampling."""

from __future__ import annotations

import numpy as np
import pytest

from consts import EXAMPLES_DIR
from models.evaluation import degrade as dg
from models.frames import open_array, open_sequence


@pytest.fixture(scope="module")
def clip():
    """4 frames of a real example, longer side 96 px."""
    return dg.prepare_clip(open_sequence(EXAMPLES_DIR / "Giraffe+NeRF", 1), n_frames=4, max_side=96)


def test_prepare_clip_samples_evenly_and_resizes():
    frames = np.zeros((10, 40, 60, 3), np.uint8) + np.arange(10, dtype=np.uint8)[:, None, None, None]
    out = dg.prepare_clip(open_array(frames, 1), n_frames=4, max_side=30)
    assert out.shape == (4, 20, 30, 3) and out.dtype == np.uint8
    assert out[:, 0, 0, 0].tolist() == [0, 3, 6, 9]  # first and last frame included, evenly spaced
    assert dg.prepare_clip(open_array(frames, 1), n_frames=50, max_side=100).shape == (10, 40, 60, 3)


def test_examples_clip_shape(clip):
    assert clip.shape == (4, 77, 96, 3)  # 960x768 -> 96x77 (rounded)


@pytest.mark.parametrize("name", list(dg.DISTORTIONS))
def test_variants_reproducible_and_graded(clip, name):
    assert dg.degrade(clip, name, 0) is clip
    levels = [dg.degrade(clip, name, lv, seed=3) for lv in range(1, 6)]
    for lv, v in enumerate(levels, 1):
        assert v.dtype == np.uint8 and v.shape == clip.shape
        np.testing.assert_array_equal(v, dg.degrade(clip, name, lv, seed=3))  # bit for bit
    err = [float(np.mean((v.astype(float) - clip) ** 2)) for v in levels]
    assert all(0 < a < b for a, b in zip(err, err[1:], strict=False)), err  # strictly graded


@pytest.mark.parametrize("name", ["noise", "flicker", "floaters"])
def test_seed_changes_random_distortions(clip, name):
    assert not np.array_equal(dg.degrade(clip, name, 3, seed=0), dg.degrade(clip, name, 3, seed=1))


def test_distortion_values_by_hand():
    c = np.full((2, 4, 4, 3), 100, np.uint8)
    c[1] = 200
    g = dg.ghosting(c, 0.25, np.random.default_rng(0))
    assert g[0, 0, 0, 0] == 125 and g[1, 0, 0, 0] == 175  # (1-w) f_t + w f_t±1; the last blends with the previous
    f = dg.flicker(c, 0.1, np.random.default_rng(0))
    gains = f[:, 0, 0, 0] / c[:, 0, 0, 0]
    assert 1.02 <= gains[0] <= 1.1 and 0.9 <= gains[1] <= 0.98  # alternating sign, |u| in [0.25, 1]
    assert dg.downup(c, 2.0, np.random.default_rng(0)).tolist() == c.tolist()  # flat frames survive rescaling


def test_feature_similarity_is_cosine():
    from models.evaluation.degrade import feature_similarity

    a = np.array([1.0, 0.0, 0.0], np.float32)
    assert feature_similarity(a, a) == pytest.approx(1.0)
    assert feature_similarity(np.array([0.0, 2.0, 0.0], np.float32), a) == pytest.approx(0.0)
    assert feature_similarity(-a, a) == pytest.approx(-1.0)
