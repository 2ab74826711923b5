"""preprocess.py past one process: SLURM array jobs, one job per GPU on a workstation, and ``--status``.

The job runner (:mod:`models.preprocess.jobs`) stays the one source of truth: a task runs one planned
:class:`~models.preprocess.jobs.Job` through :func:`~models.preprocess.jobs.run_job`, so the done-marker, the
log and the cleaning of an unfinished attempt are the same as in a local run, and a resubmitted or requeued task
skips a finished job and redoes an unfinished one exactly as a local rerun does. ``--status`` reads the same
markers and logs (plus ``squeue`` for tasks still queued).

On SLURM the jobs are grouped into one array per method, so each array gets the method's time limit (the
declared GPU cost x :data:`TIME_MARGIN` + :data:`TIME_PAD_MIN`), and the arrays are submitted longest first.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import subprocess
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from models import cluster
from models.preprocess.commands import COMMAND_ENV, Layout
from models.preprocess.config import PreprocessConfig
from models.preprocess.jobs import ALREADY, FAILED, Job, JobResult, exclusive, run_job
from models.results import atomic_write_json, table

log = logging.getLogger("preprocess")
TIME_MARGIN, TIME_PAD_MIN = 2.0, 15  # sbatch --time = declared GPU minutes x 2 + 15 min (start-up, render, mp4)
RUNNING_ELSEWHERE = "running elsewhere"
SUBMITTED = "submitted.json"  # renders/.cluster/: which SLURM task runs which job (for --status)


def cluster_dir(cfg: PreprocessConfig, layout: Layout) -> Path:
    return Path(cfg.slurm.cluster_dir) if cfg.slurm.cluster_dir else layout.renders / ".cluster"


def arrays(jobs: Sequence[Job]) -> list[tuple[str, list[Job]]]:
    """The render jobs grouped by method, longest method first (ties: plan order)."""
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        groups.setdefault(job.info["method"], []).append(job)
    return sorted(groups.items(), key=lambda kv: -kv[1][0].info["gpu_minutes"])


def resources(method: str, jobs: Sequence[Job], gpus: int, opts: cluster.SlurmOptions | None = None
              ) -> cluster.Resources:
    """One array task per job of ``method``: ``gpus`` GPUs each, the method's time limit (or ``--time-min``)."""
    minutes = (opts.time_min if opts else 0) or cluster.time_limit(jobs[0].info["gpu_minutes"], TIME_MARGIN,
                                                                    TIME_PAD_MIN)  # fmt: skip
    return cluster.Resources(f"preprocess-{method}", minutes, gpus_per_node=gpus, array=len(jobs),
                             cpus_per_task=(opts.cpus_per_task or None) if opts else None)


def show_submission(cfg: PreprocessConfig, todo: Sequence[Job]) -> None:
    """``--executor slurm --dry-run``: every array task with its sbatch settings."""
    print(f"\nSLURM submission ({len(todo)} array tasks, longest method first; nothing submitted):")
    for method, group in arrays(todo):
        settings = " ".join(cluster.sbatch_settings(cfg.slurm, resources(method, group, cfg.gpus_per_job, cfg.slurm)))
        for i, job in enumerate(group):
            print(f"  {job.name}: array preprocess-{method}[{i}]  sbatch {settings}")


@contextmanager
def job_lock(job: Job) -> Iterator[bool]:
    """Hold the job's own lock (beside its log) while it runs; yields False when another task holds it."""
    path = job.log.parent / f".{job.name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def run_task(job: Job, context: dict[str, Any], ns_bin: str | None, force: bool,
             gpu: int | None = None) -> dict[str, Any]:
    """One job, in an array task or a worker thread: skipped when finished (unless ``force``), else cleaned and
    run by the job runner. Returns the summary row. The commands get the task's environment (its GPUs), with
    ``ns_bin`` first on PATH and :data:`COMMAND_ENV`. An array task (``gpu`` None) also shares the renders
    folder's lock, so a local run on the same folder cannot start meanwhile (and the reverse)."""
    if gpu is None:
        with exclusive(job.log.parent.parent, "preprocess.py", shared=True):
            return _run_task(job, context, ns_bin, force, None)
    return _run_task(job, context, ns_bin, force, gpu)


def _run_task(job: Job, context: dict[str, Any], ns_bin: str | None, force: bool, gpu: int | None
              ) -> dict[str, Any]:
    env = {**os.environ, **COMMAND_ENV}
    if ns_bin:
        env["PATH"] = os.pathsep.join([ns_bin, env.get("PATH", "")])
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    with job_lock(job) as mine:
        if not mine:
            return JobResult(job.name, RUNNING_ELSEWHERE, note="another task holds its lock").row()
        if not force and (marker := job.done()) is not None:
            return JobResult(job.name, ALREADY, {k: float(v) for k, v in marker.get("durations", {}).items()},
                             marker.get("frames"), "finished earlier").row()
        return run_job(job, context, env).row()


