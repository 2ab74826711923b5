"""The training part of the GPU check (benchmarks/gpu_check.py): ``train.py`` runs in child processes, each a few
steps, and what they show — pairs/s, the share of a step spent waiting for data, peak GPU memory, the DDP backend,
and whether a stopped run resumes where it stopped.

Each run is ``python -m benchmarks.gpu_train RECORD -- <train.py flags>`` (under ``torch.distributed.run`` for
the DDP run): train.py in that process, with two observers added — the wall-clock time at which each step was logged
(after its loss was read back, so the GPU had finished it) and the process group's backend and size — written with
the peak GPU memory to ``RECORD.rank<RANK>.json`` when it ends.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # `python benchmarks/gpu_train.py`
    sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class TrainRun:
    """One measured train.py run: its label, size preset, recipe, precision, and how it is launched."""

    label: str
    preset: str  # "full" (full-size pairs) | "cpu-smoke" (small crops and segments)
    recipe: str  # "upstream" (the authors' code: fp32 only) | "paper" (AMP allowed)
    amp: bool
    torchrun: bool = False  # under torch.distributed.run: the process group (NCCL on CUDA) and DDP, one per GPU


# In the order they run when time is short: what `python train.py` does by default, then AMP, then DDP, then the rest.
RUNS = (
    TrainRun("full-upstream-fp32", "full", "upstream", False),
    TrainRun("full-paper-amp", "full", "paper", True),
    TrainRun("ddp-smoke-paper-amp", "cpu-smoke", "paper", True, torchrun=True),
    TrainRun("smoke-upstream-fp32", "cpu-smoke", "upstream", False),
    TrainRun("full-paper-fp32", "full", "paper", False),
    TrainRun("smoke-paper-fp32", "cpu-smoke", "paper", False),
    TrainRun("smoke-paper-amp", "cpu-smoke", "paper", True),
)
SHM_TROUBLE = re.compile(r"shared memory|/dev/shm|shm_open|Bus error|unable to (?:open|write to) (?:shared|file)", re.I)
RESUMED = "smoke-upstream-fp32"  # the run that is also stopped halfway and resumed (compared step by step)


def train_args(run: TrainRun, renders: str, runs_dir: str, name: str, steps: int, batch_size: int, workers: int,
               device: str, crop: int = 0) -> list[str]:  # fmt: skip
    """train.py flags of one measured run: ``steps`` steps inside one epoch (no validation), fresh weights.
    ``crop`` > 0: every crop ``crop`` px square and every segment 2 frames (the rehearsal: the run's code, small);
    0: the run's preset's own sizes."""
    repeats = batch_size * (steps + 1)  # the examples are one scene: one epoch must hold every step
    sizes = ["--crop-min", str(crop), "--crop-max", str(crop), "--segment-pixels", str(crop * crop * 2)] if crop else []
    return ["--preset", run.preset, "--recipe", run.recipe, "--renders", renders, "--runs-dir", runs_dir,
            "--name", name, "--device", device, "--amp" if run.amp else "--no-amp", "--batch-size", str(batch_size),
            "--scene-repeats", str(repeats), "--epochs", "1", "--val-pairs", "0", "--workers", str(workers),
            "--stop-after-steps", str(steps), *sizes]  # fmt: skip


def summarize_steps(rows: list[dict[str, Any]], stamps: list[float] | None = None, warmup: int = 1) -> dict[str, Any]:
    """pairs/s and the data-wait share from train.py's metrics.jsonl rows (``warmup`` steps left out).

    ``stamps``: wall-clock times at which each step was logged; they give pairs/s over wall time as well."""
    steps = [r for r in rows if r.get("kind") == "step"]
    kept = steps[warmup:]
    if not kept:
        raise RuntimeError(f"metrics.jsonl has {len(steps)} step row(s), fewer than {warmup + 1}")
    step_s = [r["data_s"] + r.get("targets_s", 0.0) + r["forward_s"] + r["backward_s"] for r in kept]
    pairs = sum(r["pairs"] for r in kept)
    out = {"measured_steps": len(kept), "pairs": pairs, "pairs_per_s": pairs / sum(step_s),
           "step_s": sum(step_s) / len(kept), "data_wait_fraction": sum(r["data_s"] for r in kept) / sum(step_s),
           "targets_fraction": sum(r.get("targets_s", 0.0) for r in kept) / sum(step_s)}  # fmt: skip
    if warmup >= 1 and stamps and len(stamps) == len(steps) and stamps[-1] > stamps[warmup - 1]:
        out["pairs_per_s_wall"] = pairs / (stamps[-1] - stamps[warmup - 1])  # end of warm-up -> end of the last
    return out


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of a run's metrics.jsonl."""
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]


