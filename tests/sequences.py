"""Made-up frame sequences and result readers shared by the scoring tests (not a test module)."""

from __future__ import annotations

import csv

import numpy as np
from PIL import Image


def make_seq(folder, n=3, size=(72, 96), seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"{i:04d}.png")
    return folder


def make_smooth(folder, n=8, size=(80, 96), seed=0):
    """A smooth moving pattern (no noise, no holes): its only validity warning is its small size."""
    folder.mkdir(parents=True, exist_ok=True)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.random.default_rng(seed).uniform(40, 200, 3)
    for i in range(n):
        r = 60 + 60 * np.sin((xx + 3 * i) / 17.0) + yy / 2
        fr = np.stack([r + base[0] / 4, r * 0.8 + base[1] / 4, 200 - r * 0.7 + base[2] / 8], -1)
        Image.fromarray(np.clip(fr, 16, 255).astype(np.uint8)).save(folder / f"{i:04d}.png")
    return folder


def rows_of(path):
    return list(csv.DictReader(open(path)))
