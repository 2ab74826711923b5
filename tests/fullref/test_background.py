"""RGBA renders and ground truth scored as each tool scores them: NerfBaselines and nerfstudio composite onto a
background, 3DGS drops the alpha channel. Each tool's compositing is written again here from its source (cited),
independently of models/fullref/protocols.py, and the presets' numbers are checked against it on a tiny Blender-style
pair (transparent pixels black in the ground truth, the render on white)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from models.errors import InputError
from models.fullref import FullReference
from models.fullref.protocols import PROTOCOLS, background_of
from models.pixels import read_image

H, W = 40, 48
COLOUR = np.array([200, 100, 50], np.uint8)
EDGE_ALPHAS = (1, 77, 128, 200, 254)  # the anti-aliased rim, where the roundings differ


def blender_pair() -> tuple[np.ndarray, np.ndarray]:
    """(render RGB on white, ground truth RGBA): the object on the left, transparent black (0, 0, 0, 0) on the
    right, a rim of partial alpha between; the render is the object 10 codes redder, composited onto white."""
    rng = np.random.default_rng(0)
    gt = np.zeros((H, W, 4), np.uint8)
    gt[:, :20, :3], gt[:, :20, 3] = COLOUR, 255
    for j, a in enumerate(EDGE_ALPHAS):
        gt[:, 20 + j, :3] = rng.integers(0, 256, (H, 3))
        gt[:, 20 + j, 3] = a
    a = gt[..., 3:].astype(np.float64) / 255
    on_white = gt[..., :3] * a + 255 * (1 - a)
    render = np.clip(np.rint(on_white) + np.where(np.arange(W) < 20, 10, 0)[None, :, None] * [1, 0, 0], 0, 255)
    return render.astype(np.uint8), gt


# ----------------------------------------------------------------------------- the tools, written again
def nerfbaselines_srgb(image: np.ndarray, background: tuple[int, int, int] | None) -> np.ndarray:
    """nerfbaselines/nerfbaselines@cde53bda nerfbaselines/utils.py image_to_srgb (uint8 in, uint8 out): RGBA is
    convert_image_dtype'd to float32 (x / 255.0), `tensor[..., :3] * alpha`, `+= (1 - alpha) * bg` with the uint8
    background as float32 / 255.0 (None: nothing added, i.e. black), then convert_image_dtype to uint8:
    `(x * 255.0).clip(0, 255).astype(uint8)` (truncation). evaluation.py DefaultEvaluationProtocol.evaluate applies it
    to prediction and ground truth with the dataset's background_color (datasets/blender.py: [255, 255, 255])."""
    if image.shape[-1] != 4:
        return image
    t = image.astype(np.float32) / 255.0
    alpha = t[..., -1:]
    t = t[..., :3] * t[..., -1:]
    if background is not None:
        t += (1 - alpha) * (np.array(background, np.uint8).astype(np.float32) / 255.0)
    return (t * 255.0).clip(0, 255).astype(np.uint8)


def nerfbaselines_psnr(pred_u8: np.ndarray, gt_u8: np.ndarray) -> float:
    """evaluation.py compute_metrics: convert_image_dtype to float32, metrics.psnr(metrics.mse) = -10 log10(mean)."""
    p, g = pred_u8.astype(np.float32) / 255.0, gt_u8.astype(np.float32) / 255.0
    return float(-10 * np.log10(((p - g) ** 2).mean()))


def nerfstudio_float(image: np.ndarray) -> torch.Tensor:
    """nerfstudio-project/nerfstudio@50e0e3c7 nerfstudio/data/datasets/base_dataset.py get_image_float32 with the
    Blender dataparser's alpha_color = get_color("white") = tensor([1., 1., 1.]) (blender_dataparser.py)."""
    t = torch.from_numpy(image / np.float32(255))
    if t.shape[-1] == 4:
        t = t[:, :, :3] * t[:, :, -1:] + torch.tensor([1.0, 1.0, 1.0]) * (1.0 - t[:, :, -1:])
    return t


