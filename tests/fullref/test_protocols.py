"""The presets' distinguishing behaviour on tiny fixtures with exact expected values: 8-bit quantisation (NerfBaselines
truncates, 3DGS' save_image rounds, nerfstudio does not quantise), 3DGS' LPIPS without the 2x-1 step, the
averaging rule, and the stamp every result carries."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from consts import FULLREF_WEIGHTS
from models.errors import InputError
from models.fullref import FullReference, create
from models.fullref.metrics import METRICS
from models.fullref.protocols import PROTOCOLS, get


def test_quantisation_rules_exact():
    x = np.array([[[0.5, 0.999, 1.2], [-0.1, 0.0019, 1 / 255]]], dtype=np.float32)
    want = {"floor": [127, 254, 255, 0, 0, 1], "round": [128, 255, 255, 0, 0, 1]}
    for rule, codes in want.items():
        got = PROTOCOLS["nerfbaselines" if rule == "floor" else "3dgs"].prepare(x)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got.ravel(), np.array(codes, dtype=np.float32) / 255.0)
    none = PROTOCOLS["nerfstudio-nerfacto"].prepare(x)
    np.testing.assert_array_equal(none.ravel(), np.clip(x, 0, 1).ravel())


@pytest.mark.parametrize("preset", ["nerfbaselines", "3dgs", "nerfstudio-splatfacto"])
def test_8bit_inputs_pass_every_rule_unchanged(preset):
    codes = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    from_uint8 = PROTOCOLS[preset].prepare(codes)
    np.testing.assert_array_equal(from_uint8, codes.astype(np.float32) / 255.0)
    for as_float in (codes.astype(np.float32) / 255.0, codes.astype(np.float64) / 255.0):
        np.testing.assert_array_equal(PROTOCOLS[preset].prepare(as_float), from_uint8)
    sixteen = codes.astype(np.uint16) * 257  # a 16-bit image of the same values
    np.testing.assert_array_equal(PROTOCOLS[preset].prepare(sixteen), from_uint8)


def _psnr_expected(a: np.float32, b: np.float32) -> float:
    d = float(np.float32(a) - np.float32(b))  # the presets' float32 values (their float32 sums: within 1e-5 dB)
    return -10 * math.log10(d * d)


def test_one_float_render_three_presets_three_psnrs():
    render = np.full((32, 32, 3), 0.5, dtype=np.float32)  # 127.5 on the 8-bit scale
    gt = np.full((32, 32, 3), 128, dtype=np.uint8)
    got = {p: FullReference(p, metrics=("psnr",), device="cpu").compute(render, gt)["psnr"]
           for p in ("nerfbaselines", "nerfstudio-nerfacto", "3dgs")}
    g = np.float32(128) / np.float32(255)
    assert got["nerfbaselines"] == pytest.approx(_psnr_expected(np.float32(127) / np.float32(255), g), abs=1e-5)
    assert got["nerfbaselines"] == pytest.approx(20 * math.log10(255), abs=1e-4)  # one code value apart
    assert got["nerfstudio-nerfacto"] == pytest.approx(_psnr_expected(np.float32(0.5), g), abs=1e-5)
    assert got["nerfstudio-nerfacto"] == pytest.approx(20 * math.log10(510), abs=1e-3)  # half a code value
    assert got["3dgs"] == math.inf  # rounded half up to 128: identical


def test_3dgs_lpips_is_lpips_vgg_of_the_images_mapped_to_0_5_1(fullref_weights):
    # lpipsPyTorch feeds x in [0, 1] where LPIPS expects [-1, 1]: it is LPIPS-vgg of (x + 1) / 2
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 48, 64, generator=g)
    y = (x + 0.2 * torch.randn(2, 3, 48, 64, generator=g)).clamp(0, 1)
    gs = create("lpips-vgg", **PROTOCOLS["3dgs"].metrics["lpips"].options)
    true_vgg = create("lpips-vgg")
    np.testing.assert_allclose(gs(x, y).numpy(), true_vgg((x + 1) / 2, (y + 1) / 2).numpy(), rtol=1e-4, atol=1e-6)


def test_3dgs_lpips_on_a_calibration_pair(calibration, fullref_weights):
    # on a real pair the difference is large: 0.635 where LPIPS-vgg is 0.761
    d, r = calibration["I03"]
    got = {p: FullReference(p, metrics=("lpips",) if p == "3dgs" else ("lpips-vgg",), device="cpu").compute(d, r)
           for p in ("3dgs", "reference")}
    assert got["3dgs"]["lpips"] == pytest.approx(0.634617, abs=5e-6)
    assert got["reference"]["lpips-vgg"] == pytest.approx(0.761406, abs=5e-6)


def test_mean_is_the_mean_of_per_image_values():
    fr = FullReference("nerfstudio-nerfacto", metrics=("psnr", "mse"), device="cpu")
    gt = np.zeros((32, 32, 3), dtype=np.float32)
    rows = fr.compute_many([(gt + 0.1, gt), (gt + 0.01, gt)])
    mean = fr.mean(rows)
    assert mean["psnr"] == pytest.approx((rows[0]["psnr"] + rows[1]["psnr"]) / 2, abs=1e-12)
    pooled = -10 * math.log10((rows[0]["mse"] + rows[1]["mse"]) / 2)  # what a pooled-MSE PSNR would say
    assert abs(mean["psnr"] - pooled) > 5
    with pytest.raises(InputError, match="rows: no per-image results"):
        fr.mean([])


def test_every_result_can_be_stamped_with_its_protocol(fullref_weights):
    for name, protocol in PROTOCOLS.items():
        d = json.loads(json.dumps(FullReference(name, device="cpu").describe()))
        assert d["preset"] == name and d["averaging"].startswith("mean of per-image values") and d["source"]
        assert d["inputs"]["quantize"] == protocol.quantize and "alpha" in d["inputs"]
        assert list(d["metrics"]) == list(protocol.metrics)
        for key, ref in protocol.metrics.items():
            m = d["metrics"][key]
            assert m["metric"] == ref.metric and set(METRICS[ref.metric].options) <= set(m)
            for opt, value in ref.options.items():
                assert m[opt] == value
            for w in m.get("weights_files", []):
                assert w["tensors_sha256"] == FULLREF_WEIGHTS[w["file"].rsplit("/", 1)[1]]


def test_unknown_preset_and_metric_name_the_parameter():
    with pytest.raises(InputError, match=r"^preset='colmap': unknown; choose one of nerfbaselines, "):
        get("colmap")
    with pytest.raises(InputError, match=r"^metrics: 'lpips_vgg' is neither a metric of preset nerfbaselines "):
        FullReference("nerfbaselines", metrics=("lpips_vgg",), device="cpu")
    with pytest.raises(InputError, match=r"^name='vif': unknown metric; choose one of psnr, "):
        create("vif")
    with pytest.raises(InputError, match=r"^window: not an option of ssim \(its options: padding, clamp, "):
        create("ssim", window=7)
    with pytest.raises(InputError, match=r"^padding='same': choose one of 'valid', 'reflect', 'zero'$"):
        create("ssim", padding="same")
    with pytest.raises(InputError, match=r"^data_range=0: give a positive number or 'auto'$"):
        create("ssim", data_range=0)
