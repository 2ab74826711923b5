"""An offline CrossScore training set made from the example sequences (no download, seeded, reproducible).

The frames of each example sequence (``examples/<seq>/``, 120 frames of one scene) are downscaled to
``width``×``height`` and used as ground truth. Even frames form split ``a``, odd frames split ``b``; the
references of a query are the ground-truth frames of the other split (other viewpoints, never its own).
Renders are NVS-like degradations of the ground truth, applied inside a random smooth mask (so that the
true SSIM maps have spatial structure) with a random strength:

- trained kinds: ``blur`` (defocus / over-smooth NeRF), ``noise``, ``jpeg``, ``lowres`` (under-resolved
  radiance field), ``floaters`` (semi-transparent blobs);
- held-out kinds (only in ``heldout/``): ``ghost`` (a misregistered double image), ``warp`` (smooth geometric
  distortion).

Frames ``0 .. split_frame−1`` go to ``train/``, the rest to ``heldout/`` (all seven kinds), both in the
simple layout of :mod:`models.crossscore.data`: ``<set>/<scene>/<a|b>/{gt,renders/<kind>}/<frame>.png``.
"""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from consts import EXAMPLES_DIR
from models.crossscore.options import DemoDataConfig
from models.errors import InputError
from models.frames import list_images, read_image
from models.results import atomic_write_bytes, atomic_write_json, check_creatable

log = logging.getLogger(__name__)
TRAIN_KINDS = ("blur", "noise", "jpeg", "lowres", "floaters")
HELDOUT_KINDS = ("ghost", "warp")


def _rng(*key: object) -> np.random.Generator:
    h = hashlib.sha256(":".join(map(str, key)).encode()).digest()
    return np.random.default_rng(int.from_bytes(h[:8], "little"))


def smooth_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A soft random region in [0, 1]: low-frequency noise thresholded at a random level (sometimes all 1)."""
    if rng.random() < 0.25:
        return np.ones((h, w), np.float32)
    coarse = rng.standard_normal((rng.integers(2, 5), rng.integers(2, 6))).astype(np.float32)
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    level = rng.uniform(-0.8, 0.8)
    return np.clip((field - level) * 3.0 + 0.5, 0.0, 1.0)


def distort(img: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """One NVS-like degradation of a uint8 (H, W, 3) image, over the whole frame (masked by the caller)."""
    h, w = img.shape[:2]
    f = img.astype(np.float32)
    if kind == "blur":
        out = cv2.GaussianBlur(f, (0, 0), rng.uniform(0.8, 4.0))
    elif kind == "noise":
        out = f + rng.normal(0, rng.uniform(6, 40), f.shape)
    elif kind == "jpeg":
        ok, enc = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(3, 25))])
        out = cv2.imdecode(enc, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32)
    elif kind == "lowres":
        s = rng.uniform(2.0, 7.0)
        small = cv2.resize(f, (max(1, int(w / s)), max(1, int(h / s))), interpolation=cv2.INTER_AREA)
        out = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    elif kind == "floaters":
        out = f.copy()
        for _ in range(int(rng.integers(3, 12))):
            blob = np.zeros((h, w), np.float32)
            cv2.ellipse(blob, (int(rng.integers(0, w)), int(rng.integers(0, h))),
                        (int(rng.integers(4, w // 5)), int(rng.integers(4, h // 5))), float(rng.uniform(0, 180)),
                        0, 360, 1.0, -1)
            blob = cv2.GaussianBlur(blob, (0, 0), 3.0)[..., None] * rng.uniform(0.4, 0.9)
            out = out * (1 - blob) + blob * rng.uniform(0, 255, 3).astype(np.float32)
    elif kind == "ghost":
        dx, dy = rng.integers(-8, 9, 2)
        shifted = np.roll(f, (int(dy), int(dx)), axis=(0, 1))
        out = f * (1 - (a := rng.uniform(0.3, 0.6))) + shifted * a
    elif kind == "warp":
        amp = rng.uniform(1.5, 5.0)
        flow = [cv2.resize(rng.standard_normal((4, 5)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
                * amp for _ in range(2)]
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        out = cv2.remap(f, gx + flow[0], gy + flow[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    else:
        raise ValueError(f"unknown degradation {kind!r}")
    return np.clip(out, 0, 255)


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def build_demo_dataset(cfg: DemoDataConfig) -> dict[str, int]:
    """Write the dataset under ``cfg.out`` (see the module docstring); returns counts per set."""
    sources, out = [Path(s) for s in cfg.sources], Path(cfg.out)
    width, height, split_frame, seed = cfg.width, cfg.height, cfg.split_frame, cfg.seed
    if not sources:
        raise InputError(f"sources: none given, and no example sequence folder in {EXAMPLES_DIR}; give folders of "
                         "frames, one scene each")
    for src in sources:  # every source checked before anything is written
        if not src.is_dir() or len(list_images(src)) < 4:
            raise InputError(f"{src}: needs a folder of at least 4 frames to build the demo dataset")
    check_creatable(out)
    counts = {"train": 0, "heldout": 0}
    for src in sources:
        frames = list_images(src)
        scene = src.name.lower().replace("+", "-")
        for i, path in enumerate(frames):
            img = cv2.resize(read_image(path), (width, height), interpolation=cv2.INTER_AREA)
            which = "train" if i < split_frame else "heldout"
            split = out / which / scene / ("a" if i % 2 == 0 else "b")
            name = f"{i:04d}.png"
            atomic_write_bytes(split / "gt" / name, _png(img))
            kinds = TRAIN_KINDS if which == "train" else TRAIN_KINDS + HELDOUT_KINDS
            for kind in kinds:
                rng = _rng(seed, scene, i, kind)
                m = smooth_mask(rng, height, width)[..., None]
                render = np.rint(img * (1 - m) + distort(img, kind, rng) * m).astype(np.uint8)
                atomic_write_bytes(split / "renders" / kind / name, _png(render))
                counts[which] += 1
    atomic_write_json(out / "SOURCE.json", {"sources": [str(s) for s in sources], "size": [width, height],
                                            "split_frame": split_frame, "seed": seed, "train_kinds": TRAIN_KINDS,
                                            "heldout_kinds": HELDOUT_KINDS, "counts": counts})
    log.info("demo dataset in %s: %s queries", out, counts)
    return counts
