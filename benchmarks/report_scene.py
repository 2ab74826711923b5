"""Scenes for report.py made from the two example sequences (make report-demo, make bench-report).

- ``demo``: the scene ``Giraffe`` with four methods: ``IBRNet-C`` and ``NeRF`` (the examples, linked),
  ``NeRF-degraded``: NeRF's frames with a mild blur everywhere (sigma ``MILD`` px) and a strong one (sigma
  ``STRONG`` px) on frames 40–79 — a method that is worse everywhere and fails badly along one stretch of the path,
  for the ranking and the failure panels to find — and ``NeRF-noisy``: NeRF's frames with Gaussian noise of sigma
  ``NOISY`` (0–255), which the released model scores *higher* than NeRF: the page must flag it, not rank it first.
  No ground truth: the examples have none.
- ``bench``: 8 methods × ``--frames`` frames (200 by default: NeRF's 120 frames walked forward and back), each a
  different degradation of those frames (JPEG quality 95 files), with ``gt/`` holding the frames themselves as
  ground truth: a scene of the size a paper's comparison has, for timing the report with every metric.

Every degradation is :mod:`models.evaluation.degrade`'s, seeded: the same scene bit for bit on every run.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from consts import EXAMPLE_SEQUENCES, EXAMPLES_DIR
from models import cli
from models.cli import opt
from models.evaluation import degrade
from models.pixels import read_image

NERF = EXAMPLE_SEQUENCES[0]  # Giraffe+NeRF: the frames the degraded methods are made from
MILD, STRONG = 2.0, 24.0  # px: the demo's blur everywhere, and on its failing stretch (NVS-SQA moves little for blur)
NOISY = 8.0  # the demo's noisy method: far enough past the validated noise to be flagged
FAIL_SPAN = (40, 80)  # frames [start, end) of the demo's failing stretch
BENCH = {  # method -> (degradation, parameter, frames it applies to: None = all)
    "reencoded": (None, 0.0, None),
    "blur-1px": ("blur", 1.0, None),
    "blur-2px": ("blur", 2.0, None),
    "noise-4": ("noise", 4.0, None),
    "jpeg-30": ("jpeg", 30.0, None),
    "floaters": ("floaters", 6.0, None),
    "ghosting": ("ghosting", 0.3, None),
    "blur-late": ("blur", 4.0, (120, 160)),
}  # fmt: skip


@dataclass
class SceneConfig:
    """Options of the scene maker."""

    out: str = opt("runs/report-demo/Giraffe", "the scene folder to write (replaced)")
    kind: str = opt("demo", "demo: 4 methods, no ground truth | bench: 8 methods + gt/", choices=("demo", "bench"))
    frames: int = opt(200, "bench: frames per method (the examples walked forward and back)", min=2)
    seed: int = opt(0, "seed of the random degradations", min=0)


def _write(folder: Path, frames: np.ndarray, quality: int = 95) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"frame{i:04d}.jpg", quality=quality)


def example(name: str) -> np.ndarray:
    files = sorted((EXAMPLES_DIR / name).glob("*.jpg"))
    return np.stack([read_image(p) for p in files])


def path_of(frames: np.ndarray, n: int) -> np.ndarray:
    """``n`` frames walking the sequence forward, then back, and so on (a longer camera path of the same scene)."""
    idx, step, i = [], 1, 0
    for _ in range(n):
        idx.append(i)
        if not 0 <= i + step < len(frames):
            step = -step
        i += step
    return frames[idx]


def demo(out: Path, seed: int) -> None:
    out.mkdir(parents=True)
    for name in EXAMPLE_SEQUENCES:
        os.symlink((EXAMPLES_DIR / name).resolve(), out / name.split("+", 1)[1])
    clip = example(NERF)
    rng = np.random.default_rng(seed)
    bad = degrade.blur(clip, MILD, rng)
    a, b = FAIL_SPAN
    bad[a:b] = degrade.blur(clip[a:b], STRONG, rng)
    _write(out / "NeRF-degraded", bad)
    _write(out / "NeRF-noisy", degrade.noise(clip, NOISY, rng))


def bench(out: Path, n: int, seed: int) -> None:
    clip = path_of(example(NERF), n)
    out.mkdir(parents=True)
    _write(out / "gt", clip, quality=100)
    for i, (name, (kind, level, span)) in enumerate(BENCH.items()):
        rng = np.random.default_rng([seed, i])
        frames = clip.copy()
        a, b = span if span else (0, len(clip))
        if kind is not None and a < len(clip):  # a short scene (--frames) may end before the span
            frames[a:b] = getattr(degrade, kind)(clip[a:b], level, rng)
        _write(out / name, frames)


def make(cfg: SceneConfig) -> int:
    out = Path(cfg.out)
    if out.exists():
        shutil.rmtree(out)
    demo(out, cfg.seed) if cfg.kind == "demo" else bench(out, cfg.frames, cfg.seed)
    print(f"scene written: {out} ({', '.join(sorted(p.name for p in out.iterdir()))})")
    return 0


main = cli.script(SceneConfig, make, "Make a scene for report.py from the example sequences.")

if __name__ == "__main__":
    raise SystemExit(main())
