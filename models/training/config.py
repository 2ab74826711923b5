"""train.py's settings: the config dataclass (every flag), the presets, and the checks and step order that a
training run and its ``--preview`` share (one home, so the preview shows exactly what the loop trains on)."""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from consts import ROOT, RUNS_DIR
from models import cli
from models.cli import opt
from models.errors import InputError
from models.fullref.fvvdp import fvvdp_available
from models.nvs_sqa import MIN_FRAME_SIZE
from models.runtime import DEVICES, locate
from models.training.pairs import PairConfig, PairDataset, Scene, collate_pairs, epoch_order, scan_renders, worker_init
from models.training.targets import RECIPES, TARGETS


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
        # Each field is a flag of train.py (models.cli), so these checks name it as its flag, as cli.check does.
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


def make_config(preset: str = "full", **overrides: Any) -> TrainConfig:
    """A TrainConfig from a preset plus overrides (``pairs`` may be a partial dict), checked like the flags."""
    if preset not in PRESETS:
        raise InputError(f"`preset`={preset}: unknown; choose one of {', '.join(PRESETS)}")
    cfg = cli.build(TrainConfig, merge(PRESETS[preset], overrides))
    cli.check(cfg)
    return cfg


def training_scenes(cfg: TrainConfig) -> tuple[Path, list[Scene], int]:
    """(renders folder, its scenes, pairs per epoch) of ``cfg``, checked before any compute: the renders exist and
    are large enough, FovVideoVDP is installed when weighted, the crop range fits the encoder, an epoch holds a
    batch. Raises InputError naming the parameter to change (in backticks: train.py shows them as its flags)."""
    renders = locate(cfg.renders, ROOT, what="`renders`",
                     hint="lay out training renders as <folder>/<scene>__<method>/00000.png (preprocess.py)")
    scenes = scan_renders(renders, MIN_FRAME_SIZE)
    if cfg.weights[4] > 0 and not fvvdp_available():
        raise InputError("pyfvvdp: not installed but the FovVideoVDP weight is > 0; `pip install pyfvvdp==1.2.2` "
                         "or pass `weights`=1 0.5 0.2 0 0")
    if cfg.pairs.crop_min < MIN_FRAME_SIZE or cfg.pairs.crop_max < cfg.pairs.crop_min:
        raise InputError(f"`crop_min`={cfg.pairs.crop_min} / `crop_max`={cfg.pairs.crop_max}: need "
                         f"{MIN_FRAME_SIZE} ≤ `crop_min` ≤ `crop_max` (smallest input the encoder accepts)")
    per_epoch = len(scenes) * cfg.scene_repeats
    if per_epoch // cfg.batch_size == 0:
        raise InputError(f"{cfg.renders}: {len(scenes)} scene(s) × {cfg.scene_repeats} repeats = {per_epoch} pairs "
                         f"per epoch, fewer than `batch_size`={cfg.batch_size}; raise `scene_repeats`")
    return renders, scenes, per_epoch


def epoch_batches(cfg: TrainConfig, per_epoch: int, epoch: int) -> list[list[int]]:
    """Global pair ids of each step of ``epoch`` (a seeded shuffle; incomplete last batch dropped)."""
    perm = epoch_order(cfg.seed, per_epoch, epoch) + epoch * per_epoch
    n = per_epoch // cfg.batch_size
    return [perm[i * cfg.batch_size:(i + 1) * cfg.batch_size].tolist() for i in range(n)]


def step_loader(ds: PairDataset, batches: list[list[int]], workers: int, seed: int) -> torch.utils.data.DataLoader:
    """The DataLoader of a run's steps (``batches``: global pair ids per step), as training and --preview use it:
    worker seeding by pair id (pairs.worker_init), so the pairs do not depend on ``workers``."""
    return torch.utils.data.DataLoader(
        ds, batch_sampler=batches, num_workers=workers, collate_fn=collate_pairs, worker_init_fn=worker_init,
        generator=torch.Generator().manual_seed(seed), prefetch_factor=2 if workers else None,
    )
