"""benchmarks/gpu_check.py (make gpu-check): the no-CUDA path, and the pure helpers with made-up inputs.

The measurements themselves need a CUDA machine; here they run where they can run on the CPU too
(``device="cpu"``): the scorer's precision sweep on a few random frames (fp16 falls back to exact there), and the
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
from benchmarks import gpu_train as gt
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


def test_train_args_measure_steps_inside_one_epoch():
    run = gt.TrainRun("x", "full", "paper", amp=False)
    a = gt.train_args(run, "/r", "/runs", "fp32", steps=5, batch_size=16, workers=3, device="cuda")
    assert "--no-amp" in a and "--amp" not in a
    assert "--amp" in gt.train_args(gt.TrainRun("y", "cpu-smoke", "paper", True), "/r", "/runs", "x", 5, 16, 3, "cuda")
    rest = [x for x in a if x != "--no-amp"]
    opt = dict(zip(rest[::2], rest[1::2], strict=True))
    assert (opt["--preset"], opt["--recipe"], opt["--device"], opt["--stop-after-steps"]) == ("full", "paper", "cuda",
                                                                                              "5")  # fmt: skip
    assert int(opt["--scene-repeats"]) // int(opt["--batch-size"]) > 5  # no epoch end (validation) inside
    assert (opt["--epochs"], opt["--val-pairs"], opt["--workers"], opt["--runs-dir"]) == ("1", "0", "3", "/runs")
    assert "--crop-min" not in opt and "--segment-pixels" not in opt  # the preset's own sizes
    tiny = gt.train_args(run, "/r", "/runs", "fp32", steps=5, batch_size=16, workers=3, device="cuda", crop=72)
    assert tiny[: len(a)] == a  # the same run, with the sizes added
    tiny_opt = dict(zip(tiny[len(a):][::2], tiny[len(a):][1::2], strict=True))
    assert tiny_opt == {"--crop-min": "72", "--crop-max": "72", "--segment-pixels": str(72 * 72 * 2)}  # 2 frames


def test_the_runs_cover_what_the_issue_asks_and_exist_as_presets():
    from models.training.config import PRESETS
    from models.training.targets import RECIPES

    runs = gt.RUNS
    assert {r.preset for r in runs} <= set(PRESETS) and {r.recipe for r in runs} <= set(RECIPES)
    assert {(r.preset, r.amp) for r in runs} == {(p, a) for p in ("full", "cpu-smoke") for a in (False, True)}
    assert runs[0] == gt.TrainRun("full-upstream-fp32", "full", "upstream", False)  # what `python train.py` does
    assert sum(r.torchrun for r in runs) == 1 and gt.RESUMED in {r.label for r in runs}
    assert all(RECIPES[r.recipe].amp for r in runs if r.amp)  # AMP asked only where the recipe allows it


def test_runs_flag_picks_in_order_and_refuses_unknown_names(capsys):
    assert [r.label for r in g.parse_runs("smoke-paper-amp, full-upstream-fp32,smoke-paper-amp")] == [
        "smoke-paper-amp", "full-upstream-fp32"]  # fmt: skip
    with pytest.raises(InputError, match="^--runs full,x: 'full' is not a run; choose from full-upstream-fp32, "):
        g.parse_runs("full,x")
    assert g.main(["--runs", "nope", "--out", "/nonexistent/x"]) == 2
    assert capsys.readouterr().err.startswith("error: --runs nope: 'nope' is not a run")


def _rows(n: int) -> list[dict]:
    return [{"kind": "step", "step": i + 1, "pairs": 4, "data_s": 0.1 if i else 5.0, "targets_s": 0.2,
             "forward_s": 0.2, "backward_s": 0.5, "loss": 1.0 / (i + 1)} for i in range(n)] + \
        [{"kind": "val", "step": n}]  # fmt: skip


def test_summarize_steps_leaves_the_warm_up_out():
    s = gt.summarize_steps(_rows(4), stamps=[10.0, 11.0, 12.0, 14.0])
    assert s["measured_steps"] == 3 and s["pairs"] == 12
    assert s["pairs_per_s"] == pytest.approx(12 / 3.0) and s["step_s"] == pytest.approx(1.0)
    assert s["data_wait_fraction"] == pytest.approx(0.1) and s["targets_fraction"] == pytest.approx(0.2)
    assert s["pairs_per_s_wall"] == pytest.approx(12 / 4.0)  # from the end of step 1 to the end of step 4
    assert "pairs_per_s_wall" not in gt.summarize_steps(_rows(4))  # no stamps: logged times only
    assert "pairs_per_s_wall" not in gt.summarize_steps(_rows(4), stamps=[1.0])  # not one per step: unused
    with pytest.raises(RuntimeError, match="fewer than 2"):
        gt.summarize_steps(_rows(1))


def test_compare_resume_judges_the_steps_after_the_stop():
    whole = _rows(4)
    resumed = [dict(r) for r in whole]
    ok = gt.compare_resume(whole, resumed, stopped_at=2)
    assert ok["complete"] and ok["steps_after_resume"] == [3, 4] and ok["max_abs_loss_diff_vs_uninterrupted"] == 0.0
    assert ok["loss_before_stop_identical"]
    resumed[3]["loss"] += 1e-3  # step 4 a little off (a CUDA kernel's rounding): reported, not a failure
    off = gt.compare_resume(whole, resumed, stopped_at=2)
    assert off["complete"] and off["max_abs_loss_diff_vs_uninterrupted"] == pytest.approx(1e-3)
    lost = gt.compare_resume(whole, [r for r in resumed if r.get("step") != 4 or r["kind"] != "step"], 2)
    assert not lost["complete"] and lost["steps_after_resume"] == [3]
    changed = [dict(r) for r in whole]
    changed[0]["loss"] = 9.0
    noisy = gt.compare_resume(whole, changed, 2)
    assert not noisy["loss_before_stop_identical"] and noisy["max_abs_loss_diff_before_stop"] == 8.0
    assert ok["max_abs_loss_diff_before_stop"] == 0.0


def test_report_from_made_up_results():
    res = {
        "gpu": "NVIDIA H200", "gpu_count": 1, "torch": "2.11.0+cu130", "cuda": "13.0", "device": "cuda",
        "created": "2026-12-04T04:00:00+00:00",
        "environment": {"status": "ok", "nvidia_smi": "NVIDIA H200, 580.159.04, 143771 MiB, 9.0", "cpu": "Xeon",
                        "cpus": 16, "python": "3.12.3", "versions": {"numpy": "2.5.2", "pyfvvdp": "1.2.2"}},
        "scorer": {"status": "failed", "reason": "RuntimeError: boom"},
        "training": [
            {"run": "full-upstream-fp32", "preset": "full", "recipe": "upstream", "amp": False, "gpus": 1,
             "batch_size": 16, "status": "ok", "pairs_per_s": 12.5, "pairs_per_s_wall": 11.0,
             "data_wait_fraction": 0.25, "targets_fraction": 0.125, "peak_gpu_mib": 20480.0},
            {"run": "full-paper-amp", "preset": "full", "recipe": "paper", "amp": True, "gpus": 1, "batch_size": 16,
             "status": "failed", "reason": "exit 1: CUDA out of memory"},
            {"run": "ddp-smoke-paper-amp", "preset": "cpu-smoke", "recipe": "paper", "amp": True, "gpus": 1,
             "batch_size": 16, "status": "ok", "pairs_per_s": 40.0, "process_group": {"backend": "nccl",
                                                                                      "world_size": 1}},
            {"run": "smoke-upstream-fp32 stop + --resume", "status": "ok", "stopped_at_step": 3,
             "steps_after_resume": [4, 5, 6], "max_abs_loss_diff_vs_uninterrupted": 2.5e-7,
             "loss_before_stop_identical": False, "max_abs_loss_diff_before_stop": 1e-6},
            {"run": "smoke-paper-amp", "preset": "cpu-smoke", "recipe": "paper", "status": "skipped",
             "reason": "time budget (330 s) spent"}],
        "crossscore": {"status": "skipped", "reason": "no CrossScore checkpoint"},
        "part_seconds": {"environment": 1.2, "scorer": 40.4},
    }  # fmt: skip
    md = g.report_md(res)
    assert "NVIDIA H200 × 1, torch 2.11.0+cu130 (CUDA 13.0), 2026-12-04T04:00:00+00:00; device `cuda`." in md
    assert "`nvidia-smi`: NVIDIA H200, 580.159.04, 143771 MiB, 9.0; CPU: Xeon × 16; Python 3.12.3; numpy 2.5.2, " \
           "pyfvvdp 1.2.2." in md  # fmt: skip
    assert "| full-upstream-fp32 | full | upstream | no | 1 | 16 | ok | 12.5 | 11 | 25.0 % | 12.5 % | 20480 |" in md
    assert "| full-paper-amp | full | paper | yes | 1 | 16 | failed: exit 1: CUDA out of memory | – | – | – | – | – |" \
        in md  # fmt: skip
    assert "| smoke-paper-amp | cpu-smoke | paper | – | – | – | skipped: time budget (330 s) spent |" in md
    assert "ddp-smoke-paper-amp: process group backend **nccl**, world size 1." in md
    res["training"][0]["crop"] = 72  # the rehearsal's sizes: said beside the preset
    assert "| full-upstream-fp32 | full, 72 px crops | upstream | no |" in g.report_md(res)
    assert "smoke-upstream-fp32 stop + --resume: stopped after step 3, resumed and ran steps [4, 5, 6]; max |loss − " \
           "the uninterrupted run's| after the resume: 2.50e-07; losses before the stop identical: no " \
           "(max |difference| 1.00e-06: the run-to-run noise)." in md
    assert "stop + --resume |" not in md  # not a row of the speed table
    assert "skipped: no CrossScore checkpoint" in md and "failed: RuntimeError: boom" in md
    assert "Seconds per part: environment 1, scorer 40." in md
    res["crossscore"] = {"status": "ok", "frames": 4, "query": "Giraffe+NeRF", "checkpoint": "c",
                         "max_abs_diff": 1.5e-3, "mean_abs_diff": 2e-4}  # fmt: skip
    assert "max |fp16 − fp32| of the maps **1.50e-03** (mean 2.00e-04" in g.report_md(res)
    assert g.report_md({}).startswith("# GPU check")  # nothing measured: still a page, no KeyError


def test_strict_names_every_failure_and_a_package_from_outside_pythonpath(tmp_path):
    site = tmp_path / "site"
    res = {"environment": {"status": "ok", "pythonpath": str(site), "origins": {
               "pyfvvdp": str(site / "pyfvvdp" / "__init__.py"), "submitit": "/usr/lib/python3/submitit/__init__.py"}},
           "scorer": {"status": "ok", "modes": [{"requested": "exact", "status": "ok"},
                                                {"requested": "fp16", "status": "failed", "reason": "X: y"}]},
           "crossscore": {"status": "skipped", "reason": "none"},
           "training": [{"run": "a", "status": "ok"}, {"run": "b", "status": "skipped", "reason": "time"}]}  # fmt: skip
    assert g.problems(res) == ["crossscore: skipped none", "scorer fp16: failed X: y", "training b: skipped time",
                               f"submitit came from /usr/lib/python3/submitit/__init__.py, not from PYTHONPATH "
                               f"({site.resolve()})"]  # fmt: skip
    res["environment"]["pythonpath"] = ""  # nothing travels: nothing to check the origins against
    assert len(g.problems(res)) == 3


def test_output_folder_flag_then_environment_then_benchmarks(monkeypatch, tmp_path):
    monkeypatch.delenv(g.OUT_ENV, raising=False)
    assert g.out_dir(g.GpuCheckConfig()) == ROOT / "benchmarks"
    monkeypatch.setenv(g.OUT_ENV, str(tmp_path / "env"))
    assert g.out_dir(g.GpuCheckConfig()) == tmp_path / "env"
    assert g.out_dir(g.GpuCheckConfig(out=str(tmp_path / "flag"))) == tmp_path / "flag"


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
    cfg = g.GpuCheckConfig(crossscore_frames=2, device="cpu")
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
    from models.crossscore.checkpoint import short_side_for

    demo = consts.CROSSSCORE_DEMO_MODEL
    assert demo.is_file(), f"{demo} is committed to the repository"
    monkeypatch.setattr(consts, "CROSSSCORE_TINY_DIR", Path("/nonexistent/crossscore-tiny"))
    r = g.check_crossscore(g.GpuCheckConfig(crossscore_frames=1, device="cpu"))
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
    monkeypatch.setattr(g, "EXAMPLES", names)
    monkeypatch.setattr(consts, "EXAMPLES_DIR", tmp_path)
    cfg = g.GpuCheckConfig(scorer_precisions="exact,fp16", scorer_repeats=1, scorer_batch_size=2, device="cpu")
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
    assert "| exact | Toy+A | 3 | – | – |" in md and "- fp16 ran as exact: precision='fp16': float16 is for CUDA" in md


def test_a_failing_part_is_recorded_not_raised():
    def boom(cfg):
        raise ValueError("no such thing\nsecond line")

    assert g._guard(boom, None) == {"status": "failed", "reason": "ValueError: second line"}


def test_make_targets_run_the_same_module_with_the_machines_python():
    text = (ROOT / "Makefile").read_text()
    recipe = "\tPYTHONPATH=$(CURDIR)/.gpu/site python3 -m benchmarks.gpu_check --reference .gpu/reference\n"
    assert "\ngpu-check:\n" + recipe in text  # no venv, no setup: the GPU machine's own python3
    assert "$(GPU_VENV)/bin/python -m benchmarks.gpu_check --preset rehearse --reference .gpu/reference" in text
    assert "env -i PATH=/usr/bin:/bin" in text  # the rehearsal: a clean environment, packages from .gpu/ only
    phony = " ".join(line for line in text.splitlines() if line.startswith(".PHONY:")).split()
    assert {"gpu-check", "gpu-prepare", "gpu-rehearse"} <= set(phony)
    assert Path(g.__file__).parent == ROOT / "benchmarks"


def test_merge_keeps_the_first_call_and_fills_in_later_runs(tmp_path, capsys):
    import json

    first = {"created": "t1", "config": {"runs": "a,b,c"}, "scorer": {"status": "ok", "modes": []},
             "training": [{"run": "a", "status": "ok", "pairs_per_s": 1.0}, {"run": "b", "status": "skipped"},
                          {"run": "c", "status": "failed", "reason": "timed out"}]}  # fmt: skip
    second = {"created": "t2", "config": {"runs": "b,c,a"}, "scorer": {"status": "ok", "reduced": True},
              "training": [{"run": "b", "status": "ok", "pairs_per_s": 2.0}, {"run": "c", "status": "skipped"},
                           {"run": "a", "status": "ok", "pairs_per_s": 9.0}, {"run": "d", "status": "ok"}]}  # fmt: skip
    res = g.merge_calls([first, second])
    assert res["scorer"] == first["scorer"] and [c["created"] for c in res["calls"]] == ["t1", "t2"]
    assert [(r["run"], r["status"], r.get("pairs_per_s"), r.get("call")) for r in res["training"]] == [
        ("a", "ok", 1.0, None), ("b", "ok", 2.0, "t2"), ("c", "failed", None, None), ("d", "ok", None, "t2")]
    for i, r in enumerate((first, second)):
        (tmp_path / str(i)).mkdir()
        (tmp_path / str(i) / "gpu.json").write_text(json.dumps(r))
    assert g.main(["--merge", str(tmp_path / "0"), str(tmp_path / "1" / "gpu.json"), "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "gpu.json").read_text())["training"][1]["call"] == "t2"
    assert "Call 2 (t2" in (tmp_path / "gpu.md").read_text()
    assert g.main(["--merge", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert "error: --merge: " in capsys.readouterr().err


def test_the_committed_gpu_results_hold_every_item_of_the_check():
    """benchmarks/gpu.json (the H200 run): scorer parity in exact, all four modes, CrossScore fp16, every training
    run ok with its peak memory, an NCCL process group, and the resume."""
    from models.results import read_json

    res = read_json(ROOT / "benchmarks" / "gpu.json")
    assert res["device"] == "cuda" and "H200" in res["gpu"] and res["environment"]["nvidia_smi"]
    sc = res["scorer"]
    assert sc["parity"] is True and [m["requested"] for m in sc["modes"]] == list(g.SCORER_PRECISIONS)
    assert res["crossscore"]["status"] == "ok"
    rows = {r["run"]: r for r in res["training"]}
    assert {r.label for r in gt.RUNS} <= set(rows) and all(r["status"] == "ok" for r in rows.values())
    assert all(rows[r.label]["peak_gpu_mib"] > 0 for r in gt.RUNS)
    assert rows["ddp-smoke-paper-amp"]["process_group"] == {"backend": "nccl", "world_size": 1}
    assert rows[f"{gt.RESUMED} stop + --resume"]["complete"]


def test_rehearsal_of_the_decode_and_fullref_parts(tmp_path, travelled, capsys):
    """The rehearsal's code paths of the two parts alone (--parts), strict: decoding rows and the scorer's target;
    the full-reference values of the CPU against themselves, stand-in backbones as on the GPU machine."""
    import json

    args = ["--preset", "rehearse", "--parts", "fullref,decode", "--decode-kinds", "prefetch,threads",
            "--fullref-presets", "nerfbaselines", "--out", str(tmp_path)]  # fmt: skip
    assert g.main(args) == 0, capsys.readouterr().err
    res = json.loads((tmp_path / "gpu.json").read_text())
    assert list(res["part_seconds"]) == ["decode", "fullref"]  # the check's order, not the flag's
    assert not {"environment", "scorer", "crossscore", "training"} & set(res) and res["fed"] is None
    dec = res["decode"]
    assert dec["status"] == "ok" and dec["batch_size"] == 2 and dec["frames"] == 8
    assert [(r["kind"], r["workers"]) for r in dec["rows"]] == [("prefetch", 1), ("threads", 1), ("threads", 2)]
    assert dec["ceiling_fps"] > 0 and dec["target_fps"] == min(g.SCORER_GOAL_FPS, dec["ceiling_fps"])
    fr = res["fullref"]
    assert fr["status"] == "ok" and fr["size"] == [176, 176] and fr["weights"]["vgg16.pth"] == "stand-in"
    (nb,) = fr["presets"]
    assert nb["preset"] == "nerfbaselines" and nb["pass"] and set(nb["tf32_off"]["max_abs_diff"].values()) == {0.0}
    md = (tmp_path / "gpu.md").read_text()
    assert "## Decoding the frames" in md and "## Full-reference metrics: device against CPU" in md
    assert "**Pass** (TF32 off" in md and "## Scorer" not in md and "## Training" not in md
    assert md.index("## Decoding") < md.index("## Full-reference")


def _decode_part(ceiling: float) -> dict:
    row = {"kind": "processes", "workers": 16, "rounds": 3, "median_fps": ceiling, "min_fps": ceiling - 10,
           "max_fps": ceiling + 10, "parent_cpu_ms_per_frame": 0.3, "worker_cpu_ms_per_frame": 4.0}  # fmt: skip
    return {"status": "ok", "cpu": "Xeon", "cpu_id": "family 6, model 143", "cores": 16, "frames": 240,
            "size": [960, 768], "example": "/x/Giraffe+NeRF", "batch_size": 16, "rounds": 3, "opencv": "5.0.0",
            "jpeg": "libjpeg-turbo", "rows": [row], "ceiling_fps": ceiling, "ceiling": "processes × 16",
            "goal_fps": g.SCORER_GOAL_FPS, "target_fps": min(g.SCORER_GOAL_FPS, ceiling)}  # fmt: skip


def test_the_scorer_is_held_to_the_lower_of_the_goal_and_the_decoding_ceiling():
    modes = [{"requested": "exact", "ran": "exact", "status": "ok", "frames_per_s": 1400.0, "ms_per_frame": 0.7,
              "examples": []},
             {"requested": "fp16", "ran": "fp16", "status": "ok", "frames_per_s": 1600.0, "ms_per_frame": 0.6,
              "examples": []},
             {"requested": "bf16", "status": "failed", "reason": "X: y"}]  # fmt: skip
    res = {"decode": _decode_part(2400.0), "scorer": {"status": "ok", "batch_size": 16, "modes": modes}}
    fed = g.fed_at_rate(res)
    assert fed["target_fps"] == 1500.0 and fed["met"] == {"exact": False, "fp16": True}
    md = g.report_md(res)
    assert "From the JPEG files, end to end, against this run's target of 1500 frames/s (the lower of 1500 and the " \
           "decoding ceiling 2400): exact 1400.0 (**not met**), fp16 1600.0 (met)." in md  # fmt: skip
    assert "Ceiling: **2400 frames/s** (processes × 16). The scorer's target in this run: the lower of 1500 " \
           "frames/s and the ceiling, **1500 frames/s**." in md  # fmt: skip
    assert "| processes | 16 | 2400 | 2390–2410 |" in md
    res["decode"] = _decode_part(900.0)  # a CPU slower than the goal: the ceiling is the target
    assert g.fed_at_rate(res)["met"] == {"exact": True, "fp16": True}
    res["decode"]["call"] = "t2"  # measured in another call: not compared
    assert g.fed_at_rate(res) is None and "From the JPEG files" not in g.report_md(res)
    res["decode"] = {"status": "failed", "reason": "RuntimeError: boom"}
    assert g.fed_at_rate(res) is None and "failed: RuntimeError: boom" in g.report_md(res)


def test_parts_flag_picks_parts_in_the_checks_order(capsys):
    assert g.parse_parts("training, decode,environment") == ["environment", "decode", "training"]
    assert g.parse_parts(g.GpuCheckConfig().parts) == list(g.PARTS)
    with pytest.raises(InputError, match=r"^--parts decode,gpu: 'gpu' is not a part; choose from environment, "):
        g.parse_parts("decode,gpu")
    for flag, value, err in (("--parts", "", "error: --parts : '' is not a part"),
                             ("--decode-kinds", "threads,x", "error: --decode-kinds threads,x: 'x' is not one of"),
                             ("--decode-workers", "2,a", "error: --decode-workers 2,a: give whole numbers"),
                             ("--fullref-presets", "nope", "error: --fullref-presets nope: 'nope' is not a preset")):
        assert g.main([flag, value, "--out", "/nonexistent/x"]) == 2
        assert capsys.readouterr().err.startswith(err)


def test_strict_and_merge_know_the_new_parts():
    fr = {"status": "ok", "tolerance": 1e-5, "presets": [
        {"preset": "3dgs", "status": "ok", "pass": False, "tf32_off": {"max_abs_diff": {"lpips": 2e-5}}}]}
    res = {"decode": {"status": "failed", "reason": "X: y"}, "fullref": fr}
    assert g.problems(res) == ["decode: failed X: y", "fullref 3dgs: over 1e-05 with TF32 off: {'lpips': 2e-05}"]
    assert g.problems({"scorer": {"status": "ok", "modes": []}}) == []  # a part not asked for is not a problem
    first = {"created": "t1", "decode": {"status": "skipped", "reason": "time"}, "training": []}
    later = {"created": "t2", "decode": _decode_part(2000.0), "fullref": {"status": "ok", "presets": []}}
    merged = g.merge_calls([first, later])
    assert merged["decode"]["call"] == "t2" and merged["decode"]["ceiling_fps"] == 2000.0
    assert merged["fullref"] == {"status": "ok", "presets": [], "call": "t2"}
    assert g.merge_calls([later, first])["decode"] == later["decode"]  # an earlier ok part stands
