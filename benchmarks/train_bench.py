"""``make bench-train``: training throughput and the split of a step's time, per preset, on this machine.

    python -m benchmarks.train_bench [--renders renders] [--smoke-steps 9] [--full-steps 3] [--skip-full]

Measures (results -> benchmarks/train-cpu.json and .md):

- for the cpu-smoke and full presets: pairs per second and the mean split of a step (waiting for data, the five
  targets of the batch on the training device, forward incl. loss, backward + optimizer) and the data CPU-seconds
  per pair spent in the workers (read, crop, flip, noise) from train.py's own metrics.jsonl, warm-up step
  excluded; the full preset runs with a batch of 2 pairs (its 16 is a GPU batch; the per-pair costs are the same);
- per pair, in one process: decoding + cropping + noise ("load") and each target (SSIM, PSNR, ST-RRED,
  FovVideoVDP) one pair at a time (:func:`models.training.targets.pair_targets`, which times each target) at
  each preset's pair size;
- our ST-RRED against scikit-video's on the calibration clips (skvideo's time recorded by
  tests/training/calibration/make_strred_reference.py on this machine).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from consts import ROOT
from models import cli
from models.cli import opt
from models.fullref.fvvdp import FovVideoVDP
from models.results import stamp, table, write_report
from models.runtime import cpu_name
from models.training.config import make_config
from models.training.loop import train
from models.training.pairs import PairDataset, scan_renders
from models.training.strred import strred
from models.training.targets import pair_targets

log = logging.getLogger(__name__)
OUT = ROOT / "benchmarks"
CALIB = ROOT / "tests" / "training" / "calibration"


def bench_training(preset: str, renders: str, steps: int, **over) -> dict:
    """Run ``steps`` steps of a preset (2 workers, no validation) and summarise its metrics.jsonl."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = make_config(preset, renders=renders, runs_dir=tmp, name="bench", val_pairs=0, workers=2,
                          stop_after_steps=steps, epochs=1000, **over)
        t0 = time.perf_counter()
        run = train(cfg)
        wall = time.perf_counter() - t0
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return {"preset": preset, "batch_size": cfg.batch_size, "workers": cfg.workers, **summarise_steps(rows),
            "wall_s_incl_startup": wall, "pairs": cfg.pairs.__dict__}


def summarise_steps(rows: list[dict]) -> dict:
    """Throughput and the mean split of a step from metrics.jsonl rows, the first step left out (it warms oneDNN
    up)."""
    steps_rows = [r for r in rows if r["kind"] == "step"][1:]
    step_s = [r["data_s"] + r.get("targets_s", 0.0) + r["forward_s"] + r["backward_s"] for r in steps_rows]
    pairs = sum(r["pairs"] for r in steps_rows)
    mean = lambda k: float(np.mean([r[k] for r in steps_rows]))  # noqa: E731
    return {
        "measured_steps": len(steps_rows),
        "pairs_per_s": pairs / sum(step_s), "step_s": float(np.mean(step_s)), "data_wait_s": mean("data_s"),
        "targets_s": mean("targets_s"), "forward_s": mean("forward_s"), "backward_s": mean("backward_s"),
        "data_cpu_s_per_pair": float(np.sum([r["worker_s"]["load_cpu"] for r in steps_rows]) / pairs),
        "data_wall_s_per_pair": float(np.sum([r["worker_s"]["load"] for r in steps_rows]) / pairs),
        "data_wait_fraction": float(np.sum([r["data_s"] for r in steps_rows]) / np.sum(step_s)),
        "worker_s_per_pair": {k: float(np.sum([r["worker_s"][k] for r in steps_rows]) / pairs)
                              for k in steps_rows[0]["worker_s"]},
    }  # fmt: skip


def timed_pair(ds: PairDataset, g: int, fvvdp: FovVideoVDP) -> dict:
    """Pair ``g`` of ``ds`` with its timings: the worker's ("load", "load_cpu") and each target's CPU seconds."""
    item = ds[g]
    pair_targets(item["seq1"], item["seq2"], item["spec"].ratio, fvvdp=fvvdp, timings=item["timings"],
                 recipe=ds.recipe)
    return item


def bench_targets(preset: str, renders: str, n: int) -> dict:
    """Seconds per pair for loading and each target at a preset's pair size (one process, one thread)."""
    cfg = make_config(preset, renders=renders)
    ds = PairDataset(scan_renders(renders), cfg.pairs, seed=123, per_epoch=n, recipe=cfg.recipe)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fvvdp = FovVideoVDP()
        timed_pair(ds, 0, fvvdp)  # warm-up (FovVideoVDP tables, oneDNN)
        items = [timed_pair(ds, i, fvvdp) for i in range(n)]
    finally:
        torch.set_num_threads(threads)
    keys = items[0]["timings"].keys()
    return {
        "preset": preset, "pairs": n,
        "frames_per_sequence": float(np.mean([it["seq1"].shape[0] for it in items])),
        "pixels_per_sequence": float(np.mean([np.prod(it["seq1"].shape) / 3 for it in items])),
        "seconds_per_pair": {k: float(np.mean([it["timings"][k] for it in items])) for k in keys},
    }


