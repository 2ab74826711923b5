"""One preprocess run: its options (:class:`PreprocessConfig`, the flags of preprocess.py) and :func:`run`.

``run`` probes nerfstudio, plans every scene x method job, then either shows the plan (``--dry-run``), checks
every command against nerfstudio's CLI (``--check-cli``) or runs the jobs under a lock on the renders folder and
writes ``runs/<name>/config.json`` + ``summary.json``.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import re
import signal
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from consts import DATASETS_DIR, NS_METHODS, NS_OUTPUTS_DIR, RENDERS_DIR, RUNS_DIR, TRAIN_METHODS, TRAIN_SCENES
from models.cli import opt
from models.cluster import EXECUTORS, GROUP, SLURM_HELP, SlurmOptions
from models.errors import InputError
from models.preprocess import cluster as pc
from models.preprocess.commands import COMMAND_ENV, Layout, nerfstudio_device, plan, probe, problems
from models.preprocess.jobs import FAILED, INTERRUPTED, exclusive, run_jobs
from models.preprocess.plan import check, dry_run, rel
from models.results import check_writable, stamp, table, write_json

log = logging.getLogger("preprocess")


def names(values: list[str]) -> list[str]:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]``: names may be given space- or comma-separated."""
    return [v for item in values for v in item.split(",") if v]


@dataclass
class PreprocessConfig:
    """Options of one preprocess run (all flags of preprocess.py)."""

    scenes: list[str] = opt(list(TRAIN_SCENES), "nerfstudio capture names, space- or comma-separated (default: "
                            "the 17 training scenes)", metavar="SCENE")
    methods: list[str] = opt(list(TRAIN_METHODS), "keys of consts.NS_METHODS, space- or comma-separated (default: "
                             "all 8 methods)", metavar="METHOD")
    datasets: str = opt(rel(DATASETS_DIR), "captures in DATASETS/nerfstudio/SCENE")
    outputs: str = opt(rel(NS_OUTPUTS_DIR), "ns-train output folder")
    renders: str = opt(rel(RENDERS_DIR), "frames, videos/ and logs/")
    ns_bin: str | None = opt(None, "folder with ns-train/ns-render, e.g. ~/ns-venv/bin (default: PATH)")
    device: str = opt("auto", "auto: cuda when nerfstudio's torch sees a GPU (cpu: slow, CUDA-only methods refused)",
                      choices=("auto", "cuda", "cpu"))
    max_iters: int = opt(0, "ns-train --max-num-iterations (default: the method's)", min=0)
    download: bool = opt(False, "run ns-download-data for missing captures first")
    include_skipped: bool = opt(False, "deprecated, no effect: every scene x method pair is planned (upstream's "
                                "skipped pairs are history, docs/preprocess.md)")
    force: bool = opt(False, "redo finished jobs as well")
    dry_run: bool = opt(False, "print the plan (every command) and run nothing")
    check_cli: bool = opt(False, "parse every planned command with your nerfstudio's own CLI (no training) and report")
    plan_json: str | None = opt(None, "write the plan and its GPU-hour estimate (or the --check-cli report) to this "
                                "JSON file too")
    run_name: str | None = opt(None, "runs/NAME/ gets config.json + summary.json (default: preprocess-<time>)")
    executor: str = opt("local", "local: on this machine (one job at a time, or one per GPU of --gpus) | slurm: one "
                        "array task per job through submitit (docs/cluster.md)", choices=EXECUTORS, group=GROUP)
    gpus: str = opt("", "with --executor local: GPU ids, e.g. 0,1: one job per GPU at a time (default: one job at "
                    "a time, all GPUs visible)", metavar="0,1,…", group=GROUP)
    gpus_per_job: int = opt(1, "with --executor slurm: GPUs of each array task (sbatch --gpus-per-node)", min=0,
                            group=GROUP)
    wait: bool = opt(False, "with --executor slurm: wait for the tasks and print the summary (default: submit and "
                     "return; follow with --status)", group=GROUP)
    status: bool = opt(False, "show every job's state (done / running / queued / failed with its log / to run) and "
                       "submit nothing", group=GROUP)
    slurm: SlurmOptions = opt(SlurmOptions(), SLURM_HELP)

    def __post_init__(self) -> None:
        # Comma lists are split here, so a config built in code means the same as the flags.
        self.scenes, self.methods = names(self.scenes), names(self.methods)
        if bad := [m for m in self.methods if m not in NS_METHODS]:
            raise InputError(f"unknown method(s) {', '.join(bad)}; choose from {', '.join(NS_METHODS)}")
        captures = Path(self.datasets) / "nerfstudio"
        if bad := [s for s in self.scenes if s not in TRAIN_SCENES and not (captures / s).is_dir()]:
            raise InputError(f"--scenes: unknown scene(s) {', '.join(bad)} (not a training scene, and no custom "
                             f"capture {captures / bad[0]}/); known scenes: {', '.join(TRAIN_SCENES)}")
        if self.gpus and not re.fullmatch(r"\d+(,\d+)*", self.gpus):
            raise InputError(f"--gpus {self.gpus}: give GPU ids separated by commas, e.g. 0,1")
        if self.gpus and self.executor != "local":
            raise InputError("--gpus is for --executor local; on SLURM each array task gets --gpus-per-job GPUs")

    def gpu_ids(self) -> list[int]:
        return [int(g) for g in self.gpus.split(",")] if self.gpus else []


