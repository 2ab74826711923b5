"""benchmarks/gpu_check.py (make gpu-check): the no-CUDA path, and the pure helpers with made-up inputs.

The measurements themselves need a CUDA machine; here they run where they can run on the CPU too
(``DEVICE = "cpu"``): the scorer's precision sweep on a few random frames (fp16 falls back to exact there), and the
CrossScore comparison with a tiny untrained network and with the committed demo model.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks import gpu_check as g
from consts import ROOT
from models.errors import InputError

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
    """The same code as on CUDA; on the CPU autocast is off, so fp16 and fp32 maps are identical. Without the
    committed demo model it falls back to the tiny checkpoint folder, and without both it skips naming both."""
    import consts
    from models.crossscore.checkpoint import save_model
    from models.crossscore.network import CrossScoreConfig, CrossScoreNet

    torch.manual_seed(0)
    net = CrossScoreNet(CrossScoreConfig(backbone="tiny", backbone_config=dict(consts.CROSSSCORE_TINY_BACKBONE),
                                         pe_h=6, pe_w=6)).eval()  # fmt: skip
    save_model(tmp_path / "tiny", net, {"predict_short_side": 84})
    monkeypatch.setattr(g, "DEVICE", "cpu")
    cfg = g.GpuCheckConfig(crossscore_frames=2)
    monkeypatch.setattr(consts, "CROSSSCORE_DEMO_MODEL", tmp_path / "no-demo.pth")
    monkeypatch.setattr(consts, "CROSSSCORE_TINY_DIR", tmp_path / "missing")
    r = g.check_crossscore(cfg)
    assert r["status"] == "skipped" and str(tmp_path / "no-demo.pth") in r["reason"]
    assert str(tmp_path / "missing") in r["reason"]
    monkeypatch.setattr(consts, "CROSSSCORE_TINY_DIR", tmp_path / "tiny")
    r = g.check_crossscore(cfg)
    assert r["status"] == "ok" and r["frames"] == 2 and r["max_abs_diff"] == 0.0 and r["map_shape"][0] == 84
    assert r["checkpoint"] == str(tmp_path / "tiny")


def test_crossscore_comparison_uses_the_committed_demo_model(monkeypatch):
    """A fresh GPU machine has no `make crossscore-demo` folder, but the repository's demo model: that one runs."""
    import consts
    from models.crossscore.predict import short_side_for

    demo = consts.CROSSSCORE_DEMO_MODEL
    assert demo.is_file(), f"{demo} is committed to the repository"
    monkeypatch.setattr(g, "DEVICE", "cpu")
    monkeypatch.setattr(consts, "CROSSSCORE_TINY_DIR", Path("/nonexistent/crossscore-tiny"))
    r = g.check_crossscore(g.GpuCheckConfig(crossscore_frames=1))
    assert r["status"] == "ok" and r["checkpoint"] == str(demo) and r["frames"] == 1
    assert r["max_abs_diff"] == 0.0 and min(r["map_shape"]) == short_side_for(-1, str(demo))


def test_precision_modes_parse_and_a_bad_name_is_one_error_line(capsys):
    from models.nvs_sqa.precision import PRECISIONS

    assert set(g.SCORER_PRECISIONS) == set(PRECISIONS)  # the same names, without importing torch at parse time
    assert g.parse_precisions(g.GpuCheckConfig().scorer_precisions) == ["exact", "fp16", "bf16", "mixed"]
    assert g.GpuCheckConfig().scorer_batch_size == 16
    assert g.parse_precisions(" mixed,exact , mixed") == ["mixed", "exact"]  # in order, each once
    for spec, bad in (("exact,fp32", "'fp32'"), ("", "''"), ("exact,,bf16", "''")):
        with pytest.raises(InputError, match=f"^--scorer-precisions {spec}: {bad} is not a precision mode; give"):
            g.parse_precisions(spec)
    assert g.main(["--scorer-precisions", "exact,FP16", "--out", "/nonexistent/x"]) == 2
    err = capsys.readouterr().err
    assert err == ("error: --scorer-precisions exact,FP16: 'FP16' is not a precision mode; give a comma-separated "
                   "list of exact, fp16, bf16, mixed\n")  # fmt: skip
    with pytest.raises(SystemExit) as e:
        g.main(["--scorer-batch-size", "0"])
    assert e.value.code == 2 and "--scorer-batch-size 0: must be >= 1" in capsys.readouterr().err


