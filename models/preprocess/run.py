"""One preprocess run (:func:`run`; its options: models.preprocess.config).

``run`` probes nerfstudio, plans every scene x method job, then either shows the plan (``--dry-run``), checks
every command against nerfstudio's CLI (``--check-cli``) or runs the jobs under a lock on the renders folder and
writes ``runs/<name>/config.json`` + ``summary.json``.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path

from consts import RUNS_DIR
from models.errors import InputError
from models.preprocess import cluster as pc
from models.preprocess.commands import COMMAND_ENV, Layout, nerfstudio_device, plan, probe, problems
from models.preprocess.config import PreprocessConfig
from models.preprocess.jobs import FAILED, INTERRUPTED, exclusive, run_jobs
from models.preprocess.plan import check, dry_run
from models.results import check_writable, stamp, table, write_json

log = logging.getLogger("preprocess")


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
