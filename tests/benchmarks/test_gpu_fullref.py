"""benchmarks/gpu_fullref.py (make gpu-check's ``fullref`` part): its CPU rehearsal, with the weights that travel.

On the GPU machine only the small full-reference weights travel (benchmarks/gpu_travel.py); the backbones are seeded
stand-ins. Here the same code compares the CPU with itself: every difference must be 0, and the comparison must
report a value that is off.
"""

from __future__ import annotations

import math

import pytest
import torch

from benchmarks import gpu_fullref as f
from benchmarks import gpu_travel
from models.errors import InputError
from models.fullref import networks, weights


def test_cpu_against_cpu_finds_no_difference_with_stand_in_backbones(travelled, monkeypatch):
    monkeypatch.setattr(f, "_has_flip", lambda: False)  # as in the GPU image
    real_load = weights.load
    fr = f.measure("cpu", n_pairs=2, presets=("nerfbaselines", "reference"), size=176, repeats=1)
    assert fr["weights"] == {"alexnet.pth": "stand-in", "vgg16.pth": "stand-in", "lpips_v0.1_lin.pth": "real",
                             "dists.pth": "real"}  # fmt: skip
    assert weights.load is real_load and networks._state.cache_info().currsize == 0  # nothing left behind
    assert fr["size"] == [176, 176] and fr["pairs"] == 2
    nb, ref = fr["presets"]
    assert nb["metrics"] == ["psnr", "ssim", "mae", "mse", "lpips"] and ref["status"] == "ok"
    assert ref["skipped"] == ["flip"] and "flip" not in ref["cpu"] and nb["skipped"] == []
    for p in (nb, ref):
        assert p["pass"] and p["default"]["within"]
        for setting in ("default", "tf32_off"):
            assert set(p[setting]["max_abs_diff"].values()) == {0.0}
            assert all(v > 0 for v in p[setting]["pairs_per_s"].values()) and p[setting]["pairs_per_s_all"] > 0
        assert all(v > 0 for v in p["cpu_pairs_per_s"].values())
    assert all(0 < v < 1 for v in nb["cpu"]["lpips"] + ref["cpu"]["dists"])  # stand-ins keep the usual range
    assert f.problems(fr) == []
    lines = f.report_lines(fr)
    assert "| nerfbaselines | lpips | 0.00e+00 | 0.00e+00 |" in "\n".join(lines)
    assert "| reference | flip: not measured (flip_evaluator missing) | – |" in "\n".join(lines)
    assert lines[-2].startswith("**Pass** (TF32 off: every value of 2 presets within 1e-05 of the CPU's)")

    off = {k: list(v) for k, v in nb["cpu"].items()}
    off["lpips"][1] += 2e-5  # one value of one metric off by twice the tolerance
    diffs = f.max_abs_diff(off, nb["cpu"])
    assert diffs["lpips"] == pytest.approx(2e-5, rel=1e-3) and not f.within(diffs)
    assert {k: v for k, v in diffs.items() if k != "lpips"} == dict.fromkeys(("psnr", "ssim", "mae", "mse"), 0.0)
    nb["tf32_off"] = {**nb["tf32_off"], "max_abs_diff": diffs, "within": False}
    nb["pass"] = False
    assert f.problems(fr) == [f"fullref nerfbaselines: over 1e-05 with TF32 off: {{'lpips': {diffs['lpips']}}}"]
    text = "\n".join(f.report_lines(fr))
    assert f"| nerfbaselines | lpips | 0.00e+00 | {diffs['lpips']:.2e} **over** |" in text
    assert "**Not passed**: over 1e-05 with TF32 off in nerfbaselines; not measured: none" in text


def test_differences_of_infinite_and_nan_values():
    ref = {"psnr": [math.inf, 30.0], "lpips": [0.1, 0.2]}
    assert f.max_abs_diff({"psnr": [math.inf, 30.0], "lpips": [0.1, 0.2]}, ref) == {"psnr": 0.0, "lpips": 0.0}
    d = f.max_abs_diff({"psnr": [math.inf, 30.0], "lpips": [math.nan, 0.2]}, ref)
    assert math.isnan(d["lpips"]) and not f.within(d)
    assert f.within({"psnr": 1e-5}) and not f.within({"psnr": 1.1e-5})


def test_stand_ins_are_seeded_and_shaped_as_the_backbones():
    a, b = f._stand_in("vgg16.pth"), f._stand_in("vgg16.pth")
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in networks.VGG16Taps().state_dict().items()}
    assert {k: v.shape for k, v in a.items()} == shapes and all(torch.equal(a[k], b[k]) for k in a)
    assert set(f.BACKBONES) | {p.name for p in gpu_travel.FULLREF_CARRIED} == set(weights.FULLREF_WEIGHTS)


def test_presets_parse_and_a_failed_preset_is_reported():
    assert f.parse_presets("") == f.PRESETS and f.parse_presets("3dgs, reference,3dgs") == ("3dgs", "reference")
    with pytest.raises(InputError, match=r"^--fullref-presets 3dgs,nope: 'nope' is not a preset; choose from "):
        f.parse_presets("3dgs,nope")
    fr = {"tolerance": 1e-5, "presets": [{"preset": "3dgs", "status": "failed", "reason": "X: y"},
                                         {"preset": "reference", "status": "skipped", "reason": "time budget spent"}]}
    assert f.problems(fr) == ["fullref 3dgs: failed X: y", "fullref reference: skipped time budget spent"]
    assert f.verdict(fr).startswith("**Not passed**: over 1e-05 with TF32 off in none; not measured: 3dgs, reference")