def check_output_file(path: Path, flag: str) -> None:
    """Refuse, before any work, an output file that cannot be written (a folder, under a file, read-only)."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent  # atomic writes create missing folders: the nearest existing one must take them
    why = ("is a folder" if path.is_dir() else f"{parent} is not a folder" if not parent.is_dir()
           else f"{parent} is not writable" if not os.access(parent, os.W_OK | os.X_OK) else "")
    if why:
        raise InputError(f"{flag} {path}: cannot write this file ({why}); choose another path")


def run(cfg: PreprocessConfig) -> int:
    """Plan, check and run the jobs of ``cfg``; returns the process exit code."""
    if cfg.include_skipped:
        log.warning("--include-skipped is deprecated and has no effect: every scene x method pair is planned")
    ns_bin = Path(cfg.ns_bin).expanduser() if cfg.ns_bin else None
    layout = Layout(Path(cfg.datasets), Path(cfg.outputs), Path(cfg.renders))
    if ns_bin is not None and not ns_bin.is_dir():
        raise InputError(f"--ns-bin {ns_bin}: no such folder; point it at the bin/ of nerfstudio's environment")
    if cfg.plan_json:
        check_output_file(Path(cfg.plan_json), "--plan-json")
    env = probe(ns_bin)
    slurm = cfg.executor == "slurm"  # the GPUs are on the compute nodes, not on the machine that submits
    device = "cuda" if slurm and cfg.device == "auto" else nerfstudio_device(cfg.device, env)
    jobs = plan(cfg.scenes, cfg.methods, layout, env, device, cfg.max_iters or None, cfg.download)
    if cfg.status:
        return pc.status(cfg, jobs, layout)
    probs = [p for p in problems(jobs, layout, env, device, cfg.download, cfg.force)
             if not (slurm and p.startswith("--device cuda:"))]  # fmt: skip
    if cfg.check_cli:
        return check(cfg, jobs, layout, env)
    if cfg.dry_run:
        code = dry_run(cfg, jobs, env, device, probs)
        if slurm:
            pc.show_submission(cfg, [j for j in jobs if "method" in j.info and (cfg.force or j.done() is None)])
        return code
    if len(probs) == 1:
        raise InputError(probs[0])
    if probs:  # one line: every problem, numbered (--dry-run lists them one per line)
        raise InputError(f"{len(probs)} problems stop the run: "
                         + " ".join(f"({i}) {p}" for i, p in enumerate(probs, 1)))

    run_dir = RUNS_DIR / (cfg.run_name or f"preprocess-{_dt.datetime.now(_dt.UTC):%Y%m%d-%H%M%S}")
    context = stamp(nerfstudio=env.version, nerfstudio_torch=env.torch, nerfstudio_python=env.python,
                    command_env=COMMAND_ENV)
    check_writable(layout.renders, "--renders")
    if slurm:  # downloads on this machine (compute nodes may have no network), renders as array tasks
        with exclusive(layout.renders, "preprocess.py"):
            results, interrupted = run_jobs([j for j in jobs if "method" not in j.info], context, env=env.child_env())
        write_json(run_dir / "config.json", {**context, "config": asdict(cfg), "device": device})
        got = None if interrupted else pc.submit(cfg, [j for j in jobs if "method" in j.info], context, layout)
        if got is None:
            return 130 if interrupted else 0
        rows = [r.row() for r in results] + got
    else:
        with exclusive(layout.renders, "preprocess.py"):
            write_json(run_dir / "config.json", {**context, "config": asdict(cfg), "device": device})
            if cfg.gpus:
                rows, interrupted = pc.run_on_gpus(cfg, jobs, context, cfg.gpu_ids()), False
            else:
                results, interrupted = run_jobs(jobs, context, cfg.force, env=env.child_env())
                rows = [r.row() for r in results]
    print(table(rows, ["job", "status", "frames", "train s", "render s", "mp4 s", "total s", "note"], floatfmt=".1f"))
    counts = {s: sum(r["status"] == s for r in rows) for s in dict.fromkeys(r["status"] for r in rows)}
    print(", ".join(f"{n} {s}" for s, n in counts.items()))
    write_json(run_dir / "summary.json", {**context, "device": device, "counts": counts, "rows": rows,
                                          "interrupted": interrupted})  # fmt: skip
    print(f"wrote {run_dir}/config.json, summary.json; job logs in {layout.renders / 'logs'}")
    if interrupted:
        print("interrupted: run the same command again to resume (the unfinished job is redone)", file=sys.stderr)
        return 130
    return 1 if any(r["status"] in (FAILED, INTERRUPTED, pc.RUNNING_ELSEWHERE) for r in rows) else 0


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # same clean stop as Ctrl-C: the child is terminated, the job redone next run


def stop_on_sigterm() -> None:
    """Make SIGTERM (a scheduler's or ``kill``'s stop) behave like Ctrl-C: the running child is terminated,
    the summary written and the unfinished job redone by the next run. For the script's process only."""
    signal.signal(signal.SIGTERM, _sigterm)