def test_report_of_the_precision_sweep_from_made_up_results():
    ex = [("Giraffe+NeRF", 120, -2.04), ("Giraffe+IBRNet-C", 120, -2.11)]

    def mode(requested, ran, diffs, jod_diffs, **kw):
        rows = [{"name": n, "frames": f, "max_abs_diff": d, "jod": j + (jd or 0.0), "jod_diff": jd}
                for (n, f, j), d, jd in zip(ex, diffs, jod_diffs, strict=True)]  # fmt: skip
        return {"requested": requested, "ran": ran, "status": "ok", "examples": rows, **kw}

    sc = {"status": "ok", "batch_size": 16, "reference": "../shared/reference/features.npz", "modes": [
        mode("exact", "exact", [3e-6, 2e-4], [1e-6, -2e-6], frames_per_s=400.0, ms_per_frame=2.5,
             peak_gpu_mib=812.4),
        mode("fp16", "fp16", [2.5e-3, 3e-3], [0.0125, None], frames_per_s=950.25, ms_per_frame=1.0523,
             peak_gpu_mib=501.0, max_abs_diff_vs_exact=2.4e-3, same_order_as_exact=False),
        mode("bf16", "exact", [3e-6, 2e-4], [1e-6, -2e-6], frames_per_s=399.0, ms_per_frame=2.5063,
             peak_gpu_mib=812.0, max_abs_diff_vs_exact=0.0, same_order_as_exact=True,
             fallback="--precision bf16: this GPU has no bfloat16; running exact (float32)"),
        mode("mixed", "mixed", [9e-5, 1.5e-4], [None, None], frames_per_s=700.0, ms_per_frame=1.4286,
             peak_gpu_mib=None, max_abs_diff_vs_exact=1e-4, same_order_as_exact=None),
        {"requested": "fp16", "status": "failed", "reason": "OutOfMemoryError: CUDA out of memory"}]}  # fmt: skip
    md = g.report_md({"scorer": sc})
    assert "Batch 16, after a warm-up pass; reference: ../shared/reference/features.npz." in md
    assert "| exact | exact | 400.0 | 2.50 | 812 | – | – |" in md
    assert "| fp16 | fp16 | 950.2 | 1.05 | 501 | 2.40e-03 | **no** |" in md
    assert "| bf16 | **exact** (fallback, see below) | 399.0 | 2.51 | 812 | 0.00e+00 | yes |" in md
    assert "| mixed | mixed | 700.0 | 1.43 | – | 1.00e-04 | – |" in md
    assert "| fp16 | failed: OutOfMemoryError: CUDA out of memory | – | – | – | – | – |" in md
    assert "| exact | Giraffe+NeRF | 120 | 3.00e-06 | yes | -2.0400 | +1.00e-06 |" in md
    assert "| exact | Giraffe+IBRNet-C | 120 | 2.00e-04 | **no** | -2.1100 | -2.00e-06 |" in md  # the criterion
    assert "| fp16 | Giraffe+NeRF | 120 | 2.50e-03 | – | -2.0275 | +1.25e-02 |" in md  # error only, no verdict
    assert "| fp16 | Giraffe+IBRNet-C | 120 | 3.00e-03 | – | -2.1100 | – |" in md
    assert "| bf16 | Giraffe+NeRF | 120 | 3.00e-06 | – |" in md
    assert "| mixed | Giraffe+NeRF | 120 | 9.00e-05 | yes | -2.0400 | – |" in md
    assert "| mixed | Giraffe+IBRNet-C | 120 | 1.50e-04 | no | -2.1100 | – |" in md  # shown, not bold: no pass/fail
    assert "\n\n- bf16 ran as exact: --precision bf16: this GPU has no bfloat16; running exact (float32)\n" in md
    assert md.count("ran as exact:") == 1 and "Giraffe+NeRF | 120 | 3.10e-06" not in md


