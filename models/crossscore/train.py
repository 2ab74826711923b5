"""CrossScore training (upstream recipe by default); testing lives in :mod:`models.crossscore.evaluate`.

Training is exactly resumable: the batch of step ``s`` (shuffle order, crops, random references) is a pure
function of ``(seed, s)``, and ``runs/<name>/state.pth`` holds the model, optimiser, AMP scaler and step.
Every run writes ``runs/<name>/config.json``, ``metrics.jsonl`` (one JSON line per logged step), PNG figures
under ``figures/`` (instead of W&B) and the model folder ``model/`` (config.json + model.pth).

Several processes (``torchrun --nproc_per_node N crossscore.py train ...``; upstream: 2 GPUs x batch 24) train
one model with DistributedDataParallel (NCCL on CUDA, gloo on the CPU): ``--batch-size`` is per process, the
batch of step ``s`` is the same pure function of ``(seed, s)`` with N x batch-size queries, and process ``r``
takes the ``r``-th slice of it; gradients are averaged, so N processes give the single-process result of batch
N x batch-size (up to float summation order). Only rank 0 writes files.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from models.crossscore.checkpoint import load_model, load_tensors, save_model
from models.crossscore.data import Item, collate, discover_items, load_sample
from models.crossscore.evaluate import map_pearson
from models.crossscore.figures import to_hwc, write_figure
from models.crossscore.network import CrossScoreConfig, CrossScoreNet
from models.crossscore.options import CrossScoreTrainConfig
from models.errors import InputError
from models.frames import prefetch
from models.results import atomic_write_bytes, atomic_write_json, check_creatable, json_text, stamp
from models.runtime import resolve_device, set_threads
from models.ssim import psnr_from_l1

log = logging.getLogger(__name__)


def build_net(cfg: CrossScoreTrainConfig) -> CrossScoreNet:
    """A fresh network (backbone trainable only when ``tiny``), or ``cfg.init``'s weights to fine-tune."""
    torch.manual_seed(cfg.seed)  # the random parts (tiny backbone, decoder, head, table) are reproducible
    if cfg.init:
        net, _ = load_model(cfg.init, None)
        net.cfg.train_backbone = cfg.backbone == "tiny" or net.cfg.train_backbone
        net.backbone.requires_grad_(net.cfg.train_backbone)
        return net
    return CrossScoreNet(CrossScoreConfig(backbone=cfg.backbone, train_backbone=cfg.backbone == "tiny",
                                          seed=cfg.seed))


