"""The options of every ``crossscore.py`` subcommand, one dataclass each (fields document their flags).

Kept apart from the code that runs them so that ``--help`` and flag errors need neither torch nor OpenCV.
"""

from __future__ import annotations

from dataclasses import dataclass

from consts import (
    CHECKPOINTS_DIR,
    CROSSSCORE_DEMO_MODEL,
    CROSSSCORE_N_REF,
    CROSSSCORE_TRAIN_CROP,
    CROSSSCORE_TRAIN_SHORT_SIDE,
    EXAMPLE_SEQUENCES,
    EXAMPLES_DIR,
    RUNS_DIR,
)
from models.cli import opt
from models.runtime import DEVICES, locate

_GROUP = "model and run options"


@dataclass
class ModelOptions:
    """Options shared by ``predict`` and ``test``: which model, how images are sized and batched, where it runs."""

    checkpoint: str = opt(str(CROSSSCORE_DEMO_MODEL), "checkpoint folder (config.json + model.pth), one-file "
                          ".pth or upstream CrossScore-v1.0.0.ckpt: a path, else a name under checkpoints/ or runs/ "
                          "(e.g. my-run/model, crossscore-tiny) (default: the committed offline demo model "
                          "examples/.crossscore-demo.pth)", group=_GROUP)
    backbone: str | None = opt(None, "for an upstream .ckpt: a transformers DINOv2 folder whose config.json gives "
                               "the backbone shape (default: inferred, DINOv2-S)", group=_GROUP)
    short_side: int = opt(-1, "resize the short side to this before scoring (default: as the checkpoint was "
                          "trained, 518 for upstream; 0 keeps the size)", min=-1, group=_GROUP)
    seed: int | None = opt(None, "draw references at random with this seed (default: deterministic spread over "
                           "the sorted reference folder)", group=_GROUP)
    batch_size: int = opt(8, "images per network call", min=1, group=_GROUP)
    device: str = opt("cpu", "cpu | cuda | auto (cuda if present)", choices=DEVICES, group=_GROUP)
    precision: str = opt("auto", "auto: fp16 autocast on CUDA (upstream's 16-mixed), fp32 on the CPU | fp32 | "
                         "fp16 (autocast on any device; on the CPU only to measure the difference)",
                         choices=("auto", "fp32", "fp16"), group=_GROUP)
    threads: int = opt(0, "torch CPU threads (default: torch's choice)", min=0, group=_GROUP)
    quiet: bool = opt(False, "no progress bars or info messages", group=_GROUP)


@dataclass
class PredictConfig(ModelOptions):
    """Options of ``crossscore.py predict``."""

    query: str = opt("", "a rendered image or a folder of them", positional=True, required=True)
    references: str = opt("", "folder of real photos of the same scene (other viewpoints)", required=True)
    gt: str | None = opt(None, "ground truth (an image, or a folder with the query file names): adds the true map")
    n_ref: int = opt(CROSSSCORE_N_REF, "references per query; fewer available are masked, not padded", min=0)
    out: str = opt(str(RUNS_DIR / "crossscore-predict"), "output folder (default runs/crossscore-predict)")
    attention: str | None = opt(None, "also write attention/<name>.png: the last decoder layer's cross-attention "
                                "(one head) of query patches over the references: 'centre' (upstream's choice) "
                                "or token coordinates 'ROW,COL[;ROW,COL...]'")
    attn_head: int = opt(0, "attention head shown by --attention (upstream: 0)", min=0)


@dataclass
class TestConfig(ModelOptions):
    """Options of ``crossscore.py test``."""

    __test__ = False  # not a pytest test class

    data: str = opt("", "dataset root (see docs/crossscore.md: upstream or simple layout)", required=True)
    baseline: str = opt("none", "constant: the checkpoint's mean training target as the map (a baseline)",
                        choices=("none", "constant"))
    n_ref: int = opt(-1, "references per query (default: as trained)", min=-1)
    out: str = opt("", "output folder (default runs/crossscore-test-<checkpoint>-<baseline>)")