def _random_frames(folder: Path, n: int, seed: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (72, 88, 3), dtype=np.uint8)).save(folder / f"frame{i}.png")


def test_scorer_sweep_runs_on_the_cpu(tmp_path, monkeypatch, released_model):
    """The sweep's code on the CPU over two made-up examples of one scene: fp16 falls back to exact there (recorded),
    so both modes give the same features; there is no reference for these names, so no diffs ("–")."""
    import consts

    names = ("Toy+A", "Toy+B")
    for i, name in enumerate(names):
        _random_frames(tmp_path / name, 3, seed=i)
    monkeypatch.setattr(g, "DEVICE", "cpu")
    monkeypatch.setattr(g, "EXAMPLES", names)
    monkeypatch.setattr(consts, "EXAMPLES_DIR", tmp_path)
    cfg = g.GpuCheckConfig(scorer_precisions="exact,fp16", scorer_repeats=1, scorer_batch_size=2)
    r = g.check_scorer(cfg)
    assert r["status"] == "ok" and r["batch_size"] == 2 and r["parity"] is None
    exact, fp16 = r["modes"]
    assert (exact["requested"], exact["ran"], exact["fallback"]) == ("exact", "exact", None)
    assert (fp16["requested"], fp16["ran"]) == ("fp16", "exact") and "float16 is for CUDA" in fp16["fallback"]
    for m in (exact, fp16):
        assert m["status"] == "ok" and m["peak_gpu_mib"] is None and "features" not in m
        assert m["frames_per_s"] > 0 and m["ms_per_frame"] == pytest.approx(1000 / m["frames_per_s"])
        assert [(e["name"], e["frames"], e["max_abs_diff"], e["jod_diff"]) for e in m["examples"]] == \
            [(n, 3, None, None) for n in names]  # fmt: skip
    assert [e["jod"] for e in fp16["examples"]] == [e["jod"] for e in exact["examples"]]  # the same computation
    assert fp16["max_abs_diff_vs_exact"] == 0.0 and fp16["same_order_as_exact"] is True
    assert "same_order_as_exact" not in exact
    jod = {e["name"]: e["jod"] for e in exact["examples"]}
    assert exact["order"] == {"Toy": sorted(names, key=lambda n: -jod[n])}
    for name in names:  # the released scorer at its default batch size on the same frames: the same JOD
        want = released_model.predict(released_model.features(tmp_path / name))[0]
        assert jod[name] == pytest.approx(want, abs=1e-5)
    md = g.report_md({"scorer": r})
    assert "| fp16 | **exact** (fallback, see below) |" in md and "| 0.00e+00 | yes |" in md
    assert "| exact | Toy+A | 3 | – | – |" in md and "- fp16 ran as exact: --precision fp16: float16 is for CUDA" in md


def test_a_failing_part_is_recorded_not_raised():
    def boom(cfg):
        raise ValueError("no such thing\nsecond line")

    assert g._guard(boom, None) == {"status": "failed", "reason": "ValueError: second line"}


def test_make_target():
    text = (ROOT / "Makefile").read_text()
    assert "\ngpu-check: setup\n\t$(PY) -m benchmarks.gpu_check\n" in text
    assert any("gpu-check" in line.split() for line in text.splitlines() if line.startswith(".PHONY:"))
    assert Path(g.__file__).parent == ROOT / "benchmarks"
