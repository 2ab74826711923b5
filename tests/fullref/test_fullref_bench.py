"""benchmarks/fullref_bench.py (make bench-fullref): the timing helpers on a small image and the report's lines."""

from __future__ import annotations

import numpy as np
import torch

from benchmarks import fullref_bench as fb


def test_time_ms_is_the_median_after_a_warm_up():
    calls = []
    assert fb.time_ms(lambda: calls.append(1), 3, torch.device("cpu")) >= 0.0
    assert len(calls) == 4


def test_measures_on_a_small_image():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    render = np.clip(gt.astype(int) + 9, 0, 255).astype(np.uint8)
    x, y = (torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1)[None] for a in (render, gt))
    rows = fb.measure_metrics(x, y, torch.device("cpu"), 1, names=("psnr", "ssim"))
    assert [r["what"] for r in rows] == ["psnr", "ssim", "ssim + map"]
    assert rows[0]["value"] < 50 and all(r["ms"] >= 0 for r in rows)
    preset = fb.measure_presets(render, gt, torch.device("cpu"), 1, presets=("nerfstudio-splatfacto",))
    assert preset[0]["what"] == "preset nerfstudio-splatfacto" and preset[0]["value"].startswith("psnr ")


def test_report_lines():
    result = {"cpu": "AMD EPYC", "threads": 2, "device": "cpu", "torch": "2.13.0", "load_before": 0.5,
              "load_after": 1.25, "repeats": 5, "image": "960x768", "pair": "a vs b, frame 0",
              "rows": [{"what": "lpips-alex", "ms": 123.456, "value": 0.1234567}, {"what": "preset 3dgs", "ms": 5.0,
                                                                                  "value": "psnr 30, ssim 0.9"}]}
    md = fb.report(result)
    assert md.startswith("# Full-reference metrics: time per 960x768 image")
    assert "on AMD EPYC, 2 torch threads, device cpu, torch 2.13.0, load average 0.50 before / 1.25 after" in md
    assert "| lpips-alex  | 123.5 | 0.123457          |" in md and "| preset 3dgs |   5.0 | psnr 30, ssim 0.9 |" in md
