"""FullReference and create(): arrays or paths, maps, batching, and one-line errors that name the file or parameter."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from models.errors import InputError
from models.fullref import FullReference, create


def _pair(h: int = 48, w: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    render = np.clip(gt.astype(int) + rng.integers(-40, 40, gt.shape), 0, 255).astype(np.uint8)
    return render, gt


@pytest.fixture
def files(tmp_path):
    render, gt = _pair()
    Image.fromarray(render).save(tmp_path / "r.png")
    Image.fromarray(gt).save(tmp_path / "g.png")
    return tmp_path / "r.png", tmp_path / "g.png", render, gt


def test_paths_and_arrays_give_the_same_numbers(files, fullref_weights):
    r_path, g_path, render, gt = files
    fr = FullReference("nerfbaselines", device="cpu")
    by_path = fr.compute(r_path, str(g_path))
    assert by_path == fr.compute(render, gt) == fr.compute(torch.from_numpy(render), gt)
    assert list(by_path) == ["psnr", "ssim", "mae", "mse", "lpips"]
    rows = fr.compute_many([(r_path, g_path), (render, gt)], progress=True)
    assert rows == [by_path, by_path] and fr.mean(rows) == pytest.approx(by_path)


def test_maps_have_the_documented_shapes(fullref_weights):
    render, gt = _pair()
    values, maps = FullReference("nerfbaselines", metrics=("ssim", "lpips", "psnr"), device="cpu"
                                 ).compute_with_maps(render, gt)
    assert set(values) == {"ssim", "lpips", "psnr"} and set(maps) == {"ssim", "lpips"}
    assert maps["ssim"].shape == (48 - 10, 64 - 10) and maps["lpips"].shape == (48, 64)
    assert maps["ssim"].dtype == np.float32 and maps["ssim"].mean() == pytest.approx(values["ssim"], abs=1e-6)
    same = FullReference("3dgs", metrics=("ssim",), device="cpu").maps(render, gt)["ssim"]
    assert same.shape == (48, 64)  # zero padding keeps the size


def test_the_lpips_map_shows_where_the_render_is_wrong(fullref_weights):
    gt = np.tile(np.linspace(0, 1, 96, dtype=np.float32), (64, 1))[..., None].repeat(3, axis=2)
    render = gt.copy()
    render[40:60, 70:92] = 1 - render[40:60, 70:92]
    m = create("lpips-alex")
    x, y = (torch.from_numpy(a).permute(2, 0, 1)[None] for a in (render, gt))
    pixel_map = m.map(x, y)[0].numpy()
    row, col = np.unravel_index(pixel_map.argmax(), pixel_map.shape)
    assert 40 <= row < 60 and 70 <= col < 92
    assert float(m.map(y, y).abs().max()) == 0.0 and float(m(y, y)[0]) == 0.0


def test_batches_give_the_values_of_single_images(fullref_weights):
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(2, 3, 40, 48, generator=g), torch.rand(2, 3, 40, 48, generator=g)
    for name in ("lpips-alex", "dists", "ssim", "psnr"):
        m = create(name)
        single = torch.cat([m(x[i:i + 1], y[i:i + 1]) for i in range(2)])
        torch.testing.assert_close(m(x, y), single, atol=1e-6, rtol=0)


def test_alpha_and_greyscale_are_converted_and_warned_once(caplog):
    render, gt = _pair()
    fr = FullReference("3dgs", metrics=("psnr", "ssim"), device="cpu")
    alpha = np.concatenate([render, np.full((48, 64, 1), 7, np.uint8)], axis=2)
    with caplog.at_level(logging.WARNING):
        assert fr.compute(alpha, gt) == fr.compute(render, gt)
        fr.compute(alpha, gt)
    warned = [r.getMessage() for r in caplog.records]
    assert warned == ["render: alpha channel dropped (colour channels as stored, as 3DGS' [:3]) (3dgs preset; "
                      "reported once)"]
    grey = render[..., 0]
    assert fr.compute(grey, gt[..., 0]) == fr.compute(np.repeat(grey[..., None], 3, 2), np.repeat(gt[..., :1], 3, 2))


def test_float_inputs_outside_0_1_are_clipped_with_a_warning(caplog):
    render, gt = _pair()
    f = render.astype(np.float32) / 255
    fr = FullReference("nerfstudio-nerfacto", metrics=("psnr",), device="cpu")
    with caplog.at_level(logging.WARNING):
        assert fr.compute(f * 1.5 - 0.25, gt) == fr.compute(np.clip(f * 1.5 - 0.25, 0, 1), gt)
    assert "float values outside [0, 1] clipped" in caplog.text


@pytest.mark.parametrize(("render", "gt", "message"), [
    (np.zeros((48, 64, 3), np.uint8), np.zeros((48, 65, 3), np.uint8),
     "render: the render is 64x48 but the ground truth gt is 65x48; render at the ground truth's size"),
    (np.zeros((3, 48, 64), np.float32), np.zeros((48, 64, 3), np.float32),
     "render: expected an (H, W) or (H, W, C) image with C = 1, 3 or 4 (channels last), got shape (3, 48, 64)"),
    (np.zeros((48, 64, 3)), np.full((48, 64, 3), np.nan),
     "gt: contains NaN or infinite values; pass finite values in [0, 1]"),
    (np.zeros((48, 64, 3), np.int64), np.zeros((48, 64, 3), np.uint8),
     "render: pixel type int64 is not supported; pass uint8, uint16 or float in [0, 1]"),
    ([[0.0]], np.zeros((48, 64, 3), np.uint8), "render: expected an image path or an (H, W, C) array, got list"),
    (np.zeros((20, 64, 3), np.uint8), np.zeros((20, 64, 3), np.uint8),
     "render: 64x20 is too small; the shorter side must be at least 32 px"),
])
def test_bad_arrays_are_one_line_naming_the_parameter(render, gt, message):
    with pytest.raises(InputError) as e:
        FullReference("nerfbaselines", metrics=("psnr",), device="cpu").compute(render, gt)
    assert str(e.value) == message


def test_bad_files_are_one_line_naming_the_file(files, tmp_path):
    r_path, g_path, _, _ = files
    fr = FullReference("nerfbaselines", metrics=("psnr",), device="cpu")
    Image.fromarray(np.zeros((48, 65, 3), np.uint8)).save(tmp_path / "wide.png")
    with pytest.raises(InputError, match=rf"^{r_path}: the render is 64x48 but the ground truth {tmp_path}/wide.png "
                                         r"is 65x48; render at the ground truth's size$"):
        fr.compute(r_path, tmp_path / "wide.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot a png")
    with pytest.raises(InputError, match=rf"^{tmp_path}/broken.png: cannot decode image"):
        fr.compute(tmp_path / "broken.png", g_path)
    with pytest.raises(InputError, match=rf"^{tmp_path}/missing.png: no such image file \(gt\)$"):
        fr.compute(r_path, tmp_path / "missing.png")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")
def test_an_absent_device_names_the_parameter():
    with pytest.raises(InputError, match=r"^device='cuda': no CUDA device is available here; use 'cpu' or 'auto'$"):
        FullReference("nerfbaselines", metrics=("psnr",), device="cuda")
    with pytest.raises(InputError, match=r"^device='tpu': choose one of auto, cpu, cuda$"):
        create("psnr", device="tpu")