def nerfstudio_uint8(image: np.ndarray) -> torch.Tensor:
    """The same file's get_image_uint8 (splatfacto's cache_images_type="uint8", method_configs.py), then
    splatfacto.py get_gt_img: `image.float() / 255.0`."""
    t = torch.from_numpy(image)
    if t.shape[-1] == 4:
        t = t[:, :, :3] * (t[:, :, -1:] / 255.0) + 255.0 * torch.tensor([1.0, 1.0, 1.0]) * (1.0 - t[:, :, -1:] / 255.0)
        t = torch.clamp(t, min=0, max=255).to(torch.uint8)
    return t.float() / 255.0


def torch_psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """torchmetrics PeakSignalNoiseRatio(data_range=1.0) on one image: 10 log10(1 / mse)."""
    return float(10 * torch.log10(1.0 / ((x - y) ** 2).mean()))


def three_dgs(image: np.ndarray) -> np.ndarray:
    """graphdeco-inria/gaussian-splatting@15d64e67 metrics.py readImages: tf.to_tensor(image)[:, :3] (alpha dropped)."""
    return image[..., :3]


# ----------------------------------------------------------------------------- the presets against them
NB_CASES = [("nerfbaselines", None), ("nerfbaselines-nerf", (255, 255, 255))]


@pytest.mark.parametrize(("preset", "dataset_background"), NB_CASES)
def test_nerfbaselines_presets_composite_as_image_to_srgb(preset, dataset_background):
    render, gt = blender_pair()
    fr = FullReference(preset, metrics=("psnr", "ssim", "mae"), device="cpu")
    got = fr.compute(render, gt)
    gt_tool = nerfbaselines_srgb(gt, dataset_background)
    assert got == fr.compute(render, gt_tool)  # bit for bit: the composite is the tool's
    assert got["psnr"] == pytest.approx(nerfbaselines_psnr(nerfbaselines_srgb(render, dataset_background), gt_tool),
                                        abs=1e-4)


def test_blender_ground_truth_on_white_scores_as_nerfbaselines_and_not_as_dropped_alpha():
    render, gt = blender_pair()
    nerf = FullReference("nerfbaselines-nerf", metrics=("psnr",), device="cpu").compute(render, gt)["psnr"]
    # by hand: the object's 10-code error on 20 of 48 columns; the transparent right is white on both sides; the rim
    # differs by the truncation only (0 or 1 code)
    gt_white = nerfbaselines_srgb(gt, (255, 255, 255)).astype(np.int64)
    rim = (render[:, 20:25].astype(np.int64) - gt_white[:, 20:25]) ** 2
    assert set(np.unique(rim)) <= {0, 1}
    mse = (H * 20 * 10 ** 2 + rim.sum()) / (H * W * 3 * 255 ** 2)
    assert nerf == pytest.approx(-10 * np.log10(mse), abs=1e-4) and nerf > 30
    dropped = FullReference("3dgs", metrics=("psnr",), device="cpu").compute(render, gt)["psnr"]
    assert dropped < 10  # black ground truth against a white render: what the old rule gave for every preset


@pytest.mark.parametrize("preset", ["nerfstudio-nerfacto", "nerfstudio-nerfacto-tm14"])
def test_nerfstudio_nerfacto_composites_in_float_on_white(preset):
    render, gt = blender_pair()
    fr = FullReference(preset, metrics=("psnr", "ssim"), device="cpu")
    got = fr.compute(render, gt)
    gt_tool = nerfstudio_float(gt).numpy()
    assert gt_tool.dtype == np.float32
    assert got == fr.compute(render, gt_tool)
    assert got["psnr"] == pytest.approx(torch_psnr(nerfstudio_float(render), nerfstudio_float(gt)), abs=1e-4)


