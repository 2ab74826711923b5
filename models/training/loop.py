"""The training loop of train.py: self-supervised contrastive training of the NVS-SQA encoder (recipe:
../shared/specs/nvs-sqa.md; settings: models.training.config; model and loss: models.training.contrastive).

Total loss = Σ w_k · loss_k over the five heads; Adam (amsgrad) lr 1e-3; AMP on CUDA (not under
``--recipe upstream``: fp32 as the authors); optional gradient checkpointing of the encoder; DDP under
``torchrun`` (NCCL on GPUs, gloo on CPU). Seeded: the same config and seed give the same weights bit for bit on
CPU, with or without an interruption and ``--resume`` (see models.training.pairs for the data side).
Checkpoints: ``latest/`` every epoch (upstream's "realtime" one) and ``epoch_NNNN/`` kept by
:func:`kept_epoch` (every ``--save-every``, the last, and under ``--recipe upstream`` also epochs 1–4).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from consts import CHECKPOINTS_DIR, RUNS_DIR
from models.errors import InputError
from models.nvs_sqa import ModelConfig
from models.results import check_creatable
from models.runtime import locate, resolve_device
from models.training.cluster import stop_requested
from models.training.config import TrainConfig, epoch_batches, step_loader, training_scenes
from models.training.contrastive import ContrastiveModel, head_losses, validate
from models.training.device_targets import batch_targets
from models.training.pairs import VAL_STREAM, PairDataset
from models.training.run_folder import (
    MetricsLog,
    load_latest,
    plot_validation,
    rng_state,
    save_latest,
    set_rng_state,
    validation_correlations,
    write_encoder,
)
from models.training.targets import TARGETS, Recipe, get_recipe

log = logging.getLogger(__name__)


def kept_epoch(done: int, cfg: TrainConfig, recipe: Recipe) -> bool:
    """Whether the checkpoint after ``done`` epochs is kept as ``epoch_NNNN/`` (``latest/`` is written anyway):
    every ``--save-every`` epochs and the last; the authors' code also keeps epochs 1..recipe.keep_first_epochs."""
    return done % cfg.save_every == 0 or done == cfg.epochs or done <= recipe.keep_first_epochs


def _clock(device: torch.device) -> float:
    """perf_counter after the device's queued work is done (CUDA runs asynchronously: without the sync, a step's
    split would charge the targets' and forward's GPU time to whichever later line waits for it)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


# --------------------------------------------------------------------------------------------- distributed
@dataclass
class Dist:
    """This process's place in a ``torchrun`` job (rank 0 of 1 without one). ``launched``: started by a launcher
    (torchrun, or the SLURM rendezvous of models.training.cluster), which sets ``WORLD_SIZE``: the process group and
    DDP are then used even for one process, so a one-GPU run exercises the same NCCL path as a multi-GPU one."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    launched: bool = False

    @classmethod
    def from_env(cls) -> Dist:
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)), "WORLD_SIZE" in os.environ)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()


def _setup(cfg: TrainConfig, dist: Dist) -> torch.device:
    device = resolve_device(cfg.device)
    if device.type == "cuda" and dist.launched:
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    if dist.launched and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    return device


