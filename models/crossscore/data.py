"""CrossScore data: image tensors, deterministic reference choice, dataset discovery, SSIM targets, batches.

Two dataset layouts are read (``discover_items``), both per scene and split, the references of a query being
the real images of the *other* split(s) of its scene (its own ground truth is never a reference):

- upstream: ``<scene>/<split>/ours_<iter>/{renders,gt,metric_map/ssim}`` (targets: uint16 PNG, v/32767 − 1);
  method = first folder under the root, dataset = the second (``gaussian/map-free-reloc/res_540/s00000``);
- simple:   ``<scene>/<split>/gt/<img>`` and ``<scene>/<split>/renders/<method>/<img>`` (same file names);
  targets are computed on the fly with :func:`models.ssim.ssim_target`; dataset = first folder under the root.

Reference rule (``reference_indices``; ``select_references`` applies it to files): the pool is natural-sorted;
``n`` references spread evenly over it (indices ``round(linspace(0, len−1, n))``), so they cover the capture, are
the same on every run and do not depend on the query. With a seed, ``n`` are drawn at random without replacement
from a generator seeded by ``(seed, query file name)``: reproducible and independent of batch order.

Sizing at predict and test time (``fit_sample``): every image resized to the short side, the query cropped
top-left to multiples of the 14-px patch, each reference resized to cover the query and centre-cropped to it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.errors import InputError
from models.frames import list_images, natural_key, read_image
from models.ssim import ssim_target


@dataclass
class Item:
    """One query render, what we know about it, and its reference pool."""

    query: Path
    refs: list[Path]
    gt: Path | None = None  # aligned ground truth (simple layout; SSIM computed on the fly)
    target: Path | None = None  # precomputed SSIM map (upstream layout)
    method: str = ""
    dataset: str = ""
    scene: str = ""
    meta: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- images
def rgb_tensor(hwc: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [0, 1] (``v / 255``): files and arrays take this one path."""
    return torch.from_numpy(np.array(hwc)).permute(2, 0, 1).float().div_(255.0)


def load_rgb(path: Path) -> torch.Tensor:
    """(3, H, W) float32 in [0, 1] from any image ``read_image`` accepts."""
    return rgb_tensor(read_image(Path(path)))


