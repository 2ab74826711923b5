"""SSIM maps against a direct NumPy/SciPy computation of the same recipe."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import correlate

from models.ssim import C1, C2, gaussian_window, psnr_from_l1, ssim_map, ssim_target


def _ssim_numpy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Textbook SSIM per pixel: 2-d Gaussian window (11, 1.5), zero padding, mean over channels. (C, H, W)."""
    ax = np.arange(11) - 5
    g = np.exp(-(ax**2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    maps = []
    for a, b in zip(x, y, strict=True):
        f = lambda z: correlate(z, w, mode="constant", cval=0.0)  # noqa: E731
        mx, my = f(a), f(b)
        sxx, syy, sxy = f(a * a) - mx**2, f(b * b) - my**2, f(a * b) - mx * my
        maps.append(((2 * mx * my + C1) * (2 * sxy + C2)) / ((mx**2 + my**2 + C1) * (sxx + syy + C2)))
    return np.mean(maps, axis=0)


def test_matches_numpy_reference():
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 23, 31))
    y = np.clip(x + rng.normal(0, 0.2, x.shape), 0, 1)
    got = ssim_map(torch.from_numpy(x), torch.from_numpy(y), padding="zero").mean(1).numpy()
    want = np.stack([_ssim_numpy(a, b) for a, b in zip(x, y, strict=True)])
    assert got.shape == (2, 23, 31)
    np.testing.assert_allclose(got, want, atol=1e-10)
    got32 = ssim_map(torch.from_numpy(x).float(), torch.from_numpy(y).float(), padding="zero").mean(1).numpy()
    np.testing.assert_allclose(got32, want, atol=2e-4)


def test_identity_constant_and_clamp():
    x = torch.rand(1, 3, 16, 16)
    assert torch.allclose(ssim_map(x, x, padding="zero").mean(1), torch.ones(1, 16, 16), atol=1e-5)
    t = ssim_target(x, 1 - x)
    assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0
    assert float(ssim_map(x, 1 - x, padding="zero").min()) < 0  # raw SSIM can be negative; the target clamps it


def test_window_and_psnr():
    g = gaussian_window()
    assert g.numel() == 11 and math.isclose(float(g.sum()), 1.0) and int(g.argmax()) == 5
    assert psnr_from_l1(0.1) == pytest.approx(20.0)
    assert psnr_from_l1(0.0) == math.inf
    with pytest.raises(ValueError):
        ssim_map(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))
