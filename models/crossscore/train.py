"""CrossScore training (upstream recipe by default) and testing (L1, pixel Pearson, PSNR from L1, SRCC).

Training is exactly resumable: the batch of step ``s`` (shuffle order, crops, random references) is a pure
function of ``(seed, s)``, and ``runs/<name>/state.pth`` holds the model, optimiser, AMP scaler and step.
Every run writes ``runs/<name>/config.json``, ``metrics.jsonl`` (one JSON line per logged step), PNG figures
under ``figures/`` (instead of W&B) and the model folder ``model/`` (config.json + model.pth).
"""

from __future__ import annotations

import io
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from consts import CROSSSCORE_N_REF, CROSSSCORE_TRAIN_CROP, CROSSSCORE_TRAIN_SHORT_SIDE, RUNS_DIR
from models.crossscore.checkpoint import checkpoint_meta, load_model, load_tensors, save_model
from models.crossscore.data import Item, batches_by_size, collate, discover_items, load_sample
from models.crossscore.figures import to_hwc, write_figure
from models.crossscore.network import CrossScoreConfig, CrossScoreNet
from models.errors import InputError
from models.frames import prefetch
from models.results import atomic_write_bytes, atomic_write_json, stamp
from models.runtime import resolve_device
from models.ssim import psnr_from_l1
from models.stats import pearson

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Options of one CrossScore training run (all flags of ``crossscore.py train``)."""

    data: str = ""  # dataset root (upstream or simple layout, see models/crossscore_data.py)
    name: str = "crossscore"  # run folder <runs_dir>/<name>/
    runs_dir: str = str(RUNS_DIR)  # parent folder of the run folders
    backbone: str = "facebook/dinov2-small"  # "tiny" (random, trainable) | transformers folder | cached hub id
    init: str | None = None  # start from this checkpoint (folder or upstream .ckpt) instead of a fresh head
    n_ref: int = CROSSSCORE_N_REF  # references per query; 0 = the no-reference variant
    short_side: int = CROSSSCORE_TRAIN_SHORT_SIDE  # resize short side first (bilinear, antialias)
    crop: int = CROSSSCORE_TRAIN_CROP  # random square crop
    batch_size: int = 24  # upstream: 24 per GPU
    lr: float = 5e-4  # AdamW
    weight_decay: float = 0.01
    epochs: int = 9
    steps: int = 0  # stop after this many steps (0 = epochs × steps per epoch)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # torch CPU threads (0 = torch's default; 1 is fastest on a busy 2-core machine)
    amp: bool = True  # fp16 autocast + GradScaler on CUDA (ignored on CPU)
    log_every: int = 10
    fig_every: int = 200
    save_every: int = 100
    resume: bool = False  # continue runs/<name>/state.pth exactly
    out_checkpoint: str | None = None  # also write the final model folder here (e.g. checkpoints/crossscore-tiny)


def build_net(cfg: TrainConfig) -> CrossScoreNet:
    torch.manual_seed(cfg.seed)  # the random parts (tiny backbone, decoder, head, table) are reproducible
    if cfg.init:
        net, _ = load_model(cfg.init, None)
        net.cfg.train_backbone = cfg.backbone == "tiny" or net.cfg.train_backbone
        net.backbone.requires_grad_(net.cfg.train_backbone)
        return net
    return CrossScoreNet(CrossScoreConfig(backbone=cfg.backbone, train_backbone=cfg.backbone == "tiny",
                                          seed=cfg.seed))


def make_batch(items: Sequence[Item], cfg: TrainConfig, step: int) -> dict[str, Any]:
    """The training batch of ``step``: a pure function of (seed, step)."""
    per_epoch = max(1, len(items) // cfg.batch_size)
    epoch, k = divmod(step, per_epoch)
    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
    idx = order[k * cfg.batch_size:(k + 1) * cfg.batch_size].tolist()
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    samples = [load_sample(items[i], cfg.n_ref, cfg.short_side, cfg.crop, seed=cfg.seed * 7919 + step, gen=gen)
               for i in idx]
    h = min(s.query.shape[1] for s in samples)
    w = min(s.query.shape[2] for s in samples)
    for s in samples:  # mixed resolutions: crop all to the smallest (top-left)
        s.query, s.refs = s.query[:, :h, :w], s.refs[..., :h, :w]
        s.target = s.target[:h, :w] if s.target is not None else None
    batch = collate(samples)
    if batch["target"] is None:
        raise InputError(f"{items[idx[0]].query}: no ground truth or SSIM target; training needs one per render")
    return batch


def map_pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pixel Pearson correlation of two maps (nan when either is constant)."""
    return pearson(a.detach().double().flatten().cpu().numpy(), b.detach().double().flatten().cpu().numpy())


