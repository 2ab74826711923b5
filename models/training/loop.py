"""The training loop of train.py: self-supervised contrastive training of the NVS-SQA encoder (recipe:
../shared/specs/nvs-sqa.md; settings: models.training.config; model and loss: models.training.contrastive).

Total loss = Σ w_k · loss_k over the five heads; Adam (amsgrad) lr 1e-3; AMP on CUDA (not under
``--recipe upstream``: fp32 as the authors); optional gradient checkpointing of the encoder; DDP under
``torchrun`` (NCCL on GPUs, gloo on CPU). Seeded: the same config and seed give the same weights bit for bit on
CPU, with or without an interruption and ``--resume`` (see models.training.pairs for the data side).
Checkpoints: ``latest/`` every epoch (upstream's "realtime" one) and ``epoch_NNNN/`` kept by
:func:`kept_epoch` (every ``--save-every``, the last, and under ``--recipe upstream`` also epochs 1–4).

A run is a :class:`Trainer`, its state explicit, driven by :func:`train`: set up (checks, device, model,
optimizer), :meth:`~Trainer.restore` (``--resume``) or start, :meth:`~Trainer.prepare` the data, then
:meth:`~Trainer.train_step` per step and, at each epoch end or stop, :meth:`~Trainer.end_of_epoch` (validation,
plot, kept checkpoint) and :meth:`~Trainer.save` (``latest/``).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from consts import CHECKPOINTS_DIR, RUNS_DIR
from models.errors import InputError
from models.nvs_sqa import ModelConfig
from models.nvs_sqa.checkpoint import load_checkpoint
from models.results import check_creatable, stamp, write_json
from models.runtime import locate, resolve_device
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
from models.training.stop import stop_requested
from models.training.targets import TARGETS, Recipe, get_recipe

log = logging.getLogger(__name__)


def kept_epoch(done: int, cfg: TrainConfig, recipe: Recipe) -> bool:
    """Whether the checkpoint after ``done`` epochs is kept as ``epoch_NNNN/`` (``latest/`` is written anyway):
    every ``--save-every`` epochs and the last; the authors' code also keeps epochs 1..recipe.keep_first_epochs."""
    return done % cfg.save_every == 0 or done == cfg.epochs or done <= recipe.keep_first_epochs


def _clock(device: torch.device) -> float:
    """perf_counter after this thread's queued work on the device is done (CUDA runs asynchronously: without the
    sync, a step's split would charge the targets' and forward's GPU time to whichever later line waits for it).
    Only the current stream: targets computed ahead on their own stream (:class:`TargetsAhead`) are not waited for."""
    if device.type == "cuda":
        torch.cuda.current_stream(device).synchronize()
    return time.perf_counter()


class TargetsAhead:
    """A batch's sequences on the device and its targets, computed on a background thread (on CUDA its own stream)
    while the encoder trains on the previous batch. The targets are pure functions of the pairs, so the values, and
    the run, are those computed in line; only the waiting goes."""

    def __init__(self, trainer: Trainer) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.trainer, self.pool = trainer, ThreadPoolExecutor(1, thread_name_prefix="targets")
        self.stream = torch.cuda.Stream(trainer.device) if trainer.device.type == "cuda" else None

    def submit(self, batch: list[dict]):  # noqa: ANN201 - a Future of (seqs, targets, seconds)
        return self.pool.submit(self._compute, batch)

    def _compute(self, batch: list[dict]) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor, float]:
        from contextlib import nullcontext

        t0, tr = time.perf_counter(), self.trainer
        with torch.cuda.stream(self.stream) if self.stream is not None else nullcontext():
            seqs, targets = tr.targets_of(batch)
            if self.stream is not None:
                self.stream.synchronize()  # this thread waits; the training stream does not
        return seqs, targets, time.perf_counter() - t0

    def take(self, future) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor, float]:  # noqa: ANN001
        """The result, its tensors handed to the training stream (not reused while its work is queued)."""
        seqs, targets, seconds = future.result()
        if self.stream is not None:
            current = torch.cuda.current_stream(self.trainer.device)
            for t in (targets, *(x for pair in seqs for x in pair)):
                t.record_stream(current)
        return seqs, targets, seconds

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


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
        """From the launcher's environment (RANK, WORLD_SIZE, LOCAL_RANK); rank 0 of 1 without one."""
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)), "WORLD_SIZE" in os.environ)

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes the run folder."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every process (a no-op for one)."""
        if self.world > 1:
            torch.distributed.barrier()