def _world() -> tuple[int, int, int]:
    """(rank, world size, local rank) of a ``torchrun`` process; (0, 1, 0) otherwise."""
    import os

    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def make_batch(items: Sequence[Item], cfg: CrossScoreTrainConfig, step: int, rank: int = 0,
               world: int = 1) -> dict[str, Any]:
    """Process ``rank``'s slice of the training batch of ``step`` (``world`` x batch-size queries): a pure
    function of (seed, step). Every process draws the whole batch so that the random streams agree."""
    size = cfg.batch_size * world
    per_epoch = max(1, len(items) // size)
    epoch, k = divmod(step, per_epoch)
    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
    idx = order[k * size:(k + 1) * size].tolist()
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    samples = [load_sample(items[i], cfg.n_ref, cfg.short_side, cfg.crop, seed=cfg.seed * 7919 + step, gen=gen)
               for i in idx]
    h = min(s.query.shape[1] for s in samples)
    w = min(s.query.shape[2] for s in samples)
    for s in samples:  # mixed resolutions: crop all to the smallest (top-left)
        s.query, s.refs = s.query[:, :h, :w], s.refs[..., :h, :w]
        s.target = s.target[:h, :w] if s.target is not None else None
    samples = samples[rank * cfg.batch_size:(rank + 1) * cfg.batch_size] if world > 1 else samples
    batch = collate(samples)
    if batch["target"] is None:
        raise InputError(f"{items[idx[0]].query}: no ground truth or SSIM target; training needs one per render")
    return batch


def train_crossscore(cfg: CrossScoreTrainConfig) -> Path:
    """Train (or resume) ``runs/<cfg.name>``; returns the model folder (under torchrun: every process)."""
    run = Path(cfg.runs_dir) / cfg.name
    rank, world, local = _world()
    dev = resolve_device(cfg.device)
    if world > 1:  # torchrun: one process per GPU (NCCL), or per CPU share (gloo)
        dev = torch.device("cuda", local) if dev.type == "cuda" else dev
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    try:
        return _train(cfg, run, dev, rank, world)
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


@dataclass
class _Run:
    """One training run in progress: its network (and DDP wrapper), optimiser, AMP scaler, schedule and the
    running sums of the training target (the constant-map baseline). ``step`` is where the loop starts."""

    cfg: CrossScoreTrainConfig
    folder: Path
    dev: torch.device
    rank: int
    world: int
    items: list[Item]
    net: CrossScoreNet
    model: torch.nn.Module
    optim: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    use_amp: bool
    per_epoch: int
    total: int
    step: int = 0
    target_sum: float = 0.0
    target_n: int = 0
    window: list[tuple[float, float]] = field(default_factory=list)  # (L1, Pearson) of the steps not yet logged


def _train(cfg: CrossScoreTrainConfig, run: Path, dev: torch.device, rank: int, world: int) -> Path:
    """Set up (or resume), run the steps (batches prepared one ahead in a thread), write the model."""
    from tqdm import tqdm

    r = _setup(cfg, run, dev, rank, world)
    r.net.train()
    t0 = time.perf_counter()
    batches = prefetch((make_batch(r.items, cfg, s, rank, world) for s in range(r.step, r.total)), depth=2)
    bar = tqdm(range(r.step, r.total), initial=r.step, total=r.total, desc=f"train {cfg.name}",
               disable=cfg.quiet or rank != 0)
    for step, batch in zip(bar, batches, strict=True):
        pred = _step(r, batch)
        if rank == 0:  # only rank 0 writes files
            _record(r, step + 1, batch, pred, bar, t0)
    return _finish(r)


def _setup(cfg: CrossScoreTrainConfig, run: Path, dev: torch.device, rank: int, world: int) -> _Run:
    """Data, network (DDP-wrapped under torchrun), optimiser and scaler; resumed from ``state.pth`` or new (a
    run of this name is never overwritten); rank 0 writes ``config.json``."""
    set_threads(cfg.threads)
    items = discover_items(Path(cfg.data))
    check_creatable(run, "--runs-dir or --name")  # before any compute; creates nothing
    net = build_net(cfg).to(dev)
    model: torch.nn.Module = net
    if world > 1:  # static_graph as upstream's DDPStrategy: tolerates trainable tensors a step does not use
        model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[dev.index] if dev.type == "cuda" else None,
                                                          static_graph=True)
    optim = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=cfg.lr,
                              weight_decay=cfg.weight_decay)
    use_amp = cfg.amp and dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    per_epoch = max(1, len(items) // (cfg.batch_size * world))
    r = _Run(cfg, run, dev, rank, world, items, net, model, optim, scaler, use_amp, per_epoch,
             cfg.steps or cfg.epochs * per_epoch)
    if cfg.resume:
        st = load_tensors(run / "state.pth")
        net.load_state_dict(st["model"])
        optim.load_state_dict(st["optimizer"])
        scaler.load_state_dict(st["scaler"])
        r.step, r.target_sum, r.target_n = int(st["step"]), float(st["target_sum"]), int(st["target_n"])
        log.info("resuming %s at step %d", run, r.step)
    elif (run / "state.pth").exists():
        raise InputError(f"{run}: a run of this name exists; pass --resume to continue it or choose another --name")
    if rank == 0:
        atomic_write_json(run / "config.json", stamp(config=asdict(cfg), model=net.cfg.to_dict(), n_items=len(items),
                                                     steps_per_epoch=per_epoch, total_steps=r.total, processes=world,
                                                     trainable_parameters=net.n_trainable(), device=str(dev)))
    log.info("%d queries, %d steps (%d per epoch), %d trainable parameters, %s", len(items), r.total, per_epoch,
             net.n_trainable(), dev)
    return r


def _step(r: _Run, batch: dict[str, Any]) -> torch.Tensor:
    """One optimiser step on ``batch``; adds its targets and (L1, Pearson) to the run's sums (over all
    processes). Returns the predicted maps."""
    b = {k: (v.to(r.dev) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
    with torch.autocast("cuda", dtype=torch.float16) if r.use_amp else nullcontext():
        pred = r.model(b["query"], b["refs"], b["ref_valid"])["score_map"]
    loss = (pred.float() - b["target"]).abs().mean()
    r.optim.zero_grad(set_to_none=True)
    r.scaler.scale(loss).backward()
    r.scaler.step(r.optim)
    r.scaler.update()
    stats = torch.tensor([float(b["target"].sum()), b["target"].numel(), loss.item()], dtype=torch.float64)
    if r.world > 1:  # every process keeps the global numbers (the same state.pth on each)
        dist.all_reduce(stats)  # gloo/NCCL sum; the loss becomes the mean over processes below
    r.target_sum += float(stats[0])
    r.target_n += int(stats[1])
    r.window.append((float(stats[2]) / r.world, map_pearson(pred.detach(), b["target"])))
    return pred


def _record(r: _Run, done: int, batch: dict[str, Any], pred: torch.Tensor, bar: Any, t0: float) -> None:
    """After step ``done`` (1-based): a metrics line, a figure and ``state.pth``, each at its interval and at
    the last step."""
    cfg, last = r.cfg, done == r.total
    if done % cfg.log_every == 0 or last:
        l1 = float(np.mean([w[0] for w in r.window]))
        rec = {"step": done, "epoch": (done - 1) // r.per_epoch, "l1": l1, "psnr": psnr_from_l1(l1),
               "pearson": float(np.nanmean([w[1] for w in r.window])), "seconds": round(time.perf_counter() - t0, 2)}
        _append_jsonl(r.folder / "metrics.jsonl", rec)
        bar.set_postfix(l1=f"{l1:.4f}", r=f"{rec['pearson']:.3f}")
        r.window.clear()
    if done % cfg.fig_every == 0 or last:
        write_figure(r.folder / "figures" / f"step_{done:06d}.png", to_hwc(batch["query"][0]),
                     pred[0].detach().float().cpu().numpy(),
                     [to_hwc(ref) for ref in (batch["refs"][0] if batch["refs"] is not None else [])],
                     batch["target"][0].numpy(), title=f"{cfg.name} step {done}")
    if done % cfg.save_every == 0 or last:
        _save_state(r.folder, r.net, r.optim, r.scaler, done, r.target_sum, r.target_n)


def _finish(r: _Run) -> Path:
    """Rank 0 writes the model folder (and ``--out-checkpoint``), with what the constant-map baseline and
    predict need: the mean training target and the size trained at."""
    cfg = r.cfg
    meta = {"run": str(r.folder), "steps": r.total, "n_ref": cfg.n_ref, "short_side": cfg.short_side,
            "crop": cfg.crop, "predict_short_side": min(cfg.short_side, cfg.crop) if cfg.crop > 0 else cfg.short_side,
            "train_target_mean": r.target_sum / max(r.target_n, 1)}
    if r.rank == 0:
        save_model(r.folder / "model", r.net, meta)
        if cfg.out_checkpoint:
            save_model(Path(cfg.out_checkpoint), r.net, meta)
    return r.folder / "model"


def _append_jsonl(path: Path, rec: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:  # appended line by line: a crash loses at most the line being written
        f.write(json_text(rec, indent=None) + "\n")


def _save_state(run: Path, net, optim, scaler, step: int, target_sum: float, target_n: int) -> None:
    buf = io.BytesIO()
    torch.save({"model": net.state_dict(), "optimizer": optim.state_dict(), "scaler": scaler.state_dict(),
                "step": step, "target_sum": target_sum, "target_n": target_n}, buf)
    atomic_write_bytes(run / "state.pth", buf.getvalue())