def resize_short(img: torch.Tensor, short: int) -> torch.Tensor:
    """Bilinear, antialiased resize of (C, H, W) so that min(H, W) == short (no-op when it already is)."""
    h, w = img.shape[-2:]
    size = resized_size(h, w, short)
    if size == (h, w):
        return img
    return F.interpolate(img[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]


def resized_size(h: int, w: int, short: int) -> tuple[int, int]:
    """The (H, W) that :func:`resize_short` gives an (h, w) image."""
    if short <= 0 or min(h, w) == short:
        return h, w
    s = short / min(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def map_to_render(m: np.ndarray, render_hw: tuple[int, int], short: int) -> np.ndarray:
    """A map made at the model's working size back on the render's own pixel grid: the working map covers the
    top-left, patch-aligned part of the render resized to ``short``; that part is resampled (bilinear) to the
    render's scale, and the strip of at most one patch it leaves at the right and bottom repeats the edge."""
    h0, w0 = render_hw
    rh, rw = resized_size(h0, w0, short)
    ch, cw = min(h0, round(m.shape[0] * h0 / rh)), min(w0, round(m.shape[1] * w0 / rw))
    t = torch.from_numpy(np.ascontiguousarray(m, np.float32))[None, None]
    up = F.interpolate(t, size=(ch, cw), mode="bilinear", align_corners=False)[0, 0].numpy()
    return np.pad(up, ((0, h0 - ch), (0, w0 - cw)), mode="edge")


def fit_to(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize (keeping aspect) to cover ``size`` and centre-crop to it: references of any shape fit the query."""
    h, w = img.shape[-2:]
    if (h, w) == tuple(size):
        return img
    s = max(size[0] / h, size[1] / w)
    nh, nw = max(size[0], round(h * s)), max(size[1], round(w * s))
    img = F.interpolate(img[None], size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)[0]
    top, left = (nh - size[0]) // 2, (nw - size[1]) // 2
    return img[:, top:top + size[0], left:left + size[1]]


def patch_crop(x: torch.Tensor, patch: int = 14) -> torch.Tensor:
    """Top-left crop of (..., H, W) to multiples of ``patch`` (the region a score map covers)."""
    h, w = x.shape[-2:]
    return x[..., : h - h % patch, : w - w % patch]


def load_target(path: Path) -> torch.Tensor:
    """Upstream SSIM map (uint16 PNG, v/32767 − 1, clamped to [0, 1]) -> (H, W) float32."""
    import cv2

    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.dtype != np.uint16:
        raise InputError(f"{path}: not a uint16 PNG SSIM map (metric_map/ssim); re-export the targets")
    if raw.ndim == 3:
        raw = raw[..., 0]
    return torch.from_numpy((raw.astype(np.float32) / 32767.0 - 1.0).clip(0.0, 1.0))


def encode_target(m: np.ndarray) -> np.ndarray:
    """(H, W) map in [-1, 1] -> upstream's uint16 encoding."""
    return np.clip(np.rint((np.asarray(m, np.float64) + 1.0) * 32767.0), 0, 65535).astype(np.uint16)


# --------------------------------------------------------------------------------------------- references
def reference_indices(size: int, n: int, seed: int | None = None, key: str = "") -> list[int]:
    """The reference rule on an ordered pool of ``size`` candidates: the indices of the ``n`` chosen, ascending.

    All of them when ``size <= n``; else ``round(linspace(0, size − 1, n))``; with a seed, ``n`` drawn without
    replacement by ``random.Random(f"{seed}:{key}")`` (``key``: the query's file name)."""
    if n <= 0 or size <= 0:
        return []
    if seed is not None:
        return sorted(random.Random(f"{seed}:{key}").sample(range(size), min(n, size)))
    if size <= n:
        return list(range(size))
    return [int(i) for i in np.rint(np.linspace(0, size - 1, n)).astype(int)]


def select_references(pool: Sequence[Path], n: int, query: Path | None = None, seed: int | None = None) -> list[Path]:
    """``n`` references from ``pool`` (see the module docstring for the rule). Never returns the query itself."""
    cands = sorted({Path(p) for p in pool if query is None or Path(p).resolve() != Path(query).resolve()},
                   key=lambda p: (natural_key(p.name), str(p)))
    return [cands[i] for i in reference_indices(len(cands), n, seed, query.name if query else "")]


# --------------------------------------------------------------------------------------------- discovery
def discover_items(root: Path) -> list[Item]:
    """Every query of a dataset in the upstream or the simple layout (module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: no such dataset folder; give the root of a dataset (docs/crossscore.md)")
    items: list[Item] = []
    for renders in sorted(root.rglob("renders"), key=lambda p: natural_key(str(p))):
        if not renders.is_dir():
            continue
        split = renders.parent
        upstream = split.name.startswith("ours_")
        split_dir = split.parent if upstream else split
        scene_dir = split_dir.parent
        rel = scene_dir.relative_to(root).parts if scene_dir != root else ()
        pool = _reference_pool(split_dir, upstream)
        if not pool:
            raise InputError(f"{split_dir}: no other split with ground-truth images beside it; references come "
                             "from the other split of the scene (e.g. train/ for test/)")
        if upstream:
            method = rel[0] if len(rel) >= 3 else "render"
            dataset = rel[1] if len(rel) >= 3 else (rel[0] if rel else root.name)
            for q in list_images(renders):
                t = split / "metric_map" / "ssim" / (q.stem + ".png")
                if not t.is_file():
                    raise InputError(f"{t}: missing SSIM target for {q.name}; add metric_map/ssim or use the "
                                     "simple layout (renders + gt, targets computed on the fly)")
                items.append(Item(q, pool, split / "gt" / q.name, t, method, dataset, scene_dir.name,
                                  {"split": split_dir.name, "iter": split.name}))
        else:
            dataset = rel[0] if len(rel) >= 2 else root.name
            for mdir in sorted((p for p in renders.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name)):
                for q in list_images(mdir):
                    gt = split / "gt" / q.name
                    if not gt.is_file():
                        raise InputError(f"{gt}: missing ground truth for render {q}; renders and gt share names")
                    items.append(Item(q, pool, gt, None, mdir.name, dataset, scene_dir.name,
                                      {"split": split_dir.name}))
    if not items:
        raise InputError(f"{root}: no renders found; expected <scene>/<split>/renders/<method>/*.png + gt/, or "
                         "upstream's <scene>/<split>/ours_<iter>/{renders,gt,metric_map/ssim}")
    return items


def _reference_pool(split_dir: Path, upstream: bool) -> list[Path]:
    pool: list[Path] = []
    for other in sorted(p for p in split_dir.parent.iterdir() if p.is_dir() and p != split_dir):
        if upstream:
            iters = sorted((p for p in other.glob("ours_*") if (p / "gt").is_dir()), key=lambda p: natural_key(p.name))
            gt = iters[0] / "gt" if iters else None  # gt is the same at every iteration
        else:
            gt = other / "gt" if (other / "gt").is_dir() else None
        if gt is not None:
            pool += list_images(gt)
    return pool


# --------------------------------------------------------------------------------------------- samples
@dataclass
class Sample:
    """One query ready for the network: the query, its references, its true map when known."""

    query: torch.Tensor  # (3, H, W)
    refs: torch.Tensor  # (N, 3, H, W)
    target: torch.Tensor | None  # (H, W) true SSIM map, or None
    ref_paths: list[Path]  # the reference files used (arrays given to CrossScore: labels ``references[i]``)


def load_sample(item: Item, n_ref: int, short: int, crop: int = 0, seed: int | None = None,
                gen: torch.Generator | None = None) -> Sample:
    """Load a query, its target and references. ``crop > 0``: random ``crop``² crops (same crop for the query
    and its map, an independent one per reference; training). ``crop == 0``: :func:`fit_sample`."""
    q0 = load_rgb(item.query)
    q = resize_short(q0, short)
    target = None
    if item.target is not None:
        target = load_target(item.target)
        if target.shape != q.shape[-2:]:
            target = F.interpolate(target[None, None], size=q.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    elif item.gt is not None:
        target = true_map(q0, q, load_rgb(item.gt), short, str(item.query), str(item.gt))
    paths = select_references(item.refs, n_ref, item.query, seed)
    refs = [resize_short(load_rgb(p), short) for p in paths]
    if crop > 0:
        return _random_crops(q, refs, target, paths, crop, gen)
    return fit_sample(q, refs, target, paths)


def true_map(q0: torch.Tensor, q: torch.Tensor, g0: torch.Tensor, short: int, render: str, gt: str) -> torch.Tensor:
    """The SSIM map of the resized render ``q`` against its ground truth ``g0`` resized alike; ``q0``/``g0`` are
    the images as read, ``render``/``gt`` their names for the error of two sizes."""
    if g0.shape != q0.shape:  # the sizes of the files, before any resizing: what the user can check and fix
        raise InputError(f"{gt}: ground truth is {g0.shape[2]}x{g0.shape[1]} but render {render} is "
                         f"{q0.shape[2]}x{q0.shape[1]} (width x height); a render and its ground truth must have "
                         "one size")
    return ssim_target(q[None], resize_short(g0, short)[None])[0]


def fit_sample(q: torch.Tensor, refs: Sequence[torch.Tensor], target: torch.Tensor | None,
               ref_paths: list[Path]) -> Sample:
    """Predict and test sizing of resized images: the query (and its map) cropped top-left to the patch-aligned
    region, every reference resized to cover it and centre-cropped to it."""
    q = patch_crop(q)
    target = patch_crop(target) if target is not None else None
    return Sample(q, _stack([fit_to(r, tuple(q.shape[1:])) for r in refs], q), target, ref_paths)


def _random_crops(q: torch.Tensor, refs: Sequence[torch.Tensor], target: torch.Tensor | None, paths: list[Path],
                  crop: int, gen: torch.Generator | None) -> Sample:
    """Training crops: one random ``crop``² window for the query and its map, an independent one per reference."""
    ch, cw = min(crop, q.shape[1]), min(crop, q.shape[2])
    top, left = _rand_corner(q.shape[1:], (ch, cw), gen)
    q = q[:, top:top + ch, left:left + cw]
    target = target[top:top + ch, left:left + cw] if target is not None else None
    cropped = []
    for r in refs:
        if r.shape[1] < ch or r.shape[2] < cw:  # a reference smaller than the crop: enlarge it to cover
            r = fit_to(r, (max(ch, r.shape[1]), max(cw, r.shape[2])))
        t, left_ = _rand_corner(r.shape[1:], (ch, cw), gen)
        cropped.append(r[:, t:t + ch, left_:left_ + cw])
    return Sample(q, _stack(cropped, q), target, paths)


def _stack(refs: Sequence[torch.Tensor], q: torch.Tensor) -> torch.Tensor:
    return torch.stack(list(refs)) if refs else q.new_zeros((0, *q.shape))


def _rand_corner(size, crop, gen: torch.Generator | None) -> tuple[int, int]:
    top = int(torch.randint(0, size[0] - crop[0] + 1, (1,), generator=gen)) if size[0] > crop[0] else 0
    left = int(torch.randint(0, size[1] - crop[1] + 1, (1,), generator=gen)) if size[1] > crop[1] else 0
    return top, left


def collate(samples: Sequence[Sample]) -> dict[str, torch.Tensor | None]:
    """Stack samples of one size; references padded to the largest count with a validity mask."""
    n = max(s.refs.shape[0] for s in samples)
    q = torch.stack([s.query for s in samples])
    refs = q.new_zeros((len(samples), n, *q.shape[1:]))
    valid = torch.zeros(len(samples), n, dtype=torch.bool)
    for i, s in enumerate(samples):
        refs[i, : s.refs.shape[0]] = s.refs
        valid[i, : s.refs.shape[0]] = True
    targets = [s.target for s in samples]
    tgt = torch.stack(targets) if all(t is not None for t in targets) else None
    return {"query": q, "refs": refs if n else None, "ref_valid": valid if n else None, "target": tgt}


def batches_by_size(samples: Iterator[tuple[Item, Sample]], batch_size: int) -> Iterator[list[tuple[Item, Sample]]]:
    """Group consecutive samples of one image size into batches of at most ``batch_size``."""
    buf: list[tuple[Item, Sample]] = []
    for it in samples:
        if buf and (len(buf) >= batch_size or buf[0][1].query.shape != it[1].query.shape):
            yield buf
            buf = []
        buf.append(it)
    if buf:
        yield buf
