"""Jobs past one machine: submitit executors (SLURM, or local processes) shared by preprocess.py, app.py,
evaluate.py and train.py.

One place says how our flags become ``sbatch`` settings (:class:`SlurmOptions` + :class:`Resources` ->
:func:`sbatch_settings`, printed by the dry runs and exactly what submitit writes into the submission file),
builds the executor (:func:`executor`), and waits for jobs without ``sacct`` (:func:`wait`): a cluster without
accounting storage, like the one-node SLURM of the tests, has no ``sacct``, so a job's state comes from ``squeue``
and its result file. The callables submitted are passed in by the jobs' own packages; this module imports none of
them (it is a shared flat module).
"""

from __future__ import annotations

import logging
import math
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.cli import opt
from models.errors import InputError

log = logging.getLogger("cluster")
ROOT = Path(__file__).resolve().parents[1]  # the repository: on PYTHONPATH of every job, so pickles import
PYTHONPATH = f"export PYTHONPATH={ROOT}${{PYTHONPATH:+:$PYTHONPATH}}"  # the jobs' setup line
EXECUTORS = ("local", "slurm")
SIGNAL_DELAY_S = 120  # SIGUSR2 this long before the time limit: time to write a checkpoint and requeue
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY", "BOOT_FAIL",
         "DEADLINE", "GONE", "ENDED"}  # GONE: no longer in squeue (finished longer ago than the cluster's MinJobAge)
GROUP = "cluster (docs/cluster.md)"  # the --help heading of the scripts' executor flags
SLURM_HELP = "SLURM (with --executor slurm)"  # the --help heading of SlurmOptions


@dataclass
class SlurmOptions:
    """Where and how SLURM jobs are submitted: the sbatch flags our scripts pass through (docs/cluster.md)."""

    partition: str | None = opt(None, "sbatch --partition")
    account: str | None = opt(None, "sbatch --account")
    qos: str | None = opt(None, "sbatch --qos")
    constraint: str | None = opt(None, "sbatch --constraint (node features, e.g. a100)")
    sbatch: list[str] = opt([], "extra sbatch options as KEY=VALUE (e.g. mem=32G exclude=node7); KEY alone for a "
                            "switch (e.g. exclusive)", metavar="KEY=VALUE")
    max_parallel: int = opt(0, "at most this many array tasks of one array at once (sbatch --array=…%N; 0: no "
                            "limit)", min=0)
    time_min: int = opt(0, "sbatch --time in minutes (0: the job's own estimate: preprocess per method, 120 for "
                        "scoring shards, 1440 for training)", min=0)
    cpus_per_task: int = opt(0, "sbatch --cpus-per-task (0: the cluster's default)", min=0)
    cluster_dir: str | None = opt(None, "submitit's folder: submission scripts, job pickles and SLURM logs (default: "
                                  "a folder beside the job's outputs)")

    def extra(self) -> dict[str, Any]:
        """``--sbatch`` as submitit's ``additional_parameters`` (``KEY=VALUE`` -> {KEY: VALUE}; ``KEY`` -> True)."""
        out: dict[str, Any] = {}
        for item in self.sbatch:
            key, eq, value = item.partition("=")
            key = key.strip().lstrip("-")
            if not key or (eq and not value):
                raise InputError(f"--sbatch {item}: use KEY=VALUE (e.g. mem=32G) or KEY alone (e.g. exclusive)")
            out[key.replace("-", "_")] = value if eq else True
        return out


@dataclass(frozen=True)
class Resources:
    """What one job (or each task of an array) asks for."""

    name: str
    minutes: int  # sbatch --time
    gpus_per_node: int = 0
    nodes: int = 1
    tasks_per_node: int = 1
    cpus_per_task: int | None = None
    array: int | None = None  # number of array tasks (None: a single job)


def time_limit(minutes: float, margin: float = 2.0, pad: int = 15) -> int:
    """A time limit from an expected duration: ``margin`` x it, plus ``pad`` minutes for start-up and I/O."""
    return int(math.ceil(minutes * margin)) + pad


def slurm_parameters(opts: SlurmOptions, res: Resources) -> dict[str, Any]:
    """submitit ``SlurmExecutor.update_parameters`` keywords for ``res`` under ``opts``."""
    params: dict[str, Any] = {"job_name": res.name, "time": res.minutes, "nodes": res.nodes,
                              "ntasks_per_node": res.tasks_per_node, "signal_delay_s": SIGNAL_DELAY_S,
                              "stderr_to_stdout": True, "setup": [PYTHONPATH]}
    if res.gpus_per_node:
        params["gpus_per_node"] = res.gpus_per_node
    if res.cpus_per_task:
        params["cpus_per_task"] = res.cpus_per_task
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(opts, key):
            params[key] = getattr(opts, key)
    if res.array and opts.max_parallel:
        params["array_parallelism"] = opts.max_parallel
    if extra := opts.extra():
        params["additional_parameters"] = extra
    return params


