"""One preprocess run: its options (:class:`PreprocessConfig`, the flags of preprocess.py) and :func:`run`.

``run`` probes nerfstudio, plans every scene x method job, then either shows the plan (``--dry-run``), checks
every command against nerfstudio's CLI (``--check-cli``) or runs the jobs under a lock on the renders folder and
writes ``runs/<name>/config.json`` + ``summary.json``.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import signal
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from consts import DATASETS_DIR, NS_METHODS, NS_OUTPUTS_DIR, RENDERS_DIR, RUNS_DIR, TRAIN_METHODS, TRAIN_SCENES
from models.cli import opt
from models.errors import InputError
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

    def __post_init__(self) -> None:
        # Comma lists are split here, so a config built in code means the same as the flags.
        self.scenes, self.methods = names(self.scenes), names(self.methods)
        if bad := [m for m in self.methods if m not in NS_METHODS]:
            raise InputError(f"unknown method(s) {', '.join(bad)}; choose from {', '.join(NS_METHODS)}")
        captures = Path(self.datasets) / "nerfstudio"
        if bad := [s for s in self.scenes if s not in TRAIN_SCENES and not (captures / s).is_dir()]:
            raise InputError(f"--scenes: unknown scene(s) {', '.join(bad)} (not a training scene, and no custom "
                             f"capture {captures / bad[0]}/); known scenes: {', '.join(TRAIN_SCENES)}")


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
    device = nerfstudio_device(cfg.device, env)
    jobs = plan(cfg.scenes, cfg.methods, layout, env, device, cfg.max_iters or None, cfg.download)
    probs = problems(jobs, layout, env, device, cfg.download, cfg.force)
    if cfg.check_cli:
        return check(cfg, jobs, layout, env)
    if cfg.dry_run:
        return dry_run(cfg, jobs, env, device, probs)
    if len(probs) == 1:
        raise InputError(probs[0])
    if probs:  # one line: every problem, numbered (--dry-run lists them one per line)
        raise InputError(f"{len(probs)} problems stop the run: "
                         + " ".join(f"({i}) {p}" for i, p in enumerate(probs, 1)))

    run_dir = RUNS_DIR / (cfg.run_name or f"preprocess-{_dt.datetime.now(_dt.UTC):%Y%m%d-%H%M%S}")
    context = stamp(nerfstudio=env.version, nerfstudio_torch=env.torch, nerfstudio_python=env.python,
                    command_env=COMMAND_ENV)
    check_writable(layout.renders, "--renders")
    with exclusive(layout.renders, "preprocess.py"):
        write_json(run_dir / "config.json", {**context, "config": asdict(cfg), "device": device})
        results, interrupted = run_jobs(jobs, context, cfg.force, env=env.child_env())
    rows = [r.row() for r in results]
    print(table(rows, ["job", "status", "frames", "train s", "render s", "mp4 s", "total s", "note"], floatfmt=".1f"))
    counts = {s: sum(r.status == s for r in results) for s in dict.fromkeys(r.status for r in results)}
    print(", ".join(f"{n} {s}" for s, n in counts.items()))
    write_json(run_dir / "summary.json", {**context, "device": device, "counts": counts, "rows": rows,
                                          "interrupted": interrupted})  # fmt: skip
    print(f"wrote {run_dir}/config.json, summary.json; job logs in {layout.renders / 'logs'}")
    if interrupted:
        print("interrupted: run the same command again to resume (the unfinished job is redone)", file=sys.stderr)
        return 130
    return 1 if any(r.status in (FAILED, INTERRUPTED) for r in results) else 0


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # same clean stop as Ctrl-C: the child is terminated, the job redone next run


def stop_on_sigterm() -> None:
    """Make SIGTERM (a scheduler's or ``kill``'s stop) behave like Ctrl-C: the running child is terminated,
    the summary written and the unfinished job redone by the next run. For the script's process only."""
    signal.signal(signal.SIGTERM, _sigterm)
