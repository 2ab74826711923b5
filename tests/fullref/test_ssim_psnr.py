"""PSNR, SSIM and MS-SSIM of the presets against (1) an independent NumPy/SciPy implementation of the published
formulas (scikit-image is not installed) and (2) the packages the tools call — torchmetrics 1.4.0 and 1.9.0 and
pytorch_msssim 1.0.0, fetched into .cache/ by the test (conftest.py) — on made images, to 1e-6."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from scipy.ndimage import correlate

from models.errors import InputError
from models.fullref import create
from models.fullref.protocols import PROTOCOLS
from models.ssim import DM_PIX_EPS
from tests.fullref.helpers import LIGHTNING_UTILITIES, PYTORCH_MSSSIM, TORCHMETRICS, imported, unpacked

SCIPY_MODE = {"zero": "constant", "reflect": "mirror"}  # torch's "reflect" (edge not repeated) is SciPy's "mirror"


def _ssim_numpy(x: np.ndarray, y: np.ndarray, padding: str, clamp: str, data_range: float | str) -> np.ndarray:
    """SSIM map (C, H', W') by Wang et al. 2004, eq. 13: 11×11 Gaussian window σ = 1.5, K1 = 0.01, K2 = 0.03."""
    ax = np.arange(11) - 5.0
    g = np.exp(-(ax**2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    rng = max(np.ptp(x), np.ptp(y)) if data_range == "auto" else data_range
    c1, c2 = (0.01 * rng) ** 2, (0.03 * rng) ** 2
    maps = []
    for a, b in zip(x, y, strict=True):
        def f(z):
            out = correlate(z, w, mode=SCIPY_MODE.get(padding, "constant"))
            return out[5:-5, 5:-5] if padding == "valid" else out  # valid: only windows inside the image

        ma, mb = f(a), f(b)
        va, vb, cov = f(a * a) - ma**2, f(b * b) - mb**2, f(a * b) - ma * mb
        if clamp == "variance":
            va, vb = np.maximum(va, 0), np.maximum(vb, 0)
        elif clamp == "dm_pix":
            va, vb = np.maximum(va, DM_PIX_EPS), np.maximum(vb, DM_PIX_EPS)
            cov = np.sign(cov) * np.minimum(np.sqrt(va * vb), np.abs(cov))
        maps.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return np.stack(maps)


def _pair(h: int = 41, w: int = 53, seed: int = 0, lo: float = 0.0, hi: float = 1.0) -> tuple[np.ndarray, ...]:
    """A smooth image with a flat block (zero local variance: the clamps matter there) and a noisy copy."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    x = np.stack([0.5 + 0.4 * np.sin(xx / (3 + c) + yy / 7) for c in range(3)])
    x[:, 5:20, 10:30] = 0.25
    y = np.clip(x + rng.normal(0, 0.08, x.shape), 0, 1)
    y[:, 8:16, 12:20] = 0.25
    return lo + (hi - lo) * x, lo + (hi - lo) * y


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a)[None]


PRESET_SSIMS = sorted({(p.name, k) for p in PROTOCOLS.values() for k, m in p.metrics.items() if m.metric == "ssim"})


@pytest.mark.parametrize(("preset", "key"), PRESET_SSIMS)
@pytest.mark.parametrize("span", [(0.0, 1.0), (0.2, 0.6)])
def test_every_preset_ssim_matches_the_formula(preset, key, span):
    ref = PROTOCOLS[preset].metrics[key]
    metric = create(ref.metric, **ref.options)
    x, y = _pair(lo=span[0], hi=span[1])
    o = metric.options
    want = _ssim_numpy(x, y, o["padding"], o["clamp"], o["data_range"])
    np.testing.assert_allclose(metric.map(_t(x), _t(y))[0].numpy(), want.mean(0), rtol=0, atol=1e-12)
    assert float(metric(_t(x), _t(y))[0]) == pytest.approx(want.mean(), abs=1e-12)


def test_the_ssim_variants_differ_where_they_should():
    x, y = _pair(lo=0.2, hi=0.6)
    val = {name: float(create("ssim", **opts)(_t(x), _t(y))[0]) for name, opts in {
        "valid": {}, "zero": {"padding": "zero"}, "reflect": {"padding": "reflect"},
        "auto": {"data_range": "auto"}, "dm_pix": {"clamp": "dm_pix"}}.items()}
    assert len({round(v, 9) for v in val.values()} - {round(val["valid"], 9)}) == 3  # all but dm_pix move
    # dm_pix's clamps act only where float32 rounding made a variance negative: nothing to do in float64 here
    assert val["dm_pix"] == pytest.approx(val["valid"], abs=1e-12)


def test_psnr_mse_mae_match_the_formulas():
    x, y = _pair()
    mse = np.mean((x - y) ** 2)
    assert float(create("psnr")(_t(x), _t(y))[0]) == pytest.approx(10 * np.log10(1 / mse), abs=1e-10)
    assert float(create("mse")(_t(x), _t(y))[0]) == pytest.approx(mse, abs=1e-15)
    assert float(create("mae")(_t(x), _t(y))[0]) == pytest.approx(np.mean(np.abs(x - y)), abs=1e-15)
    assert float(create("psnr", data_range=255.0)(_t(255 * x), _t(255 * y))[0]) == pytest.approx(
        10 * np.log10(1 / mse), abs=1e-9)
    assert float(create("psnr")(_t(x), _t(x))[0]) == float("inf")