def compare_resume(whole: list[dict[str, Any]], resumed: list[dict[str, Any]], stopped_at: int) -> dict[str, Any]:
    """A run stopped after ``stopped_at`` steps and resumed, against the same run without the stop: the steps after
    the stop must all be there, numbered on; their losses are compared (bit-identical on CPU; CUDA kernels are not
    deterministic, so the difference is reported beside the one of the steps before the stop, where the two runs
    did the same thing: that is the run-to-run noise it is to be read against)."""
    a = {r["step"]: r["loss"] for r in whole if r.get("kind") == "step"}
    b = {r["step"]: r["loss"] for r in resumed if r.get("kind") == "step"}
    after = sorted(s for s in b if s > stopped_at)
    expected = sorted(s for s in a if s > stopped_at)
    diffs = [abs(a[s] - b[s]) for s in after if s in a]
    before = [abs(a[s] - b[s]) for s in b if s <= stopped_at and s in a]  # the same steps, no resume between
    return {"stopped_at_step": stopped_at, "steps_after_resume": after, "complete": after == expected and bool(after),
            "max_abs_loss_diff_vs_uninterrupted": max(diffs) if diffs else None,
            "max_abs_loss_diff_before_stop": max(before) if before else None,
            "loss_before_stop_identical": all(a.get(s) == b[s] for s in b if s <= stopped_at)}  # fmt: skip


def launch(args: list[str], record: Path, gpus: int, torchrun: bool, timeout: float) -> subprocess.CompletedProcess:
    """One train.py process (or ``gpus`` under torch.distributed.run) with the observers of this module."""
    child = ["-m", "benchmarks.gpu_train", str(record), "--", *args]
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}"] if torchrun else []
    cmd = [sys.executable, *launcher, *child]
    # its own process group: a timeout ends torchrun's workers and the DataLoader's too, not only the first process
    with subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                          text=True, start_new_session=True) as proc:  # fmt: skip
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def failure(proc: subprocess.CompletedProcess) -> str:
    """The end of a failed child's output, for the report."""
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return f"exit {proc.returncode}: {' | '.join(tail)}"[:600]


def measure(run: TrainRun, renders: str, tmp: Path, steps: int, batch_size: int, workers: int, device: str,
            gpus: int, timeout: float, crop: int = 0) -> dict[str, Any]:  # fmt: skip
    """One measured run: its numbers, or why not (``crop``: :func:`train_args`)."""
    row: dict[str, Any] = {"run": run.label, "preset": run.preset, "recipe": run.recipe, "amp": run.amp,
                           "gpus": gpus if run.torchrun else 1, "batch_size": batch_size,
                           **({"crop": crop} if crop else {})}  # fmt: skip
    record = tmp / f"{run.label}.child"
    args = train_args(run, renders, str(tmp / "runs"), run.label, steps, batch_size, workers, device, crop)
    t0 = time.perf_counter()
    try:
        proc = launch(args, record, gpus, run.torchrun, timeout)
        if proc.returncode != 0 and workers and SHM_TROUBLE.search(proc.stderr or ""):
            # DataLoader workers pass pairs through /dev/shm, which a VM may keep small: once more without workers
            row.update(workers=0, retried_because=failure(proc))
            args[args.index("--workers") + 1] = "0"
            proc = launch(args, record, gpus, run.torchrun, timeout - (time.perf_counter() - t0))
    except subprocess.TimeoutExpired:
        return {**row, "status": "failed", "reason": f"timed out after {timeout:.0f} s"}
    row["wall_s_incl_startup"] = time.perf_counter() - t0
    if proc.returncode != 0:
        return {**row, "status": "failed", "reason": failure(proc)}
    rank0 = json.loads(Path(f"{record}.rank0.json").read_text())
    row.update(summarize_steps(read_metrics(tmp / "runs" / run.label), rank0.get("step_stamps")))
    row["peak_gpu_mib"] = rank0["peak_bytes"] / 2**20 if device == "cuda" else None
    if run.torchrun:
        row["process_group"] = rank0.get("process_group")
    return {**row, "status": "ok"}


