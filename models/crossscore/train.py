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
import json
import logging
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict
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
from models.results import atomic_write_bytes, atomic_write_json, check_creatable, stamp
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


def _train(cfg: CrossScoreTrainConfig, run: Path, dev: torch.device, rank: int, world: int) -> Path:
    from tqdm import tqdm

    main = rank == 0
    set_threads(cfg.threads)
    items = discover_items(Path(cfg.data))
    check_creatable(run, "--runs-dir or --name")  # before any compute; creates nothing
    net = build_net(cfg).to(dev)
    model = net
    if world > 1:  # static_graph as upstream's DDPStrategy: tolerates trainable tensors a step does not use
        model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[dev.index] if dev.type == "cuda" else None,
                                                          static_graph=True)
    params = [p for p in net.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    use_amp = cfg.amp and dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    per_epoch = max(1, len(items) // (cfg.batch_size * world))
    total = cfg.steps or cfg.epochs * per_epoch
    start, targets_sum, targets_n = 0, 0.0, 0
    if cfg.resume:
        st = load_tensors(run / "state.pth")
        net.load_state_dict(st["model"])
        optim.load_state_dict(st["optimizer"])
        scaler.load_state_dict(st["scaler"])
        start = int(st["step"])
        targets_sum, targets_n = float(st["target_sum"]), int(st["target_n"])
        log.info("resuming %s at step %d", run, start)
    elif (run / "state.pth").exists():
        raise InputError(f"{run}: a run of this name exists; pass --resume to continue it or choose another --name")
    if main:
        atomic_write_json(run / "config.json", stamp(config=asdict(cfg), model=net.cfg.to_dict(), n_items=len(items),
                                                     steps_per_epoch=per_epoch, total_steps=total, processes=world,
                                                     trainable_parameters=net.n_trainable(), device=str(dev)))
    log.info("%d queries, %d steps (%d per epoch), %d trainable parameters, %s", len(items), total, per_epoch,
             net.n_trainable(), dev)
    net.train()
    window: list[tuple[float, float]] = []
    t0 = time.perf_counter()
    batches = prefetch((make_batch(items, cfg, s, rank, world) for s in range(start, total)), depth=2)
    bar = tqdm(range(start, total), initial=start, total=total, desc=f"train {cfg.name}", disable=cfg.quiet or not main)
    for step, batch in zip(bar, batches, strict=True):
        b = {k: (v.to(dev) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
        ctx = torch.autocast("cuda", dtype=torch.float16) if use_amp else nullcontext()
        with ctx:
            pred = model(b["query"], b["refs"], b["ref_valid"])["score_map"]
        loss = (pred.float() - b["target"]).abs().mean()
        optim.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optim)
        scaler.update()
        stats = torch.tensor([float(b["target"].sum()), b["target"].numel(), loss.item()], dtype=torch.float64)
        if world > 1:  # every process keeps the global numbers (the same state.pth on each)
            dist.all_reduce(stats)  # gloo/NCCL sum; the loss becomes the mean over processes below
        targets_sum += float(stats[0])
        targets_n += int(stats[1])
        window.append((float(stats[2]) / world, map_pearson(pred.detach(), b["target"])))
        done = step + 1
        if not main:
            continue
        if done % cfg.log_every == 0 or done == total:
            l1 = float(np.mean([w[0] for w in window]))
            rec = {"step": done, "epoch": step // per_epoch, "l1": l1, "psnr": psnr_from_l1(l1),
                   "pearson": float(np.nanmean([w[1] for w in window])), "seconds": round(time.perf_counter() - t0, 2)}
            _append_jsonl(run / "metrics.jsonl", rec)
            bar.set_postfix(l1=f"{l1:.4f}", r=f"{rec['pearson']:.3f}")
            window = []
        if done % cfg.fig_every == 0 or done == total:
            i = 0
            write_figure(run / "figures" / f"step_{done:06d}.png", to_hwc(batch["query"][i]),
                         pred[i].detach().float().cpu().numpy(),
                         [to_hwc(r) for r in (batch["refs"][i] if batch["refs"] is not None else [])],
                         batch["target"][i].numpy(), title=f"{cfg.name} step {done}")
        if done % cfg.save_every == 0 or done == total:
            _save_state(run, net, optim, scaler, done, targets_sum, targets_n)
    # the constant-map baseline of `test --baseline constant`: the mean training target
    meta = {"run": str(run), "steps": total, "n_ref": cfg.n_ref, "short_side": cfg.short_side, "crop": cfg.crop,
            "predict_short_side": min(cfg.short_side, cfg.crop) if cfg.crop > 0 else cfg.short_side,
            "train_target_mean": targets_sum / max(targets_n, 1)}
    if not main:
        return run / "model"
    save_model(run / "model", net, meta)
    if cfg.out_checkpoint:
        save_model(Path(cfg.out_checkpoint), net, meta)
    return run / "model"


def _append_jsonl(path: Path, rec: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:  # appended line by line: a crash loses at most the line being written
        f.write(json.dumps(rec) + "\n")


def _save_state(run: Path, net, optim, scaler, step: int, target_sum: float, target_n: int) -> None:
    buf = io.BytesIO()
    torch.save({"model": net.state_dict(), "optimizer": optim.state_dict(), "scaler": scaler.state_dict(),
                "step": step, "target_sum": target_sum, "target_n": target_n}, buf)
    atomic_write_bytes(run / "state.pth", buf.getvalue())