@dataclass
class CrossScoreTrainConfig:
    """Options of one CrossScore training run (all flags of ``crossscore.py train``)."""

    data: str = opt("", "dataset root (upstream or simple layout, see models/crossscore/data.py)", required=True)
    name: str = opt("crossscore", "run folder <runs-dir>/<name>/")
    runs_dir: str = opt(str(RUNS_DIR), "parent folder of the run folders")
    backbone: str = opt("facebook/dinov2-small", '"tiny" (random, trainable) | transformers folder | cached hub id')
    init: str | None = opt(None, "start from this checkpoint (folder or upstream .ckpt; a path, else a name under "
                           "checkpoints/ or runs/) instead of a fresh head")
    n_ref: int = opt(CROSSSCORE_N_REF, "references per query; 0 = the no-reference variant", min=0)
    short_side: int = opt(CROSSSCORE_TRAIN_SHORT_SIDE, "resize short side first (bilinear, antialias; 0 = keep)",
                          min=0)
    crop: int = opt(CROSSSCORE_TRAIN_CROP, "random square crop (0 = none)", min=0)
    batch_size: int = opt(24, "queries per step (upstream: 24 per GPU)", min=1)
    lr: float = opt(5e-4, "AdamW learning rate", min=0)
    weight_decay: float = opt(0.01, "AdamW weight decay", min=0)
    epochs: int = opt(9, "passes over the data (when --steps is 0)", min=0)
    steps: int = opt(0, "stop after this many steps (0 = epochs × steps per epoch)", min=0)
    seed: int = opt(0, "seeds the network init, shuffle order, crops and reference draws")
    device: str = opt("auto", "auto (cuda if present) | cpu | cuda", choices=DEVICES)
    threads: int = opt(0, "torch CPU threads (0 = torch's default; 1 is fastest on a busy 2-core machine)", min=0)
    amp: bool = opt(True, "fp16 autocast + GradScaler on CUDA (ignored on CPU)")
    log_every: int = opt(10, "append a line to metrics.jsonl every this many steps", min=1)
    fig_every: int = opt(200, "write a figure every this many steps", min=1)
    save_every: int = opt(100, "write state.pth every this many steps", min=1)
    resume: bool = opt(False, "continue runs/<name>/state.pth exactly")
    out_checkpoint: str | None = opt(None, "also write the final model folder here (e.g. checkpoints/crossscore-tiny)")
    quiet: bool = opt(False, "no progress bars or info messages")


def _example_folders() -> list[str]:
    # the example sequences by name: examples/ also holds app.py's outputs (curves/) after `make demo`
    return sorted(str(EXAMPLES_DIR / n) for n in EXAMPLE_SEQUENCES if (EXAMPLES_DIR / n).is_dir())


@dataclass
class DemoDataConfig:
    """Options of ``crossscore.py demo-data``: the offline training set built from examples/."""

    sources: list[str] = opt(_example_folders(), "folders of frames, one scene each (default: every folder in "
                             "examples/)", metavar="FOLDER")
    out: str = opt(str(RUNS_DIR / "crossscore-demo-data"), "output folder (default runs/crossscore-demo-data)")
    # 140 x 112 = 10 x 8 patches of 14 px: a few minutes of CPU training are meaningful
    width: int = opt(140, "frame width after downscaling", min=14)
    height: int = opt(112, "frame height after downscaling", min=14)
    split_frame: int = opt(84, "frames before this go to train/, the rest to heldout/", min=0)
    seed: int = opt(0, "seeds the degradation masks and strengths")
    quiet: bool = opt(False, "no info messages")


# what to do when a model is missing: the library's words (checkpoint.load_model), then the flags that do it
DEMO_MODEL_HINT = ("the default examples/.crossscore-demo.pth is committed (`git checkout "
                   "examples/.crossscore-demo.pth`); `make crossscore-demo` trains the offline model into "
                   "checkpoints/crossscore-tiny")
CKPT_HINT = f"{DEMO_MODEL_HINT} (then --checkpoint crossscore-tiny); or pass --checkpoint FOLDER|CrossScore-v1.0.0.ckpt"


def locate_checkpoints(cfg: object) -> None:
    """Resolve ``--checkpoint`` / ``--init`` in place by the paths rule (:func:`models.runtime.locate`: as typed,
    else under checkpoints/ or runs/); a name found nowhere is one line naming every place looked in."""
    if isinstance(cfg, ModelOptions):
        cfg.checkpoint = str(locate(cfg.checkpoint, CHECKPOINTS_DIR, RUNS_DIR, what="--checkpoint", hint=CKPT_HINT))
    if isinstance(cfg, CrossScoreTrainConfig) and cfg.init:
        cfg.init = str(locate(cfg.init, CHECKPOINTS_DIR, RUNS_DIR, what="--init"))