def setup_device(cfg: TrainConfig, dist: Dist) -> torch.device:
    """The device of this process (its own GPU under a launcher), the process group when launched, the threads."""
    device = resolve_device(cfg.device)
    if device.type == "cuda" and dist.launched:
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    if dist.launched and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    return device


# --------------------------------------------------------------------------------------------- trainer
class Trainer:
    """One training run: its settings, processes, device, model, optimizer, data, metrics and step counter, and
    the steps that move it on. Only the main process (rank 0) writes files."""

    def __init__(self, cfg: TrainConfig, resume: str | Path | None = None, overlap: bool | None = None) -> None:
        """Check the inputs and build the model and optimizer; bad input raises InputError before any compute.
        ``overlap``: compute each batch's targets while the encoder trains on the previous one (None: on CUDA, where
        the targets' small kernels leave the GPU room; on the CPU both would share the same cores)."""
        self.cfg, self.resume, self.dist = cfg, resume, Dist.from_env()
        self.device = setup_device(cfg, self.dist)
        self.overlap = self.device.type == "cuda" if overlap is None else overlap
        _, self.scenes, self.per_epoch = training_scenes(cfg)
        init = None if cfg.init in ("scratch", "released") or resume else locate(cfg.init, CHECKPOINTS_DIR, RUNS_DIR,
                                                                              what="`init`")
        if cfg.batch_size % self.dist.world or cfg.batch_size // self.dist.world < 2:
            raise InputError(f"`batch_size`={cfg.batch_size}: must be a multiple of the {self.dist.world} "
                             "process(es), with ≥2 pairs per process (BatchNorm in the projector heads)")
        self.steps_per_epoch = self.per_epoch // cfg.batch_size
        self.run_dir = Path(resume) if resume else Path(cfg.runs_dir) / cfg.name
        if self.dist.main:  # fail before any compute when results cannot go there (creates nothing)
            check_creatable(self.run_dir, "`runs_dir` or `name`")
        self.recipe = get_recipe(cfg.recipe)
        self.amp = cfg.amp and self.device.type == "cuda" and self.recipe.amp
        self.needed = tuple(w > 0 for w in cfg.weights)  # a zero loss weight: that target is not computed
        self.model_config = ModelConfig()
        self.model = self._build_model(init)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, amsgrad=True)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.start_epoch, self.step = 0, 0

    def _build_model(self, init: Path | None) -> ContrastiveModel:
        """The seeded model on the device; its encoder from ``--init`` (released, or a checkpoint folder)."""
        torch.manual_seed(self.cfg.seed)
        model = ContrastiveModel(self.model_config, self.cfg.grad_checkpoint, self.recipe.encoder_batching)
        if self.cfg.init != "scratch" and not self.resume:
            ckpt = load_checkpoint(init)
            model.encoder.load_state_dict(ckpt.model.state_dict())
            log.info("initialised the encoder from %s", ckpt.info["path"])
        return model.to(self.device)

    def restore(self) -> None:
        """Continue the resumed run where its ``latest/`` stopped (weights, projector heads, optimizer, scaler, RNG,
        epoch, step); or start a new run folder with its config.json (refused when it already holds a run)."""
        if self.resume:
            enc, state = load_latest(self.run_dir)
            self.model.encoder.load_state_dict(enc)
            self.model.projector.load_state_dict(state["projector"])
            self.opt.load_state_dict(state["optimizer"])
            self.scaler.load_state_dict(state["scaler"])
            set_rng_state(state["rng"])
            self.start_epoch, self.step = state["epoch"], state["step"]
            log.info("resuming %s at epoch %d, step %d", self.run_dir, self.start_epoch, self.step)
        elif self.dist.main:
            if (self.run_dir / "latest").exists():
                raise InputError(f"{self.run_dir}: already holds a run; use `resume`={self.run_dir} or another `name`")
            write_json(self.run_dir / "config.json",
                       stamp(config=self.cfg.to_dict(), model=self.model_config.to_dict()))

    def remaining_batches(self) -> list[list[int]]:
        """This process's share of the pair ids of every step still to train, in training order."""
        share, rank = self.cfg.batch_size // self.dist.world, self.dist.rank
        todo = [b[rank * share:(rank + 1) * share] for e in range(self.start_epoch, self.cfg.epochs)
                for b in epoch_batches(self.cfg, self.per_epoch, e)]  # fmt: skip
        return todo[self.step - self.start_epoch * self.steps_per_epoch:]

    def prepare(self) -> None:
        """The DDP wrapper, the training pairs, the validation pairs and their targets, and the metrics log."""
        self.ddp = torch.nn.parallel.DistributedDataParallel(self.model) if self.dist.launched else self.model
        # the batch size: upstream's crop is one per batch
        self.data = PairDataset(self.scenes, self.cfg.pairs, self.cfg.seed, self.per_epoch, recipe=self.recipe,
                                batch_size=self.cfg.batch_size)
        self.val, self.val_targets = self._validation_pairs()
        self.metrics = MetricsLog(self.run_dir / "metrics.jsonl", self.step if self.resume else None)
        self.weights = torch.tensor(self.cfg.weights, device=self.device)

    def _validation_pairs(self) -> tuple[list[dict], np.ndarray]:
        """The held-out pairs of the main process (their own random stream; each pair its own batch, so its own
        crop) and their targets (N, 5), scored once, as the training batches are, on the training device."""
        if not (self.dist.main and self.cfg.val_pairs):
            return [], np.zeros((0, len(TARGETS)), np.float32)
        n = self.cfg.val_pairs
        vds = PairDataset(self.scenes, self.cfg.pairs, self.cfg.seed, n, VAL_STREAM, recipe=self.recipe)
        val = [x for b in step_loader(vds, [[i] for i in range(n)], self.cfg.workers, self.cfg.seed) for x in b]
        needed = (True,) * 4 + (self.needed[4],)  # ST-RRED is cheap, so validated even at weight 0; FovVideoVDP not
        return val, batch_targets(val, self.recipe, needed, self.device).cpu().numpy()

    def targets_of(self, batch: list[dict]) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
        """A batch's sequences on the device and its targets (K, B), as upstream lays them out."""
        seqs = [(b["seq1"].to(self.device), b["seq2"].to(self.device)) for b in batch]
        return seqs, batch_targets(batch, self.recipe, self.needed, self.device, seqs).T

    def train_step(self, batch: list[dict], t_wait: float, ahead: tuple | None = None) -> dict:
        """One optimisation step on this process's pairs (``t_wait``: when the loop began waiting for them; ``ahead``:
        (seqs, targets, seconds) computed beforehand by :class:`TargetsAhead`, else computed here); adds and returns
        its metrics row (head losses averaged over the processes)."""
        device, epoch = self.device, self.step // self.steps_per_epoch
        t0 = _clock(device)
        data_s = t0 - t_wait
        seqs, targets = ahead[:2] if ahead is not None else self.targets_of(batch)
        tt = _clock(device)
        with torch.autocast(device.type, enabled=self.amp):
            p1, p2 = self.ddp(seqs)
        per_head = head_losses(p1, p2, targets)
        loss = (per_head * self.weights).sum()
        t1 = _clock(device)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        t2 = _clock(device)
        self.step += 1
        per_head = per_head.detach()
        if self.dist.launched:  # log the mean over processes
            torch.distributed.all_reduce(per_head, op=torch.distributed.ReduceOp.AVG)
        row = {"kind": "step", "step": self.step, "epoch": epoch, "loss": float((per_head * self.weights).sum()),
               "head_loss": {n: (float(per_head[k]) if self.needed[k] else None) for k, n in enumerate(TARGETS)},
               "pairs": len(batch) * self.dist.world, "data_s": data_s, "targets_s": tt - t0, "forward_s": t1 - tt,
               "backward_s": t2 - t1, **({"targets_ahead_s": ahead[2]} if ahead is not None else {}),
               "worker_s": {k: sum(b["timings"][k] for b in batch) for k in ("load", "load_cpu")}}  # fmt: skip
        self.metrics.add(row)
        return row

    def after_step(self) -> bool:
        """At an epoch end: validation and checkpoints; on a stop (``stop_after_steps``, or the scheduler's signal:
        then the job requeues itself) ``latest/`` is saved here. Returns whether to stop."""
        epoch = (self.step - 1) // self.steps_per_epoch
        at_end = self.step % self.steps_per_epoch == 0
        if at_end and self.dist.main:
            self.end_of_epoch(epoch + 1)
        asked = bool(self.cfg.stop_after_steps) and self.step == self.cfg.stop_after_steps
        stop = stop_requested(self.dist.world, asked)
        if at_end or stop:
            self.save(epoch + 1 if at_end else epoch)
        if stop:
            why = "as asked (--stop-after-steps)" if asked else "on the scheduler's signal (timeout or preemption)"
            log.info("stopped at step %d %s; continue with --resume %s", self.step, why, self.run_dir)
        return stop

    def end_of_epoch(self, done: int) -> None:
        """Validation, plot and the kept checkpoint after ``done`` epochs (main process)."""
        losses = [r["loss"] for r in self.metrics.rows if r["kind"] == "step" and r["epoch"] == done - 1]
        row = {"kind": "val", "step": self.step, "epoch": done, "train_loss": float(np.mean(losses))}
        if self.val:
            cos = validate(self.model, self.val, self.device)
            row["corr"] = validation_correlations(cos, self.val_targets, TARGETS)
            shown = {k: v["pearson"] and round(v["pearson"], 3) for k, v in row["corr"].items()}
            log.info("epoch %d: train loss %.4f, validation Pearson %s", done, row["train_loss"], shown)
        self.metrics.add(row)
        if self.val:
            plot_validation(self.metrics.rows, self.run_dir / "val_correlation.png", TARGETS)
        if kept_epoch(done, self.cfg, self.recipe):
            write_encoder(self.run_dir / f"epoch_{done:04d}", self.model_config.to_dict(),
                          self.model.encoder.state_dict())

    def save(self, epoch_to_continue: int) -> None:
        """``latest/`` (encoder + everything a resume needs) and metrics.jsonl, by the main process; all wait."""
        if self.dist.main:
            save_latest(self.run_dir, self.model_config.to_dict(), self.model.encoder.state_dict(), {
                "projector": self.model.projector.state_dict(), "optimizer": self.opt.state_dict(),
                "scaler": self.scaler.state_dict(), "rng": rng_state(), "epoch": epoch_to_continue,
                "step": self.step, "config": self.cfg.to_dict()})  # fmt: skip
            self.metrics.flush()
        self.dist.barrier()

    def run(self, todo: list[list[int]]) -> None:
        """Train the steps of ``todo``: one DataLoader for all of them, so workers keep preparing pairs across
        epoch ends (validation, saving); a progress bar on the main process."""
        bar = tqdm(total=self.cfg.epochs * self.steps_per_epoch, initial=self.step, desc=self.run_dir.name,
                   unit="step") if self.dist.main else None  # fmt: skip
        ahead = TargetsAhead(self) if self.overlap else None
        try:
            for batch, t_wait, done in self._batches(todo, ahead):
                row = self.train_step(batch, t_wait, None if done is None else ahead.take(done))  # type: ignore[union-attr]
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{row['loss']:.4f}", data=f"{row['data_s']:.2f}s")
                if self.after_step():
                    break
        finally:
            if ahead is not None:
                ahead.close()
            if bar is not None:
                bar.close()

    def _batches(self, todo: list[list[int]], ahead: TargetsAhead | None):  # noqa: ANN202 - a generator
        """(batch, when the wait for it began, its targets' Future or None), in order. With ``ahead``, the next
        batch is taken from the loader and its targets started before this one is handed out (its data wait is
        timed then: the loader's workers have usually prepared it long before)."""
        loader = iter(step_loader(self.data, todo, self.cfg.workers, self.cfg.seed))
        t_wait = time.perf_counter()
        if ahead is None:
            for batch in loader:
                yield batch, t_wait, None
                t_wait = time.perf_counter()
            return
        batch = next(loader, None)
        waited = time.perf_counter() - t_wait
        done = None if batch is None else ahead.submit(batch)
        while batch is not None:
            t_next = time.perf_counter()
            nxt = next(loader, None)
            next_wait = time.perf_counter() - t_next
            nxt_done = None if nxt is None else ahead.submit(nxt)
            yield batch, time.perf_counter() - waited, done
            batch, done, waited = nxt, nxt_done, next_wait

    def close(self) -> None:
        """Leave the process group (when this run joined one)."""
        if self.dist.launched and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def train(cfg: TrainConfig, resume: str | Path | None = None, overlap: bool | None = None) -> Path:
    """Run (or continue) training; returns the run folder. Bad input raises InputError before any compute.
    ``overlap``: see :class:`Trainer`."""
    trainer = Trainer(cfg, resume, overlap)
    trainer.restore()
    todo = trainer.remaining_batches()
    if not todo:
        log.info("%s: already trained for %d epochs; raise --epochs to continue", trainer.run_dir, cfg.epochs)
        return trainer.run_dir
    trainer.prepare()
    trainer.run(todo)
    trainer.close()
    return trainer.run_dir
