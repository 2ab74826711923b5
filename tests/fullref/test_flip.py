"""FLIP: the wrapper returns exactly what NVIDIA's flip-evaluator 1.7 returns (reference = ground truth first)."""

from __future__ import annotations

import flip_evaluator
import numpy as np
import pytest
import torch

from consts import FLIP_EVALUATOR_VERSION
from models.errors import InputError
from models.fullref import FullReference, create


def _pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gt = rng.random((40, 56, 3)).astype(np.float32)
    render = np.clip(gt + rng.normal(0, 0.05, gt.shape), 0, 1).astype(np.float32)
    render[10:20, 10:30] = 0.9
    return render, gt


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).permute(2, 0, 1)[None]


def test_value_and_map_are_the_packages():
    render, gt = _pair()
    want_map, want_mean, params = flip_evaluator.evaluate(gt, render, "LDR", applyMagma=False)
    value, error_map = create("flip").evaluate(_t(render), _t(gt), with_map=True)
    assert float(value[0]) == want_mean  # exactly: the package's own mean
    np.testing.assert_array_equal(error_map[0].numpy(), want_map[..., 0])
    assert params["ppd"] == pytest.approx(67.0206451, abs=1e-6)  # the default pixels per degree


def test_ppd_is_passed_and_recorded():
    render, gt = _pair(1)
    m = create("flip", ppd=30.0)
    want = flip_evaluator.evaluate(gt, render, "LDR", applyMagma=False, parameters={"ppd": 30.0})[1]
    assert float(m(_t(render), _t(gt))[0]) == want != float(create("flip")(_t(render), _t(gt))[0])
    d = m.describe()
    assert d["ppd"] == 30.0 and d["package"] == f"flip-evaluator=={FLIP_EVALUATOR_VERSION}"
    with pytest.raises(InputError, match=r"^ppd=-1: give a positive number of pixels per degree, or None$"):
        create("flip", ppd=-1)


def test_the_api_map_of_8bit_images_is_the_packages():
    rng = np.random.default_rng(2)
    gt = rng.integers(0, 256, (36, 48, 3), dtype=np.uint8)
    render = np.clip(gt.astype(int) + rng.integers(-30, 30, gt.shape), 0, 255).astype(np.uint8)
    values, maps = FullReference("reference", metrics=("flip",), device="cpu").compute_with_maps(render, gt)
    want_map, want_mean, _ = flip_evaluator.evaluate(gt.astype(np.float32) / 255.0, render.astype(np.float32) / 255.0,
                                                     "LDR", applyMagma=False)
    assert values["flip"] == want_mean
    np.testing.assert_array_equal(maps["flip"], want_map[..., 0])