def train(cfg: TrainConfig, progress: bool = True) -> Path:
    """Train (or resume) ``runs/<cfg.name>``; returns the model folder."""
    from tqdm import tqdm

    run = Path(cfg.runs_dir) / cfg.name
    dev = resolve_device(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    items = discover_items(Path(cfg.data))
    net = build_net(cfg).to(dev)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    use_amp = cfg.amp and dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    per_epoch = max(1, len(items) // cfg.batch_size)
    total = cfg.steps or cfg.epochs * per_epoch
    start, targets_sum, targets_n = 0, 0.0, 0
    if cfg.resume:
        st = load_tensors(run / "state.pth")
        net.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        scaler.load_state_dict(st["scaler"])
        start = int(st["step"])
        targets_sum, targets_n = float(st["target_sum"]), int(st["target_n"])
        log.info("resuming %s at step %d", run, start)
    elif (run / "state.pth").exists():
        raise InputError(f"{run}: a run of this name exists; pass --resume to continue it or choose another --name")
    atomic_write_json(run / "config.json", stamp(config=asdict(cfg), model=net.cfg.to_dict(), n_items=len(items),
                                                 steps_per_epoch=per_epoch, total_steps=total,
                                                 trainable_parameters=net.n_trainable(), device=str(dev)))
    log.info("%d queries, %d steps (%d per epoch), %d trainable parameters, %s", len(items), total, per_epoch,
             net.n_trainable(), dev)
    net.train()
    window: list[tuple[float, float]] = []
    t0 = time.perf_counter()
    batches = prefetch((make_batch(items, cfg, s) for s in range(start, total)), depth=2)
    bar = tqdm(range(start, total), initial=start, total=total, desc=f"train {cfg.name}", disable=not progress)
    for step, batch in zip(bar, batches, strict=True):
        b = {k: (v.to(dev) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
        ctx = torch.autocast("cuda", dtype=torch.float16) if use_amp else nullcontext()
        with ctx:
            pred = net(b["query"], b["refs"], b["ref_valid"])["score_map"]
        loss = (pred.float() - b["target"]).abs().mean()
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        targets_sum += float(b["target"].sum())
        targets_n += b["target"].numel()
        window.append((loss.item(), map_pearson(pred.detach(), b["target"])))
        done = step + 1
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
            _save_state(run, net, opt, scaler, done, targets_sum, targets_n)
    # the constant-map baseline of `test --baseline constant`: the mean training target
    meta = {"run": str(run), "steps": total, "n_ref": cfg.n_ref, "short_side": cfg.short_side, "crop": cfg.crop,
            "predict_short_side": min(cfg.short_side, cfg.crop) if cfg.crop > 0 else cfg.short_side,
            "train_target_mean": targets_sum / max(targets_n, 1)}
    save_model(run / "model", net, meta)
    if cfg.out_checkpoint:
        save_model(Path(cfg.out_checkpoint), net, meta)
    return run / "model"


def _append_jsonl(path: Path, rec: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:  # appended line by line: a crash loses at most the line being written
        f.write(json.dumps(rec) + "\n")


def _save_state(run: Path, net, opt, scaler, step: int, target_sum: float, target_n: int) -> None:
    buf = io.BytesIO()
    torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "scaler": scaler.state_dict(),
                "step": step, "target_sum": target_sum, "target_n": target_n}, buf)
    atomic_write_bytes(run / "state.pth", buf.getvalue())


# --------------------------------------------------------------------------------------------- testing
Predictor = Callable[[dict[str, Any]], torch.Tensor]


def net_predictor(net: CrossScoreNet, dev: torch.device, fp16: bool = False) -> Predictor:
    def predict(batch: dict[str, Any]) -> torch.Tensor:
        ctx = torch.autocast("cuda", dtype=torch.float16) if fp16 and dev.type == "cuda" else nullcontext()
        with torch.no_grad(), ctx:
            refs = batch["refs"].to(dev) if batch["refs"] is not None else None
            valid = batch["ref_valid"].to(dev) if batch["ref_valid"] is not None else None
            return net(batch["query"].to(dev), refs, valid)["score_map"].float().cpu()
    return predict


def constant_predictor(value: float, patch: int = 14) -> Predictor:
    """The constant-map baseline: every pixel of every image gets ``value``."""
    def predict(batch: dict[str, Any]) -> torch.Tensor:
        b, _, h, w = batch["query"].shape
        return torch.full((b, h - h % patch, w - w % patch), float(value))
    return predict


def evaluate(predict: Predictor, items: Sequence[Item], n_ref: int, short_side: int, batch_size: int = 8,
             seed: int | None = None, progress: bool = True) -> list[dict[str, Any]]:
    """One row per query: true and predicted mean SSIM, map L1 and pixel Pearson correlation."""
    from tqdm import tqdm

    loaded = prefetch(((it, load_sample(it, n_ref, short_side, 0, seed)) for it in items), depth=4)
    rows = []
    with tqdm(total=len(items), desc="test", disable=not progress) as bar:
        for group in batches_by_size(loaded, batch_size):
            batch = collate([s for _, s in group])
            if batch["target"] is None:
                raise InputError(f"{group[0][0].query}: no ground truth or SSIM target; test needs one per render")
            pred = predict(batch)
            for (it, _s), p, t in zip(group, pred, batch["target"], strict=True):
                rows.append({"dataset": it.dataset, "method": it.method, "scene": it.scene, "image": str(it.query),
                             "true_ssim": float(t.mean()), "pred_ssim": float(p.mean()),
                             "l1": float((p - t).abs().mean()), "pearson": map_pearson(p, t)})
            bar.update(len(group))
    return rows


def summarise(rows: Sequence[dict[str, Any]], key: Callable[[dict[str, Any]], tuple[str, str]] | None = None,
              overall: bool = True) -> list[dict[str, Any]]:
    """Per group (default: dataset, method) and overall: n, L1, PSNR from L1, mean pixel Pearson, SRCC of the
    per-image means (nan for a constant prediction, whose correlation is undefined)."""
    from scipy.stats import spearmanr

    key = key or (lambda r: (r["dataset"], r["method"]))
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(key(r), []).append(r)
    if overall:
        groups[("all", "all")] = list(rows)
    out = []
    for (ds, m), rs in groups.items():
        l1 = float(np.mean([r["l1"] for r in rs]))
        pr = [r["pearson"] for r in rs if not math.isnan(r["pearson"])]
        pred, true = [r["pred_ssim"] for r in rs], [r["true_ssim"] for r in rs]
        srcc = float(spearmanr(pred, true).statistic) if len(rs) > 2 and np.ptp(pred) > 0 else float("nan")
        out.append({"dataset": ds, "method": m, "n": len(rs), "l1": l1, "psnr": psnr_from_l1(l1),
                    "pearson": float(np.mean(pr)) if pr else float("nan"), "srcc": srcc,
                    "true_ssim": float(np.mean(true)), "pred_ssim": float(np.mean(pred))})
    return out


def make_predictor(checkpoint: str, baseline: str = "none", backbone: str | None = None, device: str = "cpu",
                   n_ref: int = -1) -> tuple[Predictor, int, dict[str, Any]]:
    """The predictor of ``test``: a checkpoint's network, or (``baseline="constant"``) its mean training target
    as a constant map. Returns (predictor, references per query, provenance)."""
    net, info = load_model(checkpoint, backbone)
    meta = checkpoint_meta(checkpoint)
    n = n_ref if n_ref >= 0 else int(meta.get("n_ref", CROSSSCORE_N_REF))
    if baseline == "constant":
        if "train_target_mean" not in meta:
            raise InputError(f"{checkpoint}: no train_target_mean in config.json; the constant baseline needs a "
                             "checkpoint written by crossscore.py train")
        value = float(meta["train_target_mean"])
        return constant_predictor(value, net.patch), n, {**info, "baseline": "constant", "constant": value}
    if baseline != "none":
        raise InputError(f"--baseline {baseline}: unknown; use none or constant")
    dev = resolve_device(device)
    return net_predictor(net.to(dev), dev, fp16=True), n, {**info, "device": str(dev)}