# --------------------------------------------------------------------------------------------- loop
def train(cfg: TrainConfig, resume: str | Path | None = None) -> Path:
    """Run (or continue) training; returns the run folder. Bad input raises InputError before any compute."""
    dist = Dist.from_env()
    device = _setup(cfg, dist)
    _, scenes, per_epoch = training_scenes(cfg)
    init = None if cfg.init in ("scratch", "released") or resume else locate(cfg.init, CHECKPOINTS_DIR, RUNS_DIR,
                                                                              what="--init")
    if cfg.batch_size % dist.world or cfg.batch_size // dist.world < 2:
        raise InputError(f"--batch-size {cfg.batch_size}: must be a multiple of the {dist.world} process(es), "
                         "with ≥2 pairs per process (BatchNorm in the projector heads)")
    steps_per_epoch = per_epoch // cfg.batch_size
    run_dir = Path(resume) if resume else Path(cfg.runs_dir) / cfg.name
    if dist.main:
        # fail before any compute when results cannot go there (creates nothing)
        check_creatable(run_dir, "--runs-dir or --name")
    recipe = get_recipe(cfg.recipe)
    amp = cfg.amp and device.type == "cuda" and recipe.amp

    torch.manual_seed(cfg.seed)
    model_config = ModelConfig()
    model = ContrastiveModel(model_config, cfg.grad_checkpoint, recipe.encoder_batching)
    if cfg.init != "scratch" and not resume:
        from models.nvs_sqa.checkpoint import load_checkpoint

        ckpt = load_checkpoint(init)
        model.encoder.load_state_dict(ckpt.model.state_dict())
        log.info("initialised the encoder from %s", ckpt.info["path"])
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, amsgrad=True)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    start_epoch, step = 0, 0
    if resume:
        enc, state = load_latest(run_dir)
        model.encoder.load_state_dict(enc)
        model.projector.load_state_dict(state["projector"])
        opt.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        start_epoch, step = state["epoch"], state["step"]
        log.info("resuming %s at epoch %d, step %d", run_dir, start_epoch, step)
    elif dist.main:
        if (run_dir / "latest").exists():
            raise InputError(f"{run_dir}: already holds a run; use --resume {run_dir} or another --name")
        from models.results import stamp, write_json

        write_json(run_dir / "config.json", stamp(config=cfg.to_dict(), model=model_config.to_dict()))
    # One loader for all remaining epochs: workers keep preparing pairs across epoch ends (validation, saving).
    share = cfg.batch_size // dist.world
    todo = [b[dist.rank * share:(dist.rank + 1) * share]
            for e in range(start_epoch, cfg.epochs) for b in epoch_batches(cfg, per_epoch, e)]
    todo = todo[step - start_epoch * steps_per_epoch:]
    if not todo:
        log.info("%s: already trained for %d epochs; raise --epochs to continue", run_dir, cfg.epochs)
        return run_dir
    ddp = torch.nn.parallel.DistributedDataParallel(model) if dist.launched else model
    needed = tuple(w > 0 for w in cfg.weights)
    ds = PairDataset(scenes, cfg.pairs, cfg.seed, per_epoch, needed, recipe=recipe, batch_size=cfg.batch_size,
                     worker_targets=False)  # workers build the pairs only: batch_targets scores them
    val: list[dict] = []
    if dist.main and cfg.val_pairs:
        # ST-RRED is cheap, so it is validated even at weight 0; FovVideoVDP only when it is trained.
        vds = PairDataset(scenes, cfg.pairs, cfg.seed, cfg.val_pairs, (True,) * 4 + (needed[4],), VAL_STREAM,
                          recipe=recipe)  # each validation pair is its own batch (scored one by one)
        val = [x for b in step_loader(vds, [[i] for i in range(cfg.val_pairs)], cfg.workers, cfg.seed) for x in b]
    metrics = MetricsLog(run_dir / "metrics.jsonl", step if resume else None)
    weights = torch.tensor(cfg.weights, device=device)

    def save(epoch_to_continue: int) -> None:
        if dist.main:
            save_latest(run_dir, model_config.to_dict(), model.encoder.state_dict(), {
                "projector": model.projector.state_dict(), "optimizer": opt.state_dict(),
                "scaler": scaler.state_dict(), "rng": rng_state(), "epoch": epoch_to_continue, "step": step,
                "config": cfg.to_dict()})  # fmt: skip
            metrics.flush()
        dist.barrier()

    def end_of_epoch(done: int) -> None:
        """Validation, plot and the kept checkpoint after ``done`` epochs (main process)."""
        losses = [r["loss"] for r in metrics.rows if r["kind"] == "step" and r["epoch"] == done - 1]
        row = {"kind": "val", "step": step, "epoch": done, "train_loss": float(np.mean(losses))}
        if val:
            cos, tg = validate(model, val, device)
            row["corr"] = validation_correlations(cos, tg, TARGETS)
            shown = {k: v["pearson"] and round(v["pearson"], 3) for k, v in row["corr"].items()}
            log.info("epoch %d: train loss %.4f, validation Pearson %s", done, row["train_loss"], shown)
        metrics.add(row)
        if val:
            plot_validation(metrics.rows, run_dir / "val_correlation.png", TARGETS)
        if kept_epoch(done, cfg, recipe):
            write_encoder(run_dir / f"epoch_{done:04d}", model_config.to_dict(), model.encoder.state_dict())

    bar = None
    if dist.main:
        from tqdm import tqdm

        bar = tqdm(total=cfg.epochs * steps_per_epoch, initial=step, desc=run_dir.name, unit="step")
    t_wait = time.perf_counter()
    for batch in step_loader(ds, todo, cfg.workers, cfg.seed):
        epoch = step // steps_per_epoch
        t0 = _clock(device)
        data_s, seqs = t0 - t_wait, [(b["seq1"].to(device), b["seq2"].to(device)) for b in batch]
        targets = batch_targets(batch, recipe, needed, device, seqs).T  # (K, B), as upstream
        tt = _clock(device)
        with torch.autocast(device.type, enabled=amp):
            p1, p2 = ddp(seqs)
        per_head = head_losses(p1, p2, targets)
        loss = (per_head * weights).sum()
        t1 = _clock(device)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        t2 = _clock(device)
        step += 1
        per_head = per_head.detach()
        if dist.launched:  # log the mean over processes
            torch.distributed.all_reduce(per_head, op=torch.distributed.ReduceOp.AVG)
        row = {"kind": "step", "step": step, "epoch": epoch, "loss": float((per_head * weights).sum()),
               "head_loss": {n: (float(per_head[k]) if needed[k] else None) for k, n in enumerate(TARGETS)},
               "pairs": len(batch) * dist.world, "data_s": data_s, "targets_s": tt - t0, "forward_s": t1 - tt,
               "backward_s": t2 - t1,
               "worker_s": {k: sum(b["timings"][k] for b in batch) for k in ("load", "load_cpu")}}
        metrics.add(row)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.4f}", data=f"{data_s:.2f}s")
        at_end = step % steps_per_epoch == 0
        if at_end and dist.main:
            end_of_epoch(epoch + 1)
        asked = bool(cfg.stop_after_steps) and step == cfg.stop_after_steps
        stop = stop_requested(dist.world, asked)  # or a SLURM timeout/preemption signal: save here, then requeue
        if at_end or stop:
            save(epoch + 1 if at_end else epoch)
        if stop:
            why = "as asked (--stop-after-steps)" if asked else "on the scheduler's signal (timeout or preemption)"
            log.info("stopped at step %d %s; continue with --resume %s", step, why, run_dir)
            break
        t_wait = time.perf_counter()
    if bar is not None:
        bar.close()
    if dist.launched and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return run_dir
