"""What a preprocess run would do, shown without doing it: the plan (``--dry-run``) and the CLI check (``--check-cli``).

Both print to stdout and can also write JSON (``--plan-json``); neither trains nor renders anything.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from models.errors import InputError
from models.preprocess.commands import Layout, NsEnv
from models.preprocess.config import PreprocessConfig, rel
from models.preprocess.jobs import ALREADY, SKIPPED, Job
from models.results import stamp, table, write_json

log = logging.getLogger("preprocess")


def job_state(job: Job) -> str:
    """What a run would do with ``job``: skip it, keep it (finished), or run it (cleaning leftovers first)."""
    if job.skip:
        return f"{SKIPPED}: {job.skip}"
    if job.done() is not None:
        return ALREADY
    leftovers = [p for p in job.clean if p.exists()]
    return "to run" + (f" (first removes the unfinished attempt's {rel(leftovers[0])}…)" if leftovers else "")


def estimate(jobs: list[Job], force: bool) -> list[dict[str, Any]]:
    """GPU hours per method of the jobs a run would do (reported per-scene costs, spec section Preprocess)."""
    rows: dict[str, dict[str, Any]] = {}
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


def show_plan(cfg: PreprocessConfig, jobs: list[Job], env: NsEnv, device: str, probs: list[str]) -> dict[str, Any]:
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


def dry_run(cfg: PreprocessConfig, jobs: list[Job], env: NsEnv, device: str, probs: list[str]) -> int:
    """--dry-run: print the plan, write it to --plan-json when asked; always 0 (the problems are part of it)."""
    planned = show_plan(cfg, jobs, env, device, probs)
    if cfg.plan_json:
        write_plan_json(Path(cfg.plan_json), {**stamp(config=asdict(cfg)), **planned})
    return 0


def write_plan_json(path: Path, obj: dict[str, Any]) -> None:
    """``--plan-json``: written atomically; a place that refuses it (checked before, but e.g. /proc) is one line."""
    try:
        write_json(path, obj)
    except OSError as e:
        raise InputError(f"--plan-json {path}: cannot write this file ({e.strerror}); choose another path") from None
    print(f"wrote {path}")


def check(cfg: PreprocessConfig, jobs: list[Job], layout: Layout, env: NsEnv) -> int:
    """--check-cli: parse every planned command with nerfstudio's CLI; 0 when all parse as expected."""
    from models.preprocess.cli_check import check_cli

    print(f"checking {sum(bool(s.argv) for j in jobs for s in j.steps)} commands with nerfstudio {env.version} "
          f"({env.python}) ...", flush=True)
    try:
        rows = check_cli(jobs, layout, env)
    except RuntimeError as e:
        raise InputError(str(e)) from None
    print(table(rows, ["job", "step", "ok", "model", "note"]))
    bad = sum(not r["ok"] for r in rows)
    print(f"{len(rows) - bad} of {len(rows)} commands parse as planned with nerfstudio {env.version}")
    if cfg.plan_json:
        write_plan_json(Path(cfg.plan_json), {**stamp(config=asdict(cfg), nerfstudio=env.version), "check_cli": rows})
    return 1 if bad else 0
