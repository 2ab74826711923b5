"""Render the unlabelled training set with nerfstudio: every scene x method, resumable (see README, Preprocess).

    python preprocess.py --dry-run                      # the plan: every command, what is done, GPU-hour estimate
    python preprocess.py                                # run it (needs nerfstudio on PATH or --ns-bin, a GPU)
    python preprocess.py --scenes poster --methods nerfacto,kplanes-20 --max-iters 2000

Each job: ``ns-train`` -> ``ns-render interpolate`` -> PNG frames in renders/{scene}__{method}/ + an mp4 in
renders/videos/, a done-marker and a log per job. Finished jobs are skipped, unfinished ones cleaned and redone,
a failing job does not stop the others. Exit code: 0 all done, 1 some job failed, 2 nothing run (bad setup),
130 interrupted (run again to resume).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import logging
import signal
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from consts import DATASETS_DIR, NS_METHODS, NS_OUTPUTS_DIR, RENDERS_DIR, RUNS_DIR, TRAIN_METHODS, TRAIN_SCENES
from models.errors import InputError
from models.preprocess.commands import COMMAND_ENV, Layout, NsEnv, plan, probe, problems
from models.preprocess.jobs import ALREADY, FAILED, INTERRUPTED, SKIPPED, Job, exclusive, run_jobs
from models.results import check_writable, stamp, table, write_json

log = logging.getLogger("preprocess")


def _rel(path: Path) -> str:
    """``path`` relative to the current folder when inside it (readable commands), else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@dataclass
class PreprocessConfig:
    """Options of one preprocess run (all flags of preprocess.py)."""

    scenes: list[str] = field(default_factory=lambda: list(TRAIN_SCENES))  # nerfstudio capture names
    methods: list[str] = field(default_factory=lambda: list(TRAIN_METHODS))  # keys of consts.NS_METHODS
    datasets: str = field(default_factory=lambda: _rel(DATASETS_DIR))  # captures at {datasets}/nerfstudio/{scene}
    outputs: str = field(default_factory=lambda: _rel(NS_OUTPUTS_DIR))  # ns-train --output-dir
    renders: str = field(default_factory=lambda: _rel(RENDERS_DIR))  # frames, videos/, logs/
    ns_bin: str | None = None  # folder holding ns-train / ns-render (default: PATH)
    device: str = "auto"  # auto (cuda if nerfstudio's torch sees one) | cuda | cpu
    max_iters: int = 0  # ns-train --max-num-iterations; 0 = the method's default (as upstream)
    download: bool = False  # fetch missing captures with ns-download-data first
    include_skipped: bool = False  # also render the pairs upstream skipped (consts.SKIPPED_PAIRS)
    force: bool = False  # redo finished jobs too
    dry_run: bool = False  # print the plan, run nothing
    check_cli: bool = False  # parse every planned command with the real nerfstudio CLI (tyro), run nothing
    plan_json: str | None = None  # also write the plan (commands + estimate) to this JSON file
    run_name: str | None = None  # runs/<name>/ for config.json + summary.json (default preprocess-<UTC time>)


def _names(values: list[str]) -> list[str]:
    return [v for item in values for v in item.split(",") if v]


