"""Self-supervised contrastive training of the NVS-SQA encoder (recipe: ../shared/specs/nvs-sqa.md).

Both sequences of a pair go through the encoder (models.nvs_sqa.SequenceModel) -> 384-d each -> five projector
heads (Linear 384→384, BatchNorm1d, ReLU, Linear 384→384). Head k: loss_k = L1(cos(z1_k, z2_k), target_k),
total = Σ w_k · loss_k. Adam (amsgrad) lr 1e-3; AMP on CUDA (not under ``--recipe upstream``: fp32 as the
authors); optional gradient checkpointing of the encoder;
DDP under ``torchrun`` (NCCL on GPUs, gloo on CPU). Seeded: the same config and seed give the same weights
bit for bit on CPU, with or without an interruption and ``--resume`` (see models.training.pairs for the data side).
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from consts import CHECKPOINTS_DIR, ROOT, RUNS_DIR
from models import cli
from models.cli import opt
from models.errors import InputError
from models.nvs_sqa import MIN_FRAME_SIZE, ModelConfig, SequenceModel
from models.results import check_creatable
from models.runtime import DEVICES, locate, resolve_device
from models.training.device_targets import batch_targets
from models.training.pairs import (
    VAL_STREAM,
    PairConfig,
    PairDataset,
    collate_pairs,
    epoch_order,
    scan_renders,
    worker_init,
)
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
from models.training.targets import RECIPES, TARGETS, fvvdp_available, get_recipe

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Every setting of a training run (all flags of train.py); defaults are the full-size run (preset ``full``)
    with the authors' code's behaviour (``--recipe upstream``)."""

    name: str = opt("", "run folder name under --runs-dir (default: <preset>-seed<seed>)")
    renders: str = opt("renders", "folder of <scene>__<method>/ frame folders: a path, else a folder of the "
                       "repository (renders = the renders/ preprocess.py writes, from any folder)")
    preset: str = opt("full", "the preset these settings started from", flag=False)  # set by PRESETS
    recipe: str = opt("upstream", "behaviour: upstream = what the authors' training code does (all-or-nothing "
                      "replacement, one crop per batch, their noise and targets, fp32, per-frame-index encoder "
                      "batches); paper = the paper's description (docs/training.md lists every difference)",
                      choices=tuple(RECIPES))
    epochs: int = opt(100, "epochs", min=1)
    scene_repeats: int = opt(2, "pairs per scene per epoch", min=1)
    batch_size: int = opt(16, "pairs per optimisation step (global, split over DDP processes)", min=1)
    lr: float = opt(1e-3, "Adam learning rate (amsgrad); 0 keeps the weights")
    weights: list[float] = opt([1.0, 0.5, 0.2, 0.0, 1.0], "loss weights of the heads ssim psnr replace strred fvvdp "
                               "(a 0 skips that target)", min=0, metavar="W")
    pairs: PairConfig = opt(PairConfig(), "pair sampling (paper defaults)")
    save_every: int = opt(5, "keep an epoch checkpoint every N epochs (latest/ is written every epoch)", min=1)
    workers: int = opt(2, "DataLoader worker processes building pairs (0 = in the training loop)", min=0)
    seed: int = opt(0, "seed of the weights, pairs and dropout", min=0)
    device: str = opt("auto", "auto (cuda if present) | cpu | cuda", choices=DEVICES)
    amp: bool = opt(True, "mixed precision on CUDA (ignored on CPU, and under --recipe upstream: fp32)")
    grad_checkpoint: bool = opt(False, "recompute the encoder in backward to save memory")
    init: str = opt("scratch", "scratch | released | a checkpoint folder to fine-tune from (a path, else a name "
                    "under checkpoints/ or runs/, e.g. mine/latest)")
    val_pairs: int = opt(16, "held-out validation pairs (own random stream), scored every epoch", min=0)
    threads: int = opt(0, "torch intra-op threads of the training loop (0 = torch's choice)", min=0)
    stop_after_steps: int = opt(0, "stop (after saving latest/) at this global step: simulates a kill; 0 = off",
                                min=0)
    runs_dir: str = opt(str(RUNS_DIR), "parent folder of run folders")

    def __post_init__(self) -> None:
        if isinstance(self.pairs, dict):  # from a saved config.json
            self.pairs = cli.build(PairConfig, self.pairs)
        if not self.name:
            self.name = f"{self.preset}-seed{self.seed}"
        if not (math.isfinite(self.lr) and self.lr >= 0):
            raise InputError(f"--lr {self.lr}: must be a finite number >= 0 (0 keeps the weights)")
        if len(self.weights) != len(TARGETS):
            raise InputError(f"--weights: need {len(TARGETS)} values ({' '.join(TARGETS)}), got {len(self.weights)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Each preset names itself (the ``preset`` field, hence the default run name); flags override it. Presets set
# sizes and epochs; the behaviour is --recipe.
PRESETS: dict[str, dict[str, Any]] = {
    "full": {"preset": "full"},
    # Small crops and short segments: the whole pipeline (all five targets) in 1–2 min on a 2-core CPU.
    "cpu-smoke": {"preset": "cpu-smoke", "epochs": 6, "scene_repeats": 8, "batch_size": 4, "save_every": 2,
                  "val_pairs": 8,
                  "pairs": {"crop_min": 72, "crop_max": 112, "crop_margin": 75, "segment_pixels": 96 * 96 * 6}},
}


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` applied; a ``pairs`` dict is merged field by field (a partial dict is fine)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = {**out.get(k, {}), **v} if isinstance(v, dict) else v
    return out


DEPRECATED_PRESETS = {"paper": "full"}  # old preset names still accepted, with a warning: name -> what it is now


def resolve_preset(preset: str) -> str:
    """``preset``, or its new name (with a warning) when it is a deprecated alias."""
    if preset in DEPRECATED_PRESETS:
        new = DEPRECATED_PRESETS[preset]
        log.warning("--preset %s is deprecated: it is now --preset %s (sizes and epochs); the paper's behaviour is "
                    "--recipe paper (the default, --recipe upstream, is the authors' code)", preset, new)
        return new
    return preset


def make_config(preset: str = "full", **overrides: Any) -> TrainConfig:
    """A TrainConfig from a preset plus overrides (``pairs`` may be a partial dict), checked like the flags."""
    preset = resolve_preset(preset)
    if preset not in PRESETS:
        raise InputError(f"--preset {preset}: unknown; choose one of {', '.join(PRESETS)}")
    cfg = cli.build(TrainConfig, merge(PRESETS[preset], overrides))
    cli.check(cfg)
    return cfg


# --------------------------------------------------------------------------------------------- model
class ProjectorHeads(nn.Module):
    """Five heads (one per target): Linear → BatchNorm1d → ReLU → Linear, 384 → 384."""

    def __init__(self, dim: int = 384, n: int = len(TARGETS)) -> None:
        super().__init__()
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, dim), nn.BatchNorm1d(dim), nn.ReLU(), nn.Linear(dim, dim)) for _ in range(n)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, dim) -> (n_heads, B, dim)."""
        return torch.stack([h(z) for h in self.heads])


class ContrastiveModel(nn.Module):
    """Encoder + projector heads. ``forward(pairs)`` -> projections of both sequences, (K, B, D) each."""

    def __init__(self, model_config: ModelConfig, grad_checkpoint: bool = False, batching: str = "pair") -> None:
        super().__init__()
        self.encoder = SequenceModel(model_config)
        self.projector = ProjectorHeads(model_config.angular_feat_size)
        self.grad_checkpoint = grad_checkpoint
        self.batching = batching  # Recipe.encoder_batching: "pair" or "frame_index"

    def encode_by_frame_index(self, clips: torch.Tensor) -> torch.Tensor:
        """Upstream's batching (sequence_models.py forward): (B, T, 3, h, w) in [0, 1] -> (B, 384), the view
        encoder run once per frame index t over the B clips (BatchNorm statistics over those B frames)."""
        feats = torch.stack([self.encoder.encode_frames(clips[:, t]) for t in range(clips.shape[1])])  # (T, B, F)
        return self.encoder.aggregate(feats)

    def encode_batch(self, seqs: list[torch.Tensor]) -> torch.Tensor:
        """One side of a batch (B (T, 3, h, w) uint8 sequences of one size) -> (B, 384), per frame index."""
        clips = torch.stack(seqs).float().div_(255.0)
        if self.grad_checkpoint and self.training:
            return torch.utils.checkpoint.checkpoint(self.encode_by_frame_index, clips, use_reentrant=False)
        return self.encode_by_frame_index(clips)

    def encode_pair(self, seq1: torch.Tensor, seq2: torch.Tensor) -> torch.Tensor:
        """Two (T, 3, H, W) uint8 sequences of one size -> (2, 384); frames as uint8/255, as at inference."""
        clips = torch.stack([seq1, seq2]).float().div_(255.0)
        if self.grad_checkpoint and self.training:
            # Note: BatchNorm running statistics are updated again during the recomputation.
            return torch.utils.checkpoint.checkpoint(self.encoder, clips, use_reentrant=False)
        return self.encoder(clips)

    def forward(self, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.batching == "frame_index":  # all sequences 1, then all sequences 2 (contrast_learning.py)
            z1, z2 = self.encode_batch([a for a, _ in pairs]), self.encode_batch([b for _, b in pairs])
            return self.projector(z1), self.projector(z2)
        z = torch.stack([self.encode_pair(a, b) for a, b in pairs], 1)  # (2, B, 384)
        return self.projector(z[0]), self.projector(z[1])


def head_losses(p1: torch.Tensor, p2: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """L1 between cosine similarity and target per head: (K, B, D) ×2, (K, B) -> (K,); NaN targets count as 0."""
    cos = F.cosine_similarity(p1.float(), p2.float(), dim=-1)
    return (cos - targets.nan_to_num(0.0)).abs().mean(1)


# --------------------------------------------------------------------------------------------- distributed
@dataclass
class Dist:
    """This process's place in a ``torchrun`` job (rank 0 of 1 without one)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Dist:
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()


def _setup(cfg: TrainConfig, dist: Dist) -> torch.device:
    device = resolve_device(cfg.device)
    if device.type == "cuda" and dist.world > 1:
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    if dist.world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    return device


# --------------------------------------------------------------------------------------------- loop
def epoch_batches(cfg: TrainConfig, per_epoch: int, epoch: int) -> list[list[int]]:
    """Global pair ids of each step of ``epoch`` (a seeded shuffle; incomplete last batch dropped)."""
    perm = epoch_order(cfg.seed, per_epoch, epoch) + epoch * per_epoch
    n = per_epoch // cfg.batch_size
    return [perm[i * cfg.batch_size:(i + 1) * cfg.batch_size].tolist() for i in range(n)]


def _loader(ds: PairDataset, batches: list[list[int]], workers: int, seed: int) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        ds, batch_sampler=batches, num_workers=workers, collate_fn=collate_pairs, worker_init_fn=worker_init,
        generator=torch.Generator().manual_seed(seed), prefetch_factor=2 if workers else None,
    )


@torch.no_grad()
def validate(model: ContrastiveModel, val: list[dict], device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarity per head (N, K) of the validation pairs (eval mode) and their targets (N, K)."""
    model.eval()
    z = torch.cat([model.encode_pair(v["seq1"].to(device), v["seq2"].to(device)) for v in val])  # (2N, 384)
    p = model.projector(z.float())  # (K, 2N, D)
    cos = F.cosine_similarity(p[:, 0::2], p[:, 1::2], dim=-1).T.cpu().numpy()
    model.train()
    return cos, torch.stack([v["targets"] for v in val]).numpy()


def train(cfg: TrainConfig, resume: str | Path | None = None) -> Path:
    """Run (or continue) training; returns the run folder. Bad input raises InputError before any compute."""
    dist = Dist.from_env()
    device = _setup(cfg, dist)
    renders = locate(cfg.renders, ROOT, what="--renders",
                     hint="lay out training renders as <folder>/<scene>__<method>/00000.png (preprocess.py)")
    init = None if cfg.init in ("scratch", "released") or resume else locate(cfg.init, CHECKPOINTS_DIR, RUNS_DIR,
                                                                              what="--init")
    scenes = scan_renders(renders, MIN_FRAME_SIZE)
    if cfg.weights[4] > 0 and not fvvdp_available():
        raise InputError("pyfvvdp: not installed but the FovVideoVDP weight is > 0; `pip install pyfvvdp==1.2.2` "
                         "or pass --weights 1 0.5 0.2 0 0")
    if cfg.batch_size % dist.world or cfg.batch_size // dist.world < 2:
        raise InputError(f"--batch-size {cfg.batch_size}: must be a multiple of the {dist.world} process(es), "
                         "with ≥2 pairs per process (BatchNorm in the projector heads)")
    if cfg.pairs.crop_min < MIN_FRAME_SIZE or cfg.pairs.crop_max < cfg.pairs.crop_min:
        raise InputError(f"--crop-min {cfg.pairs.crop_min} / --crop-max {cfg.pairs.crop_max}: need "
                         f"{MIN_FRAME_SIZE} ≤ crop-min ≤ crop-max (smallest input the encoder accepts)")
    per_epoch = len(scenes) * cfg.scene_repeats
    steps_per_epoch = per_epoch // cfg.batch_size
    if steps_per_epoch == 0:
        raise InputError(f"{cfg.renders}: {len(scenes)} scene(s) × {cfg.scene_repeats} repeats = {per_epoch} pairs "
                         f"per epoch, fewer than --batch-size {cfg.batch_size}; raise --scene-repeats")
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
    ddp = torch.nn.parallel.DistributedDataParallel(model) if dist.world > 1 else model
    needed = tuple(w > 0 for w in cfg.weights)
    ds = PairDataset(scenes, cfg.pairs, cfg.seed, per_epoch, needed, recipe=recipe, batch_size=cfg.batch_size,
                     worker_targets=False)  # workers build the pairs only: batch_targets scores them
    val: list[dict] = []
    if dist.main and cfg.val_pairs:
        # ST-RRED is cheap, so it is validated even at weight 0; FovVideoVDP only when it is trained.
        vds = PairDataset(scenes, cfg.pairs, cfg.seed, cfg.val_pairs, (True,) * 4 + (needed[4],), VAL_STREAM,
                          recipe=recipe)  # each validation pair is its own batch (scored one by one)
        val = [x for b in _loader(vds, [[i] for i in range(cfg.val_pairs)], cfg.workers, cfg.seed) for x in b]
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
        if done % cfg.save_every == 0 or done == cfg.epochs:
            write_encoder(run_dir / f"epoch_{done:04d}", model_config.to_dict(), model.encoder.state_dict())

    bar = None
    if dist.main:
        from tqdm import tqdm

        bar = tqdm(total=cfg.epochs * steps_per_epoch, initial=step, desc=run_dir.name, unit="step")
    t_wait = time.perf_counter()
    for batch in _loader(ds, todo, cfg.workers, cfg.seed):
        epoch = step // steps_per_epoch
        data_s = time.perf_counter() - t_wait
        t0, seqs = time.perf_counter(), [(b["seq1"].to(device), b["seq2"].to(device)) for b in batch]
        targets, tt = batch_targets(batch, recipe, needed, device, seqs).T, time.perf_counter()  # (K, B), as upstream
        with torch.autocast(device.type, enabled=amp):
            p1, p2 = ddp(seqs)
        per_head = head_losses(p1, p2, targets)
        loss = (per_head * weights).sum()
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        t2 = time.perf_counter()
        step += 1
        per_head = per_head.detach()
        if dist.world > 1:  # log the mean over processes
            torch.distributed.all_reduce(per_head, op=torch.distributed.ReduceOp.AVG)
        row = {"kind": "step", "step": step, "epoch": epoch, "loss": float((per_head * weights).sum()),
               "head_loss": {n: (float(per_head[k]) if needed[k] else None) for k, n in enumerate(TARGETS)},
               "pairs": len(batch) * dist.world, "data_s": data_s, "targets_s": tt - t0, "forward_s": t1 - tt,
               "backward_s": t2 - t1, "worker_s": {"load": sum(b["timings"]["load"] for b in batch)}}
        metrics.add(row)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.4f}", data=f"{data_s:.2f}s")
        at_end = step % steps_per_epoch == 0
        if at_end and dist.main:
            end_of_epoch(epoch + 1)
        stop = bool(cfg.stop_after_steps) and step == cfg.stop_after_steps
        if at_end or stop:
            save(epoch + 1 if at_end else epoch)
        if stop:
            log.info("stopped at step %d as asked (--stop-after-steps); continue with --resume %s", step, run_dir)
            return run_dir
        t_wait = time.perf_counter()
    if bar is not None:
        bar.close()
    if dist.world > 1:
        torch.distributed.destroy_process_group()
    return run_dir
