"""Working precision: the float32 route every preset takes (FullReference prepares float32 images) against the float64
reference, on held-out pairs — example frames the benchmark does not use, pyiqa's TID2013 pairs, and a synthetic
white background with two codes of noise, where the textbook float32 SSIM is off by up to 8e-5 — each preset's
PSNR, MSE, MAE, SSIM and MS-SSIM within 1e-5. And the networks move with ``.to()``: every tensor of LPIPS and
DISTS is a parameter or buffer."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from consts import EXAMPLE_SEQUENCES, EXAMPLES_DIR
from models.fullref import create, networks
from models.fullref.protocols import PROTOCOLS
from models.pixels import read_image
from models.ssim import ssim_map

ARITHMETIC = {"psnr", "mse", "mae", "ssim", "ms-ssim"}
PRESET_METRICS = sorted({(ref.metric, tuple(sorted(ref.options.items()))) for p in PROTOCOLS.values()
                         for ref in p.metrics.values() if ref.metric in ARITHMETIC} | {("ms-ssim", ())})


def _frame(sequence: str, i: int) -> np.ndarray:
    return read_image(sorted((EXAMPLES_DIR / sequence).glob("*.jpg"))[i])


def _jpeg(a: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def _held_out() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(render, gt) crops of 256x320 from frames 9 and 17 (the benchmark uses frame 0), and a white background."""
    g9, g17 = (_frame(EXAMPLE_SEQUENCES[0], i)[200:456, 300:620] for i in (9, 17))
    white = _frame(EXAMPLE_SEQUENCES[0], 3)[200:456, 300:620].copy()
    noisy = _jpeg(white, 50).copy()
    white[:, :180] = 255  # a flat white background, the render within two codes of it
    noisy[:, :180] = np.random.default_rng(0).integers(253, 256, noisy[:, :180].shape)
    return {"ibrnet": (_frame(EXAMPLE_SEQUENCES[1], 9)[200:456, 300:620], g9),
            "jpeg": (_jpeg(g17, 30), g17),
            "blur": (np.asarray(Image.fromarray(g9).filter(ImageFilter.GaussianBlur(1.2))), g9),
            "white": (noisy, white)}


def _both(a: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1)[None]
    return t, t.double()


@pytest.mark.parametrize(("metric", "options"), PRESET_METRICS, ids=lambda v: str(v))
def test_float32_is_within_1e5_of_float64(metric, options, calibration):
    m = create(metric, **dict(options))
    pairs = {**_held_out(), **{f"tid2013-{k}": v for k, v in calibration.items()}}
    for name, (render, gt) in pairs.items():
        (x32, x64), (y32, y64) = _both(render), _both(gt)
        got, want = float(m(x32, y32)[0]), float(m(x64, y64)[0])
        assert got == pytest.approx(want, rel=0, abs=1e-5), f"{name}: float32 {got!r}, float64 {want!r}"


def test_the_textbook_float32_ssim_would_not_be():
    """Why the SSIM is computed as it is: E[ab] − E[a]E[b] in float32 misses the float64 value on the white pair."""
    render, gt = _held_out()["white"]
    (x32, x64), (y32, y64) = _both(render), _both(gt)
    win = torch.from_numpy(np.outer(*(2 * [np.exp(-((np.arange(11) - 5) ** 2) / 4.5)])))
    win = (win / win.sum()).float().expand(3, 1, 11, 11)
    f = lambda z: torch.nn.functional.conv2d(z, win, groups=3)  # noqa: E731
    mx, my = f(x32), f(y32)
    vx, vy, cov = f(x32 * x32) - mx**2, f(y32 * y32) - my**2, f(x32 * y32) - mx * my
    textbook = ((2 * mx * my + 1e-4) * (2 * cov + 9e-4)) / ((mx**2 + my**2 + 1e-4) * (vx + vy + 9e-4))
    exact = float(ssim_map(x64, y64, padding="valid").mean())
    assert abs(float(textbook.double().mean()) - exact) > 1e-5
    assert abs(float(ssim_map(x32, y32, padding="valid").double().mean()) - exact) < 1e-6


def _tensors(module: torch.nn.Module) -> list[torch.Tensor]:
    """Every tensor a module or its submodules hold as an attribute, registered or not."""
    out = []
    for m in module.modules():
        out += [v for v in vars(m).values() if isinstance(v, torch.Tensor)]
        out += [t for v in vars(m).values() if isinstance(v, (list, tuple)) for t in v if isinstance(t, torch.Tensor)]
        out += [*m._parameters.values(), *m._buffers.values()]
    return [t for t in out if t is not None]


MODELS = {"lpips-alex": lambda: networks.LPIPS("alex", torch.device("cpu")),
          "lpips-vgg": lambda: networks.LPIPS("vgg", torch.device("cpu"), feature_norm="torchmetrics"),
          "dists": lambda: networks.DISTS(torch.device("cpu"))}


@pytest.mark.parametrize("make", MODELS.values(), ids=MODELS.keys())
def test_to_moves_every_tensor(make, fullref_weights):
    model = make().to(torch.float64)
    assert {t.dtype for t in _tensors(model)} == {torch.float64}
    model.to("meta")
    assert {t.device.type for t in _tensors(model)} == {"meta"}
    # the weights are shared between models (read once); moving one leaves the others where they were
    assert {(t.dtype, t.device.type) for t in _tensors(make())} == {(torch.float32, "cpu")}


def test_a_model_moved_to_float64_computes_in_float64(fullref_weights):
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(1, 3, 48, 64, generator=g), torch.rand(1, 3, 48, 64, generator=g)
    model = networks.LPIPS("alex", torch.device("cpu"))
    value32, map32 = model(x, y, spatial=True)
    value64, map64 = model.to(torch.float64)(x, y, spatial=True)
    assert value64.dtype == map64.dtype == torch.float64
    assert float(value64[0]) == pytest.approx(float(value32[0]), abs=1e-6)
    np.testing.assert_allclose(map64.numpy(), map32.numpy(), rtol=0, atol=1e-5)
