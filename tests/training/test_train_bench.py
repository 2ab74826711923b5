"""benchmarks/train_bench.py (make bench-train): the step summary, the per-target timings and the report, on
made-up metrics rows and tiny renders (no training run)."""

from __future__ import annotations

import pytest

from benchmarks import train_bench
from models.fullref.fvvdp import FovVideoVDP, fvvdp_available
from models.training.pairs import PairConfig, PairDataset, scan_renders
from tests.training.test_training import TINY_PAIRS, make_renders


def _row(step: int, data_s: float) -> dict:
    return {"kind": "step", "step": step, "pairs": 4, "data_s": data_s, "targets_s": 1.0, "forward_s": 2.0,
            "backward_s": 1.0, "worker_s": {"load": 2.0, "load_cpu": 1.0}}


def test_summarise_steps_leaves_the_warm_up_step_out():
    rows = [_row(1, 100.0), _row(2, 0.0), {"kind": "val", "step": 2}, _row(3, 4.0)]
    s = train_bench.summarise_steps(rows)
    assert s["measured_steps"] == 2 and s["step_s"] == pytest.approx((4.0 + 8.0) / 2)
    assert s["pairs_per_s"] == pytest.approx(8 / 12) and s["data_wait_fraction"] == pytest.approx(4 / 12)
    assert s["data_cpu_s_per_pair"] == pytest.approx(0.25) and s["data_wall_s_per_pair"] == pytest.approx(0.5)
    assert s["worker_s_per_pair"] == {"load": pytest.approx(0.5), "load_cpu": pytest.approx(0.25)}


@pytest.mark.skipif(not fvvdp_available(), reason="pyfvvdp not installed")
def test_timed_pair_times_the_load_and_every_target(tmp_path):
    scenes = scan_renders(make_renders(tmp_path, {"s": 2}))
    item = train_bench.timed_pair(PairDataset(scenes, PairConfig(**TINY_PAIRS), seed=0, per_epoch=1), 0,
                                  FovVideoVDP())
    assert list(item["timings"]) == ["load", "load_cpu", "ssim", "psnr", "strred", "fvvdp"]
    assert all(v >= 0 for v in item["timings"].values())


def test_markdown_report():
    training = {"preset": "cpu-smoke", "batch_size": 4, **train_bench.summarise_steps([_row(1, 0.0), _row(2, 1.0)])}
    res = {"cpu": "CPU", "cores": 2, "device": "cpu", "loadavg_start": [1.0], "loadavg_end": [2.0],
           "training": [training],
           "targets": [{"preset": "cpu-smoke", "frames_per_sequence": 6.0, "pixels_per_sequence": 8000.0,
                        "seconds_per_pair": {"load": 0.5, "ssim": 0.02}}],
           "strred": {"pairs": 6, "clip_shape": [4, 128, 160], "skvideo_version": "1.1.11", "skvideo_s_per_pair": 0.12,
                      "ours_s_per_pair_batched": 0.006, "speedup_batched": 20.0, "ours_s_per_pair_one_by_one": 0.007,
                      "speedup_one_by_one": 17.0}}  # fmt: skip
    md = train_bench.to_markdown(res)
    assert md.startswith("# Training benchmark (CPU, 2 cores, cpu)") and "| cpu-smoke |" in md
    assert "ours 6.00 ms/pair batched (20x)" in md


def test_flags(capsys):
    with pytest.raises(SystemExit) as e:
        train_bench.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert all(f in out for f in ("--renders", "--smoke-steps", "--full-steps", "--skip-full", "--out"))