def sbatch_settings(opts: SlurmOptions, res: Resources) -> list[str]:
    """The ``#SBATCH`` settings a submission of ``res`` gets (what ``--dry-run`` prints; sorted as submitit
    writes them; output/error paths left out, they name the job id)."""
    p = slurm_parameters(opts, res)
    flags: dict[str, Any] = {k: v for k, v in p.items() if k not in
                             ("signal_delay_s", "stderr_to_stdout", "setup", "array_parallelism",
                              "additional_parameters")}  # fmt: skip
    flags["signal"] = f"USR2@{SIGNAL_DELAY_S}"
    flags["wckey"] = "submitit"
    if res.array and res.array > 1:  # submitit submits an array of one as a plain job
        flags["array"] = f"0-{res.array - 1}%{min(res.array, opts.max_parallel or 256)}"
    flags.update(p.get("additional_parameters", {}))
    out = []
    for k in sorted(flags):
        v = flags[k]
        out.append(f"--{k.replace('_', '-')}" + ("" if v is True else f"={v}"))
    return out


def executor(kind: str, folder: Path, opts: SlurmOptions, res: Resources, gpus: Sequence[int] = ()) -> Any:
    """A submitit executor for ``res``: ``slurm`` (sbatch; arrays with ``map_array``) or ``local`` (one process per
    job on this machine, ``gpus``: CUDA devices visible to it)."""
    import submitit

    folder.mkdir(parents=True, exist_ok=True)
    if kind == "slurm":
        if not shutil.which("sbatch"):
            raise InputError("--executor slurm: sbatch not found on PATH; run on the cluster's login node, or use "
                             "--executor local")
        ex = submitit.SlurmExecutor(folder=str(folder / "%j"), max_num_timeout=10)
        ex.update_parameters(**slurm_parameters(opts, res))
        return ex
    ex = submitit.LocalExecutor(folder=str(folder / "%j"))
    ex.update_parameters(timeout_min=res.minutes, gpus_per_node=res.gpus_per_node, tasks_per_node=res.tasks_per_node,
                         visible_gpus=tuple(gpus), signal_delay_s=SIGNAL_DELAY_S,
                         setup=[PYTHONPATH])  # fmt: skip
    return ex


def slurm_state(job_id: str) -> str:
    """A SLURM job's state from ``squeue`` (PENDING, RUNNING, COMPLETED, …; GONE when squeue no longer lists it)."""
    out = subprocess.run(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"], capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    states = out.stdout.split()
    return states[0] if out.returncode == 0 and states else "GONE"


def job_state(job: Any) -> str:
    """A submitit job's state without sacct: SLURM's (squeue) or, for a local job, RUNNING/COMPLETED/FAILED."""
    if job.paths.result_pickle.exists():
        return "COMPLETED"
    if type(job).__name__ == "SlurmJob":
        return slurm_state(job.job_id)
    return "RUNNING" if job.state == "RUNNING" else "ENDED"  # a local job: its process is alive or not


def wait(jobs: Sequence[Any], what: str, poll_s: float = 1.0, progress: bool = True) -> list[Any]:
    """Wait for every job; their results in order. A job that ended without a result is one-line
    :class:`InputError` naming its log (the last line of it)."""
    from tqdm import tqdm

    pending = list(range(len(jobs)))
    with tqdm(total=len(jobs), unit="job", desc=what, disable=not progress, dynamic_ncols=True) as bar:
        while pending:
            still = []
            for i in pending:
                state = job_state(jobs[i])
                if state not in ENDED:
                    still.append(i)
            bar.update(len(pending) - len(still))
            pending = still
            if pending:
                time.sleep(poll_s)
    out = []
    for job in jobs:
        tasks = getattr(job, "_sub_jobs", None) or [job]  # a job of several tasks (DDP): one result each
        if bad := [t for t in tasks if not t.paths.result_pickle.exists()]:
            raise InputError(f"{bad[0].paths.stdout}: job {job.job_id} ({what}) ended ({job_state(job)}) without a "
                             f"result: {last_line(bad[0].paths.stdout)}")
        try:
            out.append(job.results()[0])  # rank 0's
        except Exception as e:  # noqa: BLE001 - submitit re-raises the job's exception as FailedJobError
            raise InputError(f"{job.paths.stdout}: job {job.job_id} ({what}) failed: "
                             f"{str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__}") from None
    return out


def last_line(path: Path) -> str:
    """The last non-empty line of a log (or why there is none)."""
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log written"
    return lines[-1] if lines else "empty log"


def submit(kind: str, folder: Path, opts: SlurmOptions, res: Resources, fn: Callable[..., Any],
           *args: Sequence[Any], gpus: Sequence[int] = ()) -> list[Any]:
    """Submit ``fn`` once per element of the zipped ``args`` (an array job on SLURM); returns the submitit jobs."""
    ex = executor(kind, folder, opts, res, gpus)
    if res.array is None and len(args[0]) == 1:
        return [ex.submit(fn, *(a[0] for a in args))]
    return ex.map_array(fn, *args)


def slurm_ready() -> str | None:
    """None when a SLURM controller answers with a node that takes jobs; else one line why not."""
    if not shutil.which("sinfo"):
        return "no sinfo on PATH (SLURM is not installed)"
    try:
        out = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"sinfo did not answer ({e})"
    states = out.stdout.split()
    if out.returncode != 0 or not any(s.rstrip("*") in ("idle", "mixed", "allocated", "completing") for s in states):
        return f"no SLURM node takes jobs (sinfo: {out.stderr.strip() or ' '.join(states) or 'no nodes'})"
    return None
