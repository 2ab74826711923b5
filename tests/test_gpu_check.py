"""benchmarks/gpu_check.py (make gpu-check): the no-CUDA path, and the pure helpers with made-up inputs.

The measurements themselves need a CUDA machine; here they run only where they can run on the CPU too
(``DEVICE = "cpu"``: the CrossScore comparison with a tiny untrained network).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import gpu_check as g
from consts import ROOT

OUTPUTS = (ROOT / "benchmarks" / "gpu.json", ROOT / "benchmarks" / "gpu.md")


def test_without_cuda_it_says_so_writes_nothing_and_exits_0(tmp_path):
    before = [p.exists() for p in OUTPUTS]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no GPU even on a machine that has one
    for form in (["-m", "benchmarks.gpu_check"], [str(ROOT / "benchmarks" / "gpu_check.py")]):  # both work
        for out in ([], ["--out", str(tmp_path / "out")]):
            proc = subprocess.run([sys.executable, *form, *out], cwd=ROOT, env=env, capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr
            assert proc.stdout == g.NO_CUDA + "\n"
    assert not (tmp_path / "out").exists() and [p.exists() for p in OUTPUTS] == before


def test_without_cuda_in_process(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert g.main(["--out", str(tmp_path / "out"), "--steps", "3"]) == 0
    assert capsys.readouterr().out == g.NO_CUDA + "\n" and not (tmp_path / "out").exists()


def test_bad_flag_is_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        g.main(["--steps", "1"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "--steps 1: must be >= 2" in err


def test_pick_preset_reads_train_help():
    assert g.pick_preset("  [--preset {paper,cpu-smoke}] [--name NAME]") == "paper"
    assert g.pick_preset("  [--preset {full,cpu-smoke}]\n  --preset {full,cpu-smoke}  base") == "full"
    with pytest.raises(RuntimeError, match="no full/paper preset"):
        g.pick_preset("usage: train.py [-h]")


def test_train_args_measure_steps_inside_one_epoch():
    cfg = g.GpuCheckConfig(steps=5, batch_size=16, workers=3)
    a = g.train_args("full", "/r", "/runs", "fp32", cfg, amp=False)
    assert "--no-amp" in a and "--amp" not in a and "--amp" in g.train_args("full", "/r", "/runs", "x", cfg, True)
    rest = [x for x in a if x != "--no-amp"]
    opt = dict(zip(rest[::2], rest[1::2], strict=True))
    assert opt["--preset"] == "full" and opt["--device"] == "cuda" and opt["--stop-after-steps"] == "5"
    assert int(opt["--scene-repeats"]) // int(opt["--batch-size"]) > 5  # no epoch end (validation) inside
    assert (opt["--epochs"], opt["--val-pairs"], opt["--workers"], opt["--runs-dir"]) == ("1", "0", "3", "/runs")


def _rows(n: int) -> list[dict]:
    return [{"kind": "step", "step": i + 1, "pairs": 4, "data_s": 0.1 if i else 5.0, "forward_s": 0.2,
             "backward_s": 0.7} for i in range(n)] + [{"kind": "val", "step": n}]  # fmt: skip


def test_summarize_steps_leaves_the_warm_up_out():
    s = g.summarize_steps(_rows(4), stamps=[10.0, 11.0, 12.0, 14.0])
    assert s["measured_steps"] == 3 and s["pairs"] == 12
    assert s["pairs_per_s"] == pytest.approx(12 / 3.0) and s["step_s"] == pytest.approx(1.0)
    assert s["data_wait_fraction"] == pytest.approx(0.1)
    assert s["pairs_per_s_wall"] == pytest.approx(12 / 4.0)  # from the end of step 1 to the end of step 4
    assert "pairs_per_s_wall" not in g.summarize_steps(_rows(4))  # no stamps: logged times only
    assert "pairs_per_s_wall" not in g.summarize_steps(_rows(4), stamps=[1.0])  # not one per step: unused
    with pytest.raises(RuntimeError, match="fewer than 2"):
        g.summarize_steps(_rows(1))


def test_report_from_made_up_results():
    res = {
        "gpu": "NVIDIA H100 80GB HBM3", "gpu_count": 1, "torch": "2.13.0+cu130", "cuda": "13.0",
        "created": "2026-11-25T04:00:00+00:00",
        "scorer": {"status": "ok", "examples": [
            {"name": "Giraffe+NeRF", "frames": 120, "max_abs_diff": 3.1e-6, "ms_per_frame": 2.5},
            {"name": "Giraffe+IBRNet-C", "frames": 120, "max_abs_diff": 2e-4, "ms_per_frame": 2.6}]},
        "training": [
            {"run": "fp32", "preset": "full", "gpus": 1, "batch_size": 16, "status": "ok", "pairs_per_s": 12.5,
             "pairs_per_s_wall": 11.0, "data_wait_fraction": 0.25, "peak_gpu_mib": 20480.0},
            {"run": "amp", "preset": "full", "gpus": 1, "batch_size": 16, "status": "failed",
             "reason": "exit 1: CUDA out of memory"},
            {"run": "ddp", "preset": "full", "gpus": 1, "status": "skipped", "reason": "1 GPU: skipped"}],
        "crossscore": {"status": "skipped", "reason": "no CrossScore checkpoint"},
    }  # fmt: skip
    md = g.report_md(res)
    assert "NVIDIA H100 80GB HBM3 × 1, torch 2.13.0+cu130 (CUDA 13.0)" in md
    assert "| Giraffe+NeRF | 120 | 3.10e-06 | yes | 2.50 |" in md and "| 2.00e-04 | **no** |" in md
    assert "| fp32 | full | 1 | 16 | ok | 12.5 | 11 | 25.0 % | 20480 |" in md
    assert "| amp | full | 1 | 16 | failed: exit 1: CUDA out of memory | – | – | – | – |" in md
    assert "| ddp | full | 1 | – | skipped: 1 GPU: skipped |" in md
    assert "skipped: no CrossScore checkpoint" in md
    res["crossscore"] = {"status": "ok", "frames": 4, "query": "Giraffe+NeRF", "checkpoint": "c",
                         "max_abs_diff": 1.5e-3, "mean_abs_diff": 2e-4}  # fmt: skip
    res["scorer"] = {"status": "failed", "reason": "RuntimeError: boom"}
    md = g.report_md(res)
    assert "max |fp16 − fp32| of the maps **1.50e-03** (mean 2.00e-04" in md and "failed: RuntimeError: boom" in md
    assert g.report_md({}).startswith("# GPU check")  # nothing measured: still a page, no KeyError


def test_crossscore_comparison_runs_on_the_cpu(tmp_path, monkeypatch):
    """The same code as on CUDA; on the CPU autocast is off, so fp16 and fp32 maps are identical."""
    import consts
    from models.crossscore.checkpoint import save_model
    from models.crossscore.network import CrossScoreConfig, CrossScoreNet

    torch.manual_seed(0)
    net = CrossScoreNet(CrossScoreConfig(backbone="tiny", backbone_config=dict(consts.CROSSSCORE_TINY_BACKBONE),
                                         pe_h=6, pe_w=6)).eval()  # fmt: skip
    save_model(tmp_path / "tiny", net, {"predict_short_side": 84})
    monkeypatch.setattr(g, "DEVICE", "cpu")
    cfg = g.GpuCheckConfig(crossscore_frames=2)
    monkeypatch.setattr(consts, "CROSSSCORE_TINY_DIR", tmp_path / "missing")
    assert g.check_crossscore(cfg)["status"] == "skipped"
    monkeypatch.setattr(consts, "CROSSSCORE_TINY_DIR", tmp_path / "tiny")
    r = g.check_crossscore(cfg)
    assert r["status"] == "ok" and r["frames"] == 2 and r["max_abs_diff"] == 0.0 and r["map_shape"][0] == 84


def test_a_failing_part_is_recorded_not_raised():
    def boom(cfg):
        raise ValueError("no such thing\nsecond line")

    assert g._guard(boom, None) == {"status": "failed", "reason": "ValueError: second line"}


def test_make_target():
    text = (ROOT / "Makefile").read_text()
    assert "\ngpu-check: setup\n\t$(PY) -m benchmarks.gpu_check\n" in text
    assert any("gpu-check" in line.split() for line in text.splitlines() if line.startswith(".PHONY:"))
    assert Path(g.__file__).parent == ROOT / "benchmarks"