def parse_args(argv: list[str] | None = None) -> PreprocessConfig:
    d = PreprocessConfig()
    p = argparse.ArgumentParser(
        description="Train every scene x method with nerfstudio and render its interpolated path to PNG frames "
                    "+ mp4 (resumable: finished jobs are skipped, interrupted ones redone).",
        epilog="nerfstudio is your own CUDA environment (README, section Preprocess); this script only calls "
               f"its commands. Methods: {', '.join(NS_METHODS)}.")  # fmt: skip
    p.add_argument("--scenes", nargs="+", default=d.scenes, metavar="SCENE", help="default: the 17 training scenes")
    p.add_argument("--methods", nargs="+", default=d.methods, metavar="METHOD", help="default: all 8 methods")
    p.add_argument("--datasets", default=d.datasets, help="captures in DATASETS/nerfstudio/SCENE (%(default)s)")
    p.add_argument("--outputs", default=d.outputs, help="ns-train output folder (default: %(default)s)")
    p.add_argument("--renders", default=d.renders, help="frames, videos/ and logs/ (default: %(default)s)")
    p.add_argument("--ns-bin", help="folder with ns-train/ns-render, e.g. ~/ns-venv/bin (default: PATH)")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"],
                   help="auto: cuda when nerfstudio's torch sees a GPU (cpu: slow, CUDA-only methods refused)")
    p.add_argument("--max-iters", type=int, default=0, help="ns-train --max-num-iterations (default: the method's)")
    p.add_argument("--download", action="store_true", help="run ns-download-data for missing captures first")
    p.add_argument("--include-skipped", action="store_true", help="also render the pairs upstream skipped")
    p.add_argument("--force", action="store_true", help="redo finished jobs as well")
    p.add_argument("--dry-run", action="store_true", help="print the plan (every command) and run nothing")
    p.add_argument("--check-cli", action="store_true",
                   help="parse every planned command with your nerfstudio's own CLI (no training) and report")
    p.add_argument("--plan-json", help="write the plan and its GPU-hour estimate to this JSON file too")
    p.add_argument("--run-name", help="runs/NAME/ gets config.json + summary.json (default: preprocess-<time>)")
    a = p.parse_args(argv)
    methods = _names(a.methods)
    if bad := [m for m in methods if m not in NS_METHODS]:
        p.error(f"unknown method(s) {', '.join(bad)}; choose from {', '.join(NS_METHODS)}")
    if a.max_iters < 0:
        p.error("--max-iters must be >= 0")
    return PreprocessConfig(_names(a.scenes), methods, a.datasets, a.outputs, a.renders, a.ns_bin, a.device,
                            a.max_iters, a.download, a.include_skipped, a.force, a.dry_run, a.check_cli, a.plan_json,
                            a.run_name)  # fmt: skip


def resolve_device(requested: str, env: NsEnv) -> str:
    """cuda/cpu as asked; auto: what nerfstudio's torch sees (cuda when unknown: the setup the plan is for)."""
    if requested != "auto":
        return requested
    return "cpu" if env.cuda is False else "cuda"


def job_state(job: Job) -> str:
    """What a run would do with ``job``: skip it, keep it (finished), or run it (cleaning leftovers first)."""
    if job.skip:
        return f"{SKIPPED}: {job.skip}"
    if job.done() is not None:
        return ALREADY
    leftovers = [p for p in job.clean if p.exists()]
    return "to run" + (f" (first removes the unfinished attempt's {_rel(leftovers[0])}…)" if leftovers else "")


def estimate(jobs: list[Job], force: bool) -> list[dict]:
    """GPU hours per method of the jobs a run would do (reported per-scene costs, spec section Preprocess)."""
    rows: dict[str, dict] = {}
    for j in jobs:
        if "method" not in j.info or j.skip or (not force and j.done() is not None):
            continue
        r = rows.setdefault(j.info["method"], {"method": j.info["method"], "jobs": 0,
                                               "GPU min/job": j.info["gpu_minutes"]})  # fmt: skip
        r["jobs"] += 1
    for r in rows.values():
        r["GPU hours"] = round(r["jobs"] * r["GPU min/job"] / 60, 2)
    total = {"method": "total", "jobs": sum(r["jobs"] for r in rows.values()),
             "GPU hours": round(sum(r["jobs"] * r["GPU min/job"] for r in rows.values()) / 60, 2)}  # fmt: skip
    return [*rows.values(), total]


