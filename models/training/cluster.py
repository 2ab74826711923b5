"""train.py on a cluster: the same (DDP) training as a submitit job, preempted or timed out -> saved -> requeued.

``train.py --executor slurm --nodes N --gpus-per-node G`` submits one job of N x G tasks (one process per GPU;
``--tasks-per-node`` on CPU). Each task takes its DDP rendezvous from the SLURM environment (rank, local rank, world
size, the first node as MASTER_ADDR, a port from the job id) and runs :func:`models.training.loop.train`.

Before the time limit (``sbatch --signal=USR2@120``) or on preemption SLURM sends SIGUSR2. submitit's own handler
would requeue at once, in the middle of a step; ours (models.training.stop) only raises a flag. The training loop
asks :func:`models.training.stop.stop_requested` after every step (all ranks agree through one all-reduce), saves
``latest/`` there as ``--stop-after-steps`` does and returns; then the job requeues itself (``scontrol requeue``;
locally, submitit's requeue exit code). The requeued job finds ``latest/`` and continues with the exact
``--resume``: the weights end bit for bit as those of an uninterrupted run. A job cancelled outright is resubmitted
by running the same command again: it resumes the same way.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from models import cli, cluster
from models.cli import opt
from models.cluster import EXECUTORS, GROUP, SLURM_HELP, SlurmOptions
from models.training.config import TrainConfig
from models.training.loop import train
from models.training.stop import install_stop_handler, stop_signalled


@dataclass
class TrainCluster:
    """train.py's cluster flags (docs/cluster.md)."""

    executor: str = opt("none", "none: train here (or under torchrun) | slurm | local: one submitit job, requeued "
                        "after a timeout or preemption", choices=("none", *EXECUTORS), group=GROUP)
    nodes: int = opt(1, "with --executor slurm: nodes (sbatch --nodes)", min=1, group=GROUP)
    gpus_per_node: int = opt(0, "with --executor: GPUs per node, one DDP process each (sbatch --gpus-per-node; 0: "
                             "CPU processes, see --tasks-per-node)", min=0, group=GROUP)
    tasks_per_node: int = opt(1, "with --executor and no GPUs: DDP processes per node (gloo)", min=1, group=GROUP)
    slurm: SlurmOptions = opt(SlurmOptions(), SLURM_HELP)


def take_cluster(given: dict[str, Any]) -> TrainCluster:
    """Pop train.py's cluster flags out of the parsed flags (they are not part of the training config)."""
    names = {f.name for f in fields(TrainCluster)} | {f.name for f in fields(SlurmOptions)}
    mine = cli.split_given(TrainCluster, {k: given.pop(k) for k in list(given) if k in names})
    opts = cli.build(TrainCluster, mine)
    cli.check(opts)
    return opts


def rendezvous() -> dict[str, str]:
    """The torchrun-style environment of this task, from submitit's view of the SLURM (or local) job."""
    import submitit

    env = submitit.JobEnvironment()
    port = 20000 + int("".join(c for c in str(env.job_id) if c.isdigit())[-4:] or 0) % 10000
    return {"MASTER_ADDR": env.hostnames[0] if env.num_nodes > 1 else "127.0.0.1",
            "MASTER_PORT": os.environ.get("MASTER_PORT", str(port)), "RANK": str(env.global_rank),
            "WORLD_SIZE": str(env.num_tasks), "LOCAL_RANK": str(env.local_rank)}  # fmt: skip


class TrainJob:
    """The submitted callable: (re)start the training, resuming from ``latest/`` when an earlier attempt saved it;
    after a stop signal, requeue the job (it continues with the exact resume)."""

    def __call__(self, cfg: TrainConfig, run_dir: str, resume: bool) -> str:
        import submitit

        os.environ.update(rendezvous())
        install_stop_handler()
        started = resume or (Path(run_dir) / "latest" / "train_state.pth").is_file()
        done = train(cfg, run_dir if started else None)
        if not stop_signalled():
            return str(done)
        env = submitit.JobEnvironment()
        if env.global_rank == 0:
            print(f"latest/ saved; requeueing job {env.job_id} (it continues with --resume {run_dir})", flush=True)
            env._requeue(1)  # SLURM: scontrol requeue (the job is stopped and queued again); local: its exit code
        else:
            time.sleep(60 if "SLURM_JOB_ID" in os.environ else 0)  # SLURM stops this rank with the requeue
        sys.exit(-1)  # no result: the job is not over (submitit writes none for SystemExit)


def submit_training(opts: TrainCluster, cfg: TrainConfig, resume: str | None) -> int:
    """Submit the training of ``cfg`` (``resume``: a run folder to continue) as one job, wait, and print where it
    went."""
    run_dir = str(Path(resume) if resume else Path(cfg.runs_dir) / cfg.name)
    tasks = opts.gpus_per_node or opts.tasks_per_node
    res = cluster.Resources(f"train-{Path(run_dir).name}", opts.slurm.time_min or 1440, opts.gpus_per_node,
                            opts.nodes, tasks, opts.slurm.cpus_per_task or None)  # fmt: skip
    folder = Path(opts.slurm.cluster_dir) if opts.slurm.cluster_dir else Path(run_dir + "-submitit")
    if opts.gpus_per_node:
        cfg = replace(cfg, device="cuda")
    job = cluster.submit(opts.executor, folder, opts.slurm, res, TrainJob(), [cfg], [run_dir], [bool(resume)])[0]
    print(f"submitted training job {job.job_id} ({opts.executor}, {opts.nodes} node(s) x {tasks} process(es)); "
          f"logs in {folder}")
    out = cluster.wait([job], "training", progress=False)[0]
    print(f"run folder: {out}")
    return 0