def test_nerfstudio_splatfacto_composites_its_uint8_cache_on_white():
    render, gt = blender_pair()
    fr = FullReference("nerfstudio-splatfacto", metrics=("psnr", "ssim"), device="cpu")
    got = fr.compute(render, gt)
    gt_u8 = (nerfstudio_uint8(gt) * 255).round().to(torch.uint8).numpy()
    assert got == fr.compute(render, gt_u8)
    assert got["psnr"] == pytest.approx(torch_psnr(nerfstudio_uint8(render), nerfstudio_uint8(gt)), abs=1e-4)
    # the two nerfstudio roundings differ on the rim, so the presets are not interchangeable there
    assert not torch.equal(nerfstudio_uint8(gt), nerfstudio_float(gt))


def test_3dgs_drops_alpha_as_its_readimages():
    render, gt = blender_pair()
    fr = FullReference("3dgs", metrics=("psnr", "ssim"), device="cpu")
    assert fr.compute(render, gt) == fr.compute(render, three_dgs(gt))
    rgba_render = np.concatenate([render, np.full((H, W, 1), 9, np.uint8)], axis=2)
    assert fr.compute(rgba_render, gt) == fr.compute(render, three_dgs(gt))


def test_an_rgba_render_is_composited_too_and_files_read_as_arrays(tmp_path):
    render, gt = blender_pair()
    rgba_render = gt.copy()  # the ground truth's own pixels as an RGBA render: identical after compositing
    fr = FullReference("nerfbaselines-nerf", metrics=("psnr", "mae"), device="cpu")
    assert fr.compute(rgba_render, gt) == {"psnr": float("inf"), "mae": 0.0}
    Image.fromarray(gt, "RGBA").save(tmp_path / "gt.png")
    Image.fromarray(render).save(tmp_path / "render.png")
    assert fr.compute(tmp_path / "render.png", tmp_path / "gt.png") == fr.compute(render, gt)
    assert read_image(tmp_path / "gt.png").shape == (H, W, 3)  # every other reader: alpha dropped, as before
    assert np.array_equal(read_image(tmp_path / "gt.png", alpha=True), gt)
    la = Image.fromarray(gt[..., 0]).convert("L")
    la.putalpha(Image.fromarray(gt[..., 3]))
    la.save(tmp_path / "la.png")
    assert read_image(tmp_path / "la.png", alpha=True).shape == (H, W, 4)


def test_the_background_parameter_overrides_the_preset_and_is_stamped(caplog):
    render, gt = blender_pair()
    white = FullReference("nerfbaselines", metrics=("psnr",), device="cpu", background="white")
    assert white.compute(render, gt) == FullReference("nerfbaselines-nerf", metrics=("psnr",),
                                                      device="cpu").compute(render, gt)
    grey = FullReference("3dgs", metrics=("psnr",), device="cpu", background="128,128,128")
    with caplog.at_level(logging.WARNING):
        grey.compute(render, gt)
    assert "RGBA composited onto background 128,128,128" in caplog.text
    d = json.loads(json.dumps(grey.describe()))["inputs"]
    assert d["background"] == [128, 128, 128] and d["background_why"] == "set by the background parameter"
    assert FullReference("3dgs", metrics=("psnr",), device="cpu", background=(1, 2, 3)).protocol.background == (1, 2, 3)
    for name, p in PROTOCOLS.items():
        inputs = json.loads(json.dumps(p.describe()))["inputs"]
        assert inputs["background"] == (None if p.background is None else list(p.background)), name
        assert inputs["alpha"] and inputs["background_why"], name
    defaults = {"nerfbaselines": (0, 0, 0), "nerfbaselines-nerf": (255, 255, 255), "3dgs": None,
                "nerfstudio-nerfacto": (255, 255, 255), "nerfstudio-splatfacto": (255, 255, 255)}
    assert {n: PROTOCOLS[n].background for n in defaults} == defaults


@pytest.mark.parametrize("bad", ["grey", "1,2", "0,0,256", "-1,0,0", (1, 2), (1.5, 2, 3), (True, 0, 0)])
def test_a_bad_background_is_one_line_naming_the_parameter(bad):
    with pytest.raises(InputError, match=r"^background=.*: choose white, black or R,G,B with each of R, G, B in 0-255"):
        background_of(bad)
    assert background_of(" White ") == (255, 255, 255) and background_of("0, 10,255") == (0, 10, 255)