def measure_resume(run: TrainRun, renders: str, tmp: Path, steps: int, batch_size: int, workers: int, device: str,
                   timeout: float, crop: int = 0) -> dict[str, Any]:  # fmt: skip
    """``run`` stopped after ``steps // 2`` steps and resumed to ``steps``, against its uninterrupted run (which
    :func:`measure` made in ``tmp`` before, with the same ``crop``)."""
    half, name = max(1, steps // 2), f"{run.label}-resumed"
    row: dict[str, Any] = {"run": f"{run.label} stop + --resume", "preset": run.preset, "recipe": run.recipe}
    first = train_args(run, renders, str(tmp / "runs"), name, steps, batch_size, workers, device, crop)
    first[first.index("--stop-after-steps") + 1] = str(half)
    again = ["--resume", str(tmp / "runs" / name), "--workers", str(workers), "--device", device,
             "--stop-after-steps", str(steps)]  # fmt: skip
    for i, args in enumerate((first, again)):
        try:
            proc = launch(args, tmp / f"{name}.{i}.child", 1, False, timeout)
        except subprocess.TimeoutExpired:
            return {**row, "status": "failed", "reason": f"timed out after {timeout:.0f} s"}
        if proc.returncode != 0:
            return {**row, "status": "failed", "reason": failure(proc)}
    cmp = compare_resume(read_metrics(tmp / "runs" / run.label), read_metrics(tmp / "runs" / name), half)
    return {**row, **cmp, "status": "ok" if cmp["complete"] else "failed",
            **({} if cmp["complete"] else {"reason": f"steps after the resume: {cmp['steps_after_resume']}"})}


# --------------------------------------------------------------------------------------------- the child
def child(record: str, args: list[str]) -> int:
    """Run train.py with ``args`` in this process; write its peak GPU memory, the wall time of each logged step and
    the process group (backend, size) to ``<record>.rank<RANK>.json``."""
    import runpy

    import torch
    import torch.distributed as tdist

    from models.training import run_folder

    stamps: list[float] = []
    group: dict[str, Any] = {}
    add, init = run_folder.MetricsLog.add, tdist.init_process_group

    def timed_add(self: Any, row: dict[str, Any]) -> Any:
        if row.get("kind") == "step":
            stamps.append(time.perf_counter())
        return add(self, row)

    def seen_init(*a: Any, **kw: Any) -> Any:
        out = init(*a, **kw)
        group.update(backend=str(tdist.get_backend()), world_size=tdist.get_world_size())
        return out

    run_folder.MetricsLog.add, tdist.init_process_group = timed_add, seen_init
    sys.argv = [str(ROOT / "train.py"), *args]
    code: int = 0
    try:
        runpy.run_path(str(ROOT / "train.py"), run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        local = int(os.environ.get("LOCAL_RANK", 0))
        peak = torch.cuda.max_memory_allocated(local) if torch.cuda.is_available() else 0
        Path(f"{record}.rank{os.environ.get('RANK', '0')}.json").write_text(
            json.dumps({"peak_bytes": peak, "step_stamps": stamps, "process_group": group or None}))
    return code


if __name__ == "__main__":
    argv = sys.argv[1:]
    sys.exit(child(argv[0], argv[2:] if argv[1:2] == ["--"] else argv[1:]))