def bench_strred() -> dict:
    """Our batched ST-RRED vs skvideo's (recorded) on the calibration clips, best of 5, one thread."""
    ref = json.loads((CALIB / "strred_reference.json").read_text())
    clips = np.load(CALIB / "strred_clips.npz")
    names = list(ref["pairs"])
    a = torch.stack([torch.from_numpy(clips[f"{k}__ref"]) for k in names]).double()
    b = torch.stack([torch.from_numpy(clips[f"{k}__dis"]) for k in names]).double()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        strred(a, b)
        best_batched = min(_time(lambda: strred(a, b)) for _ in range(5)) / len(names)
        best_single = min(_time(lambda: [strred(a[i], b[i]) for i in range(len(names))]) for _ in range(5)) / len(names)
    finally:
        torch.set_num_threads(threads)
    sk = float(np.mean([ref["pairs"][k]["seconds"] for k in names]))
    return {"clip_shape": ref["clip_shape"], "pairs": len(names), "skvideo_s_per_pair": sk,
            "ours_s_per_pair_batched": best_batched, "ours_s_per_pair_one_by_one": best_single,
            "speedup_batched": sk / best_batched, "speedup_one_by_one": sk / best_single,
            "skvideo_version": ref["scikit_video"]}


def _time(fn) -> float:  # noqa: ANN001
    """Wall seconds of ``fn()``."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def to_markdown(res: dict) -> str:
    """benchmarks/train-cpu.md from the results dict."""
    lines = [f"# Training benchmark ({res['cpu']}, {res['cores']} cores, {res['device']})", "",
             f"Load average during the run (shared machine): {res['loadavg_start']} -> {res['loadavg_end']}.", "",
             "## Training steps (train.py's metrics.jsonl, warm-up step excluded)", ""]
    rows = [{"preset": r["preset"], "batch": r["batch_size"], "pairs/s": r["pairs_per_s"], "step s": r["step_s"],
             "data wait s": r["data_wait_s"], "targets s": r["targets_s"], "forward s": r["forward_s"],
             "backward s": r["backward_s"], "data CPU s/pair": r["data_cpu_s_per_pair"],
             "data wall s/pair": r["data_wall_s_per_pair"],
             "wait fraction": r["data_wait_fraction"]} for r in res["training"]]
    lines += [table(rows, list(rows[0]), fmt="github", floatfmt=".3f"), ""]
    lines += ["## Per pair, one process, one thread (CPU seconds; the targets one pair at a time, as pair_targets; "
              "load = wall seconds)", ""]
    trow = [{"preset": r["preset"], "frames": r["frames_per_sequence"], "pixels/seq": r["pixels_per_sequence"],
             **r["seconds_per_pair"]} for r in res["targets"]]
    lines += [table(trow, list(trow[0]), fmt="github", floatfmt=".3f"), ""]
    s = res["strred"]
    lines += ["## ST-RRED: ours vs scikit-video", "",
              f"{s['pairs']} clip pairs of {s['clip_shape']} (T, H, W): scikit-video {s['skvideo_version']} "
              f"{s['skvideo_s_per_pair'] * 1000:.1f} ms/pair; ours {s['ours_s_per_pair_batched'] * 1000:.2f} ms/pair "
              f"batched ({s['speedup_batched']:.0f}x), {s['ours_s_per_pair_one_by_one'] * 1000:.2f} ms/pair one by "
              f"one ({s['speedup_one_by_one']:.0f}x).", ""]
    return "\n".join(lines)


@dataclass
class BenchConfig:
    """Flags of ``python -m benchmarks.train_bench`` (make bench-train)."""

    renders: str = opt("renders", "renders/ folder (make demo-renders lays out the examples)")
    smoke_steps: int = opt(9, "steps of the cpu-smoke preset (the first is warm-up)", min=2)
    full_steps: int = opt(3, "steps of the full preset, batch 2 (the first is warm-up)", min=2)
    skip_full: bool = opt(False, "smoke preset only")
    out: str = opt(str(OUT), "output folder")


def run(a: BenchConfig) -> int:
    """Measure, write benchmarks/train-cpu.{json,md}, print the markdown; InputError -> exit 2 (cli.main)."""
    res: dict = {"cpu": cpu_name(), "cores": os.cpu_count(), "device": "cpu (no GPU lent)",
                 "loadavg_start": [round(x, 2) for x in os.getloadavg()], "torch_threads": torch.get_num_threads()}
    res["strred"] = bench_strred()
    res["targets"] = [bench_targets("cpu-smoke", a.renders, 6)]
    res["training"] = [bench_training("cpu-smoke", a.renders, a.smoke_steps)]
    if not a.skip_full:
        res["targets"].append(bench_targets("full", a.renders, 3))
        res["training"].append(bench_training("full", a.renders, a.full_steps, batch_size=2, scene_repeats=2))
    res["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    write_report(Path(a.out), "train-cpu", stamp(**res), to_markdown(res))
    return 0


main = cli.script(BenchConfig, run, "Training throughput benchmark -> benchmarks/train-cpu.{json,md}")


if __name__ == "__main__":
    sys.exit(main())
