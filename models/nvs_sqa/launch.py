"""The ways app.py runs: here (models.nvs_sqa.run), as N shard jobs through submitit then merged
(``--executor local|slurm --shards N``), or merging shard folders (``--merge OUT SHARD…``)."""

from __future__ import annotations

import copy
import datetime as _dt
from pathlib import Path

from consts import RUNS_DIR
from models import cluster
from models.errors import InputError
from models.nvs_sqa.app_config import AppConfig, default_out
from models.nvs_sqa.run import run
from models.nvs_sqa.shard import merge


def launch(cfg: AppConfig) -> int:
    """app.py's run: the exit code of whichever way ``cfg`` asks for."""
    if cfg.merge:
        return merge(Path(cfg.merge[0]), [Path(d) for d in cfg.merge[1:]])
    if cfg.executor != "none":
        return submit(cfg, Path(cfg.out) if cfg.out else default_out(cfg.inputs))
    return run(cfg)


def submit(cfg: AppConfig, out: Path) -> int:
    """``--executor local|slurm --shards N``: N jobs of :func:`~models.nvs_sqa.run.run` (with ``--shard i/N``) into
    a run folder, waited for, then merged into ``out``."""
    if cfg.shards < 1:
        raise InputError(f"--executor {cfg.executor}: say how many shards with --shards N")
    folder = Path(cfg.slurm.cluster_dir) if cfg.slurm.cluster_dir else \
        RUNS_DIR / f"app-shards-{_dt.datetime.now(_dt.UTC):%Y%m%d-%H%M%S}"  # fmt: skip
    cfgs = []
    for i in range(cfg.shards):
        c = copy.deepcopy(cfg)
        c.executor, c.shards, c.shard, c.out, c.quiet = "none", 0, f"{i}/{cfg.shards}", str(folder / f"{i}"), True
        cfgs.append(c)
    gpus = 1 if cfg.device == "cuda" else 0
    job = cluster.Resources("app-shard", cfg.slurm.time_min or 120, gpus_per_node=gpus,
                            cpus_per_task=cfg.slurm.cpus_per_task or None, array=cfg.shards)
    jobs = cluster.submit(cfg.executor, folder / "submitit", cfg.slurm, job, run, cfgs)
    print(f"submitted {cfg.shards} shard job(s) ({cfg.executor}: {', '.join(j.job_id for j in jobs)}); results in "
          f"{folder}")
    codes = cluster.wait(jobs, "app.py shards", progress=not cfg.quiet)
    if any(c == 2 for c in codes):
        raise InputError(f"{folder}: a shard scored nothing (exit 2); see its log in {folder / 'submitit'}")
    return max(merge(out, [folder / f"{i}" for i in range(cfg.shards)]), *codes)