def show_plan(cfg: PreprocessConfig, jobs: list[Job], env: NsEnv, device: str, probs: list[str]) -> dict:
    """Print the plan (every command) and return it as a dict for --plan-json."""
    found = env.tools.get("ns-train") and env.tools.get("ns-render")
    print(f"nerfstudio {env.version} via {env.python}" if found else "nerfstudio: not found (plan shown as it "
          "would run with it installed)")  # fmt: skip
    print(f"device: {device}   jobs: {len(jobs)}   renders: {cfg.renders}   outputs: {cfg.outputs}\n")
    entries = []
    for i, job in enumerate(jobs, 1):
        state = job_state(job) if not cfg.force or job.skip else "to run (--force: redone)"
        print(f"[{i}/{len(jobs)}] {job.name}: {state}")
        if not job.skip:
            for step in job.steps:
                print(f"    {step.show()}")
        entries.append({"job": job.name, "state": state, "commands": [s.show() for s in job.steps], **job.info})
    est = estimate(jobs, cfg.force)
    print("\nEstimated GPU time of the jobs to run (reported per-scene cost on one GPU, spec section Preprocess):")
    print(table(est, ["method", "jobs", "GPU min/job", "GPU hours"], floatfmt=".1f"))
    if probs:
        print("\nA real run would stop before starting, because:")
        for prob in probs:
            print(f"  - {prob}")
    return {"nerfstudio": env.version, "device": device, "jobs": entries, "estimate": est, "problems": probs}


def check(cfg: PreprocessConfig, jobs: list[Job], layout: Layout, env: NsEnv) -> int:
    """--check-cli: parse every planned command with nerfstudio's CLI; 0 when all parse as expected."""
    from models.preprocess.cli_check import check_cli

    print(f"checking {sum(bool(s.argv) for j in jobs for s in j.steps)} commands with nerfstudio {env.version} "
          f"({env.python}) ...", flush=True)
    try:
        rows = check_cli(jobs, layout, env)
    except RuntimeError as e:
        log.error("%s", e)
        return 2
    print(table(rows, ["job", "step", "ok", "model", "note"]))
    bad = sum(not r["ok"] for r in rows)
    print(f"{len(rows) - bad} of {len(rows)} commands parse as planned with nerfstudio {env.version}")
    if cfg.plan_json:
        write_json(Path(cfg.plan_json), {**stamp(config=asdict(cfg), nerfstudio=env.version), "check_cli": rows})
        print(f"wrote {cfg.plan_json}")
    return 1 if bad else 0


def run(cfg: PreprocessConfig) -> int:
    """Plan, check and run the jobs of ``cfg``; returns the process exit code."""
    ns_bin = Path(cfg.ns_bin).expanduser() if cfg.ns_bin else None
    layout = Layout(Path(cfg.datasets), Path(cfg.outputs), Path(cfg.renders))
    if ns_bin is not None and not ns_bin.is_dir():
        log.error("--ns-bin %s: no such folder; point it at the bin/ of nerfstudio's environment", ns_bin)
        return 2
    env = probe(ns_bin)
    device = resolve_device(cfg.device, env)
    jobs = plan(cfg.scenes, cfg.methods, layout, env, device, cfg.max_iters or None, cfg.download,
                cfg.include_skipped)  # fmt: skip
    probs = problems(jobs, layout, env, device, cfg.download, cfg.force)
    if cfg.check_cli:
        return check(cfg, jobs, layout, env)
    if cfg.dry_run:
        planned = show_plan(cfg, jobs, env, device, probs)
        if cfg.plan_json:
            write_json(Path(cfg.plan_json), {**stamp(config=asdict(cfg)), **planned})
            print(f"wrote {cfg.plan_json}")
        return 0
    for prob in probs:
        log.error("%s", prob)
    if probs:
        return 2

    run_dir = RUNS_DIR / (cfg.run_name or f"preprocess-{_dt.datetime.now(_dt.UTC):%Y%m%d-%H%M%S}")
    context = stamp(nerfstudio=env.version, nerfstudio_torch=env.torch, nerfstudio_python=env.python,
                    command_env=COMMAND_ENV)
    try:
        check_writable(layout.renders)
        with exclusive(layout.renders, "preprocess.py"):
            write_json(run_dir / "config.json", {**context, "config": asdict(cfg), "device": device})
            results, interrupted = run_jobs(jobs, context, cfg.force, env=env.child_env())
    except InputError as e:
        log.error("%s", e)
        return 2
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


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        return run(cfg)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
