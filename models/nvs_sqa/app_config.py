"""app.py's options: the config dataclass (every flag) and the reading of ``--window``/``--stride``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from consts import EXAMPLES_DIR
from models.cli import opt
from models.cluster import EXECUTORS, GROUP, SLURM_HELP, SlurmOptions
from models.errors import InputError
from models.nvs_sqa.validity import Limits
from models.nvs_sqa.windows import window_problem
from models.runtime import DEVICES


@dataclass
class AppConfig:
    """Options of one scoring run (all flags of app.py)."""

    inputs: list[str] = opt([str(EXAMPLES_DIR)], "a folder of frames, a video, or a folder holding such at any "
                            "depth (scene/method[/frames], 3DGS test/ours_N/renders, NerfBaselines color/; "
                            "default: examples/)", positional=True, metavar="INPUT")
    out: str | None = opt(None, "output folder; results already there are kept and merged by name (default: the "
                          "input folder; with several inputs, the current one)")
    checkpoint: str | None = opt(None, "checkpoint folder with config.json + model.pth: a path, else a name under "
                                     "checkpoints/ or runs/ (default: released v0.0.1)")
    device: str = opt("auto", "auto (cuda if present) | cpu | cuda", choices=DEVICES)
    batch_size: int = opt(0, "frames per network call (0 = auto: 1 on CPU, one call in flight per core, measured "
                          "fastest; 16 on CUDA)", min=0)
    precision: str = opt("exact", "exact: float32 | mixed: bfloat16 trunk, float32 input conv and low-level "
                         "branches (within 1e-4 of exact) | bf16 | fp16 (CUDA); mixed and bf16 need native bfloat16 "
                         "(AVX512_BF16/AMX, or CUDA), else exact with a warning (docs/scoring.md)",
                         choices=("exact", "mixed", "bf16", "fp16"))  # = precision.PRECISIONS (no torch import here)
    window: str = opt("auto", "auto: one pass up to the validated length (as upstream), windows of the validated "
                      "size beyond it | 0: always one pass | N: windows of N frames; the score is the mean of the "
                      "window scores", metavar="auto|0|N")
    stride: int = opt(0, "frames between window starts (0 = default: the validated stride with --window auto, N/2 "
                      "with --window N)", min=0)
    name: str | None = opt(None, "the name to write the results under, when the input is one sequence (default: "
                           "its path relative to the input: scene/method)")
    redo: bool = opt(False, "score again what --out already holds from the same source with the same checkpoint, "
                     "precision and settings (default: skip it)")
    features_only: bool = opt(False, "write features only, no JOD scores (checkpoints without regressor.json)")
    sort: str = opt("natural", "frame order within a folder: natural (frame2 before frame10) | plain (upstream's "
                    "sorted())", choices=("natural", "plain"))
    quiet: bool = opt(False, "no progress bars or info messages, the table and warnings only")
    # sharding and clusters (models/nvs_sqa/shard.py, docs/cluster.md)
    shard: str | None = opt(None, "score only shard I of N (a deterministic 1/N of the sequences) into --out; "
                            "merge the shards with --merge", metavar="I/N", group=GROUP)
    merge: list[str] | None = opt(None, "OUT_DIR SHARD_DIR…: merge shard folders into the files one unsharded run "
                                  "writes (a missing or duplicated shard is an error)", metavar="DIR", group=GROUP)
    executor: str = opt("none", "none: score here | local, slurm: --shards N jobs through submitit, then merged "
                        "into --out", choices=("none", *EXECUTORS), group=GROUP)
    shards: int = opt(0, "with --executor: the number of shard jobs", min=0, group=GROUP)
    slurm: SlurmOptions = opt(SlurmOptions(), SLURM_HELP)


def window_setting(cfg: AppConfig) -> int | None:
    """``--window`` as a number of frames (None = auto, 0 = one pass); one-line :class:`InputError` naming the flags
    when unusable (the reasons are the window rule's own: models.nvs_sqa.windows)."""
    w = None if cfg.window == "auto" else int(cfg.window) if cfg.window.isdigit() else -1
    why = window_problem(w, cfg.stride, Limits.load().window if w is None else w)
    if why:
        shown = f"--window {cfg.window}" + (f" --stride {cfg.stride}" if cfg.stride else "")
        raise InputError(f"{shown}: {why}")
    return w


def default_out(inputs: list[str]) -> Path:
    """Where results go without --out: the input folder (as upstream); with several inputs, the current one."""
    if len(inputs) == 1:
        p = Path(inputs[0])
        return p if p.is_dir() else p.parent
    return Path.cwd()
