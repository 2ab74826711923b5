"""models.training.targets and .strred: exact values on tiny tensors, parity with scikit-video's ST-RRED."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from models.fullref.fvvdp import fvvdp_available
from models.ssim import gaussian_window, psnr, ssim, ssim_map
from models.training import targets as tg
from models.training.strred import strred
from models.training.targets import pair_targets

CALIB = Path(__file__).parent / "calibration"


def _ssim_reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Textbook SSIM with explicit 11×11 windows, float64, 'valid' (independent of the conv implementation)."""
    x = np.arange(11) - 5.0
    g = np.exp(-(x**2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    h, wd = a.shape
    out = np.zeros((h - 10, wd - 10))
    for i in range(h - 10):
        for j in range(wd - 10):
            pa, pb = a[i:i + 11, j:j + 11], b[i:i + 11, j:j + 11]
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va, vb = (w * pa * pa).sum() - ma**2, (w * pb * pb).sum() - mb**2
            cov = (w * pa * pb).sum() - ma * mb
            out[i, j] = ((2 * ma * mb + 1e-4) * (2 * cov + 9e-4)) / ((ma**2 + mb**2 + 1e-4) * (va + vb + 9e-4))
    return out


def test_ssim_matches_textbook_formula():
    rng = np.random.default_rng(0)
    a = rng.random((20, 23))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    ref = _ssim_reference(a, b)
    got = ssim_map(torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None], padding="valid")[0, 0]
    np.testing.assert_allclose(got.numpy(), ref, rtol=0, atol=1e-12)
    assert float(ssim(torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None])) == pytest.approx(ref.mean())


def test_ssim_map_shapes_and_identity():
    x = torch.rand(2, 3, 16, 17)
    assert ssim_map(x, x).shape == (2, 3, 16, 17)
    assert ssim_map(x, x, padding="valid").shape == (2, 3, 6, 7)
    torch.testing.assert_close(ssim_map(x, x), torch.ones(2, 3, 16, 17))
    assert ssim_map(x, 1 - x).mean() < 0.5
    g = gaussian_window()
    assert g.sum().item() == pytest.approx(1.0) and g[5] == g.max()
    with pytest.raises(ValueError, match="one shape"):
        ssim_map(x, x[:, :2])


def test_psnr_exact():
    a, b = torch.full((1, 3, 4, 4), 0.5), torch.full((1, 3, 4, 4), 0.6)
    assert float(psnr(a, b)) == pytest.approx(20.0)
    assert math.isinf(float(psnr(a, a)))


def test_mappings_to_minus_one_one():
    assert [float(tg.ssim_to_target(s)) for s in (1.0, 0.6, 0.8, 0.2, -1.0)] == pytest.approx([1, 0, 0.5, -1, -1])
    assert [float(tg.psnr_to_target(p)) for p in (5, 10, 25, 40, math.inf)] == pytest.approx([-1, -1, 0, 1, 1])
    assert [float(tg.replace_to_target(r)) for r in (0.5, 0.75, 1.0)] == pytest.approx([0, -0.5, -1])
    assert [float(tg.strred_to_target(v)) for v in (0, 7.5, 15, 700)] == pytest.approx([1, 0, -1, -1])
    assert [float(tg.jod_to_target(j)) for j in (10, 5, 0, -3)] == pytest.approx([1, 0, -1, -1])


def test_luminance_weights():
    px = torch.tensor([100.0, 50.0, 200.0]).view(3, 1, 1)
    assert float(tg.luminance(px)) == pytest.approx(0.2989 * 100 + 0.5870 * 50 + 0.1140 * 200)


def test_strred_matches_scikit_video():
    """Our torch ST-RRED vs skvideo.measure.strred (values from tests/training/calibration/make_strred_reference.py)."""
    ref = json.loads((CALIB / "strred_reference.json").read_text())
    clips = np.load(CALIB / "strred_clips.npz")
    names = list(ref["pairs"])
    assert len(names) >= 5
    a = torch.stack([torch.from_numpy(clips[f"{n}__ref"]) for n in names]).double()
    b = torch.stack([torch.from_numpy(clips[f"{n}__dis"]) for n in names]).double()
    got = strred(a, b).numpy()
    want = np.array([ref["pairs"][n]["strred"] for n in names])
    np.testing.assert_allclose(got, want, rtol=0.01)
    assert float(strred(a[0], b[0])) == pytest.approx(got[0])  # unbatched = batched
    assert float(strred(a[0], a[0])) == 0.0
    with pytest.raises(ValueError, match="at least 2 frames"):
        strred(a[:, :1], b[:, :1])


@pytest.mark.skipif(not fvvdp_available(), reason="pyfvvdp not installed (FovVideoVDP target optional)")
def test_fvvdp_identical_is_ten_jod_and_noise_lowers_it():
    from models.fullref.fvvdp import FovVideoVDP

    g = torch.Generator().manual_seed(0)
    ref = (torch.rand(4, 3, 48, 48, generator=g) * 255).to(torch.uint8)
    noisy = (ref.float() + 25 * torch.randn(ref.shape, generator=g)).clamp(0, 255).to(torch.uint8)
    metric = FovVideoVDP()
    assert metric(ref, ref) == pytest.approx(10.0, abs=1e-4)
    assert 0 < metric(noisy, ref) < 9.9


def test_pair_targets_only_the_needed_ones():
    g = torch.Generator().manual_seed(1)
    s1 = (torch.rand(4, 3, 32, 32, generator=g) * 255).to(torch.uint8)
    t = pair_targets(s1, s1, 0.75, (True, True, True, True, False))
    assert t[:4] == pytest.approx([1.0, 1.0, -0.5, 1.0]) and np.isnan(t[4])
    timings: dict[str, float] = {}
    s2 = (s1.float() * 0.9).to(torch.uint8)
    t2 = pair_targets(s1, s2, 0.5, (True, True, False, False, False), timings=timings)
    assert -1 <= t2[0] < 1 and -1 <= t2[1] < 1 and np.isnan(t2[2]) and set(timings) == {"ssim", "psnr"}