@pytest.mark.parametrize(("version", "preset"), [("1.4.0", "nerfstudio-nerfacto-tm14"),
                                                 ("1.9.0", "nerfstudio-nerfacto")])
@pytest.mark.filterwarnings("ignore::FutureWarning")  # torchmetrics' own deprecation notes on import
def test_nerfacto_presets_match_torchmetrics(version, preset):
    folders = unpacked(TORCHMETRICS[version], LIGHTNING_UTILITIES)
    ours = create("ssim", **PROTOCOLS[preset].metrics["ssim"].options)
    pairs = [_pair(seed=s, lo=lo, hi=hi) for s, (lo, hi) in enumerate([(0, 1), (0.2, 0.6), (0.1, 0.9)])]
    with imported(folders, "torchmetrics", "lightning_utilities"):
        import torchmetrics
        from torchmetrics.functional import peak_signal_noise_ratio as tm_psnr
        from torchmetrics.functional import structural_similarity_index_measure as tm_ssim

        assert torchmetrics.__version__ == version
        for x, y in pairs:  # nerfstudio: self.ssim(gt_rgb, predicted_rgb) with all defaults, one image per call
            assert float(ours(_t(x), _t(y))[0]) == pytest.approx(float(tm_ssim(_t(y), _t(x))), abs=1e-6)
            # PeakSignalNoiseRatio(data_range=1.0) on one image = the functional form, here in float64; its 10 / ln(10)
            # stays a float32 constant, hence a relative tolerance (1e-7, i.e. ~2e-6 dB)
            want = float(tm_psnr(_t(y), _t(x), data_range=1.0))
            assert float(create("psnr")(_t(x), _t(y))[0]) == pytest.approx(want, rel=1e-7)


def _msssim_values(pytorch_msssim, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    ssim = pytorch_msssim.SSIM(data_range=1.0, size_average=True, channel=3)(_t(y), _t(x))  # splatfacto's call
    return float(ssim), float(pytorch_msssim.ms_ssim(_t(x), _t(y), data_range=1.0))


def test_splatfacto_ssim_and_ms_ssim_match_pytorch_msssim(monkeypatch):
    x, y = _pair(171, 203, seed=3)  # odd sizes: MS-SSIM's pooling pads them
    ours = (float(create("ssim", **PROTOCOLS["nerfstudio-splatfacto"].metrics["ssim"].options)(_t(x), _t(y))[0]),
            float(create("ms-ssim")(_t(x), _t(y))[0]))
    with imported(unpacked(PYTORCH_MSSSIM), "pytorch_msssim"):
        import pytorch_msssim

        module = importlib.import_module("pytorch_msssim.ssim")  # the package exports a function of that name

        as_published = _msssim_values(pytorch_msssim, x, y)
        # it builds its Gaussian window in float32 whatever the input; in float64 the two agree to rounding
        monkeypatch.setattr(module, "_fspecial_gauss_1d", lambda n, s: torch.from_numpy(_gauss(n, s))[None, None])
        exact_window = _msssim_values(pytorch_msssim, x, y)
    np.testing.assert_allclose(ours, as_published, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ours, exact_window, rtol=0, atol=1e-12)


def _gauss(size: int, sigma: float) -> np.ndarray:
    g = np.exp(-((np.arange(size) - size // 2) ** 2) / (2 * sigma**2))
    return g / g.sum()


def test_ms_ssim_refuses_small_images():
    x, y = _pair(160, 200)
    with pytest.raises(InputError, match=r"ms-ssim: images of 200x160 are too small; .* exceed 160 px"):
        create("ms-ssim")(_t(x), _t(y))


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_the_float32_tools_agree_on_the_calibration_pairs(calibration):
    """On real 8-bit photographs with flat areas, the tools' float32 arithmetic moves SSIM by up to ~2e-5 (the
    float64 values here are the exact ones); the same holds for every pair."""
    pairs = [tuple(torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1)[None] for a in p)
             for p in calibration.values()]
    ours = {p: [float(create("ssim", **PROTOCOLS[p].metrics["ssim"].options)(d, r)[0]) for d, r in pairs]
            for p in ("nerfstudio-nerfacto-tm14", "nerfstudio-nerfacto", "nerfstudio-splatfacto")}
    ms = [float(create("ms-ssim")(d, r)[0]) for d, r in pairs]
    for version, preset in (("1.4.0", "nerfstudio-nerfacto-tm14"), ("1.9.0", "nerfstudio-nerfacto")):
        with imported(unpacked(TORCHMETRICS[version], LIGHTNING_UTILITIES), "torchmetrics", "lightning_utilities"):
            from torchmetrics.functional import structural_similarity_index_measure as tm_ssim

            np.testing.assert_allclose([float(tm_ssim(r, d)) for d, r in pairs], ours[preset], rtol=0, atol=3e-5)
    with imported(unpacked(PYTORCH_MSSSIM), "pytorch_msssim"):
        import pytorch_msssim

        ssim32 = [float(pytorch_msssim.SSIM(data_range=1.0, channel=3)(r, d)) for d, r in pairs]
        ms32 = [float(pytorch_msssim.ms_ssim(d, r, data_range=1.0)) for d, r in pairs]
    np.testing.assert_allclose(ssim32, ours["nerfstudio-splatfacto"], rtol=0, atol=3e-5)
    np.testing.assert_allclose(ms32, ms, rtol=0, atol=3e-5)