def run_on_gpus(cfg: PreprocessConfig, jobs: Sequence[Job], context: dict[str, Any], gpus: Sequence[int]
                ) -> list[dict[str, Any]]:
    """``--executor local --gpus 0,1,…``: one job per GPU at a time, longest first; rows in plan order."""
    from queue import Queue

    free: Queue[int] = Queue()
    for g in gpus:
        free.put(g)
    order = [j for _, group in arrays([j for j in jobs if "method" in j.info]) for j in group]
    order += [j for j in jobs if "method" not in j.info]

    def one(job: Job) -> dict[str, Any]:
        gpu = free.get()
        try:
            log.info("%s: running on GPU %d (log: %s)", job.name, gpu, job.log)
            return run_task(job, context, cfg.ns_bin, cfg.force, gpu)
        finally:
            free.put(gpu)

    with ThreadPoolExecutor(len(gpus)) as pool:
        rows = dict(zip([j.name for j in order], pool.map(one, order), strict=True))
    return [rows[j.name] for j in jobs]


def submit(cfg: PreprocessConfig, jobs: Sequence[Job], context: dict[str, Any], layout: Layout
           ) -> list[dict[str, Any]] | None:
    """``--executor slurm``: one array per method (longest first) of the jobs not finished yet. Records which
    task runs which job; with ``--wait`` waits and returns the rows, else None."""
    todo = [j for j in jobs if not j.skip and (cfg.force or j.done() is None)]
    folder = cluster_dir(cfg, layout)
    if not todo:
        print("nothing to submit: every job is finished (--force redoes them)")
        return [] if cfg.wait else None
    submitted: dict[str, str] = {}
    all_jobs: list[tuple[Job, Any]] = []
    for method, group in arrays(todo):
        res = resources(method, group, cfg.gpus_per_job, cfg.slurm)
        n = len(group)
        tasks = cluster.submit("slurm", folder, cfg.slurm, res, run_task, group, [context] * n, [cfg.ns_bin] * n,
                               [cfg.force] * n)  # fmt: skip
        for job, task in zip(group, tasks, strict=True):
            submitted[job.name] = task.job_id
            all_jobs.append((job, task))
        print(f"submitted preprocess-{method}: {n} task(s), job {tasks[0].job_id.split('_')[0]}, --time "
              f"{res.minutes} min")
    record = folder / SUBMITTED
    old = json.loads(record.read_text()) if record.is_file() else {}
    atomic_write_json(record, {**old, **submitted})
    if not cfg.wait:
        print(f"follow with: python preprocess.py --status (same flags); SLURM logs in {folder}")
        return None
    rows = {j.name: r for (j, _), r in zip(all_jobs, cluster.wait([t for _, t in all_jobs], "preprocess tasks"),
                                            strict=True)}  # fmt: skip
    return [rows.get(j.name) or JobResult(j.name, ALREADY, note="finished earlier").row() for j in jobs]


def _log_state(job: Job) -> tuple[str, str]:
    """(state, note) from the job's log: failed/interrupted with the reason, or stopped without an end."""
    try:
        lines = job.log.read_text(errors="replace").splitlines()
    except OSError:
        return "to run", ""
    for line in reversed(lines):
        if m := re.match(r"# FAILED: (.*)", line):
            return FAILED, m.group(1)
        if line.startswith("# INTERRUPTED"):
            return "interrupted", "redone by the next run"
    return "stopped", "its log ends without a result (killed?); redone by the next run"


def squeue_states(folder: Path) -> dict[str, str]:
    """{job name: SLURM state} of the recorded tasks that squeue still lists (empty without SLURM)."""
    record = folder / SUBMITTED
    if not record.is_file():
        return {}
    ids = json.loads(record.read_text())
    try:
        out = subprocess.run(["squeue", "-h", "-t", "all", "-r", "-o", "%i %T"], capture_output=True, text=True,
                             timeout=60)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return {}
    states = dict(line.split()[:2] for line in out.stdout.splitlines() if len(line.split()) >= 2)
    return {name: states[i] for name, i in ids.items() if i in states}


def status(cfg: PreprocessConfig, jobs: Sequence[Job], layout: Layout) -> int:
    """``--status``: every job's state (done / running / queued / failed with its log / to run); submits nothing.
    Exit code 0 when every job is done, 1 otherwise."""
    slurm = squeue_states(cluster_dir(cfg, layout))
    rows = []
    for job in jobs:
        note, where = "", ""
        if job.skip:
            state, note = "skipped", job.skip
        elif job.done() is not None:
            state = "done"
        else:
            with job_lock(job) as free:
                running = not free
            sstate = slurm.get(job.name, "")
            if running or sstate == "RUNNING":
                state, where = "running", str(job.log)
            elif sstate in ("PENDING", "REQUEUED", "CONFIGURING"):
                state = "queued"
            else:
                state, note = _log_state(job)
                where = str(job.log) if job.log.exists() else ""
        rows.append({"job": job.name, "state": state, "slurm": slurm.get(job.name, ""), "log": where, "note": note})
    print(table(rows, ["job", "state", "slurm", "log", "note"]))
    counts = {s: sum(r["state"] == s for r in rows) for s in dict.fromkeys(r["state"] for r in rows)}
    print(", ".join(f"{n} {s}" for s, n in counts.items()))
    return 0 if all(r["state"] in ("done", "skipped") for r in rows) else 1
