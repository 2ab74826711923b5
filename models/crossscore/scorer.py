"""CrossScore, the API object: load a model once, then per-pixel SSIM maps of renders given as arrays or files.

    from models.crossscore import CrossScore
    cs = CrossScore.from_checkpoint()                  # the committed demo model; or a folder / .pth / upstream .ckpt
    m = cs.predict(render, [ref1, ref2, ref3])         # (H', W') float32 map in [0, 1]; arrays or image paths
    m = cs.predict("render.png", "photos/")            # references: also a folder (natural-sorted)

``crossscore.py predict`` is a thin layer over this object (it adds file discovery and the output files).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from consts import CROSSSCORE_DEMO_MODEL, CROSSSCORE_DEMO_WARNING, CROSSSCORE_N_REF
from models.crossscore.checkpoint import load_model, short_side_for
from models.crossscore.data import (
    Sample,
    collate,
    fit_sample,
    load_rgb,
    reference_indices,
    resize_short,
    rgb_tensor,
    select_references,
    true_map,
)
from models.crossscore.evaluate import autocast_for, check_precision, net_predictor
from models.crossscore.network import CrossScoreNet
from models.errors import InputError, ValidityWarning
from models.frames import list_images
from models.pixels import to_uint8
from models.runtime import resolve_device

# One image: an (H, W, 3) array or tensor (uint8 0-255, uint16 0-65535, float in [0, 1]) or an image file.
Image = str | Path | np.ndarray | torch.Tensor
DIM_ORDERS = ("HWC", "CHW")


def attention_patches(patches: str | None, grid: tuple[int, int] | None = None) -> list[tuple[int, int]]:
    """Query patches to show the attention of: "centre" (upstream: the patch (Nh // 2, Nw // 2)) or
    "ROW,COL[;ROW,COL...]"; checked against the token ``grid`` when given. None or "": []."""
    if not patches:
        return []
    if patches == "centre":
        return [(grid[0] // 2, grid[1] // 2)] if grid else [(0, 0)]
    try:
        chosen = [tuple(int(v) for v in p.split(",")) for p in patches.split(";") if p.strip()]
    except ValueError:
        chosen = []
    if not chosen or any(len(p) != 2 for p in chosen):
        raise InputError(f"patches={patches}: use 'centre' or token coordinates 'ROW,COL[;ROW,COL...]'")
    if grid and any(not (0 <= r < grid[0] and 0 <= c < grid[1]) for r, c in chosen):
        raise InputError(f"patches={patches}: the token grid is {grid[0]} rows x {grid[1]} columns (14-px "
                         "patches of the resized query); give coordinates inside it")
    return chosen  # type: ignore[return-value]


def image_tensor(image: Image, name: str, dim_order: str = "HWC") -> tuple[torch.Tensor, Path | None]:
    """(3, H, W) float32 in [0, 1] and the file (None for an array). A file is read as ``crossscore.py`` reads
    it; integer arrays are converted as files are (``v / 255``; uint16 by ``round(v / 257)`` first); float
    arrays in [0, 1] are used as they are. ``name`` (the parameter) heads every error."""
    if isinstance(image, (str, Path)):
        if not Path(image).is_file():
            raise InputError(f"{name}: {image} is not an image file")
        return load_rgb(Path(image)), Path(image)
    if dim_order not in DIM_ORDERS:
        raise InputError(f"dim_order={dim_order!r}: use 'HWC' or 'CHW'")
    arr = _hwc(image, name, dim_order)
    if arr.dtype.kind != "f":
        return rgb_tensor(to_uint8(arr, source=name)), None
    lo, hi = float(arr.min()), float(arr.max())
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0 or hi > 1:
        raise InputError(f"{name}: float pixels must be finite and lie in [0, 1], got {lo:g}..{hi:g}; divide by "
                         "the scale's maximum (e.g. 255)")
    return torch.from_numpy(np.array(arr, np.float32)).permute(2, 0, 1), None


def _hwc(image: np.ndarray | torch.Tensor, name: str, dim_order: str) -> np.ndarray:
    """An array or tensor as a non-empty (H, W, 3) array (one channel is repeated), dtype kept."""
    if isinstance(image, torch.Tensor):
        t = image.detach().cpu()
        arr = (t.float() if t.dtype in (torch.float16, torch.bfloat16) else t).numpy()
    else:
        arr = np.asarray(image)
    shape = arr.shape
    if arr.ndim == 3 and dim_order == "CHW":
        arr = arr.transpose(1, 2, 0)
    if arr.ndim != 3 or arr.shape[2] not in (1, 3) or arr.size == 0:
        want = "(H, W, 3)" if dim_order == "HWC" else "(3, H, W)"
        raise InputError(f"{name}: expected one RGB image of shape {want} (dim_order={dim_order!r}), got shape "
                         f"{shape}")
    return np.repeat(arr, 3, axis=2) if arr.shape[2] == 1 else arr


class CrossScore:
    """A CrossScore model ready to score renders: per-pixel SSIM maps predicted from references.

    ``net``: the network; ``device``: "auto" | "cpu" | "cuda"; ``precision``: "auto" (fp16 autocast on CUDA as
    upstream's 16-mixed predict, fp32 on the CPU) | "fp32" | "fp16" (autocast on any device); ``short_side``:
    every image is resized to this short side before scoring (0 keeps the size); ``n_ref``: references per
    render (0: the no-reference variant); ``seed``: draw references at random (None: the even spread);
    ``info``: provenance of the weights (as :func:`models.crossscore.checkpoint.load_model` returns it).
    """

    def __init__(self, net: CrossScoreNet, device: str | torch.device = "auto", precision: str = "auto",
                 short_side: int = 0, n_ref: int = CROSSSCORE_N_REF, seed: int | None = None,
                 info: dict[str, Any] | None = None) -> None:
        check_precision(precision)
        for name, value in (("n_ref", n_ref), ("short_side", short_side)):
            if value < 0:
                raise InputError(f"{name}={value}: must be >= 0")
        self.device = resolve_device(device)
        self.net = net.eval().to(self.device)
        self.precision, self.short_side, self.n_ref, self.seed = precision, short_side, n_ref, seed
        self.info = dict(info or {})
        self._predict = net_predictor(self.net, self.device, precision=precision)

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, device: str | torch.device = "auto",
                        precision: str = "auto", *, backbone: str | None = None, short_side: int = -1,
                        n_ref: int = CROSSSCORE_N_REF, seed: int | None = None) -> CrossScore:
        """Load a checkpoint: our folder (config.json + model.pth), a one-file ``.pth``, or upstream's
        ``CrossScore-v1.0.0.ckpt`` (``backbone``: a DINOv2 folder whose config.json gives its shape); None: the
        committed demo model ``examples/.crossscore-demo.pth``. ``short_side=-1``: the size the checkpoint was
        trained at (518 for upstream's). Other arguments: see the class."""
        path = CROSSSCORE_DEMO_MODEL if path is None else path
        check_precision(precision)  # before the weights are read
        dev = resolve_device(device)
        net, info = load_model(path, backbone)
        if Path(path).resolve() == CROSSSCORE_DEMO_MODEL.resolve():  # said every time it is used
            info["warning"] = CROSSSCORE_DEMO_WARNING
            warnings.warn(CROSSSCORE_DEMO_WARNING, ValidityWarning, stacklevel=2)
        return cls(net, dev, precision, short_side_for(short_side, str(path)), n_ref, seed, info)

    # ------------------------------------------------------------------------------------------ inputs
    def references_of(self, references: Image | Sequence[Image] | None, render: Path | None = None,
                      dim_order: str = "HWC") -> tuple[list[torch.Tensor], list[Path]]:
        """The ``n_ref`` references used for one render, as read (before resizing), and their files (arrays:
        the labels ``references[i]``).

        ``references``: a folder (its images), or a sequence of image files and/or arrays. Files only: they are
        natural-sorted by name and the render's own file is dropped, exactly as ``crossscore.py predict`` treats
        its ``--references`` folder; arrays keep the given order. Of these, all are used when there are at most
        ``n_ref``; else ``n_ref`` spread evenly (indices ``round(linspace(0, n − 1, n_ref))``), or drawn at
        random with ``seed`` (reproducibly per render file name)."""
        if self.n_ref == 0:
            return [], []
        pool = self._pool(references)
        if all(isinstance(r, (str, Path)) for r in pool):
            paths = select_references([Path(r) for r in pool], self.n_ref, render, self.seed)  # type: ignore[arg-type]
            chosen: list[tuple[Image, Path]] = [(p, p) for p in paths]
        else:
            keep = [i for i, r in enumerate(pool) if not _same_file(r, render)]
            idx = reference_indices(len(keep), self.n_ref, self.seed, render.name if render else "")
            chosen = [(pool[keep[i]], _label(pool[keep[i]], keep[i])) for i in idx]
        if not chosen:
            what = render if render is not None else "the render"
            raise InputError(f"references: no reference image for {what} (besides the render itself); give real "
                             "photos of the scene from other viewpoints")
        # an error about one reference names it by its place in `references` (a file: by its path)
        images = [image_tensor(image, str(label), dim_order)[0] for image, label in chosen]
        return images, [label for _, label in chosen]

    @staticmethod
    def _pool(references: Image | Sequence[Image] | None) -> list[Image]:
        if references is None:
            return []
        if isinstance(references, (str, Path)):
            folder = Path(references)
            if not folder.is_dir():
                raise InputError(f"references: {folder} is not a folder; give a folder or a list of images")
            return list(list_images(folder))
        if isinstance(references, (np.ndarray, torch.Tensor)) and references.ndim == 3:
            return [references]  # one image
        return list(references)

    def sample(self, render: Image, references: Image | Sequence[Image] | None, gt: Image | None = None,
               dim_order: str = "HWC") -> Sample:
        """One render ready for the network: resized to ``short_side``, cropped top-left to multiples of the
        14-px patch; its references (see :meth:`references_of`) resized to the short side, then to cover the
        render and centre-cropped to it; with ``gt`` (its aligned ground truth), the true SSIM map."""
        q0, qpath = image_tensor(render, "render", dim_order)
        q = resize_short(q0, self.short_side)
        target = None
        if gt is not None:
            g0, gpath = image_tensor(gt, "gt", dim_order)
            target = true_map(q0, q, g0, self.short_side, str(qpath or "<array>"), str(gpath or "gt"))
        refs, labels = self.references_of(references, qpath, dim_order)
        return fit_sample(q, [resize_short(r, self.short_side) for r in refs], target, labels)

    # ------------------------------------------------------------------------------------------ maps
    def maps(self, samples: Sequence[Sample]) -> list[np.ndarray]:
        """The maps of prepared samples, in order: one network call per image size."""
        by_size: dict[tuple, list[int]] = {}
        for j, s in enumerate(samples):
            by_size.setdefault(tuple(s.query.shape), []).append(j)
        out: list[np.ndarray] = [np.empty(0)] * len(samples)
        for idx in by_size.values():
            for j, m in zip(idx, self._predict(collate([samples[j] for j in idx])), strict=True):
                out[j] = m.numpy()
        return out

    def predict(self, render: Image, references: Image | Sequence[Image] | None, dim_order: str = "HWC"
                ) -> np.ndarray:
        """The (H', W') float32 map of one render (H', W': the resized render's size cut down to multiples of
        14), values in [0, 1], 1 = as its unseen ground truth would be. ``render`` and each reference: an
        image file or an (H, W, 3) array (``dim_order="CHW"``: (3, H, W)); see :meth:`references_of` for
        which references are used and :meth:`sample` for the sizing. Writes nothing."""
        return self.maps([self.sample(render, references, dim_order=dim_order)])[0]

    def predict_many(self, renders: Sequence[Image], references: Image | Sequence[Image] | None,
                     batch_size: int = 8, dim_order: str = "HWC") -> list[np.ndarray]:
        """:meth:`predict` for several renders sharing one reference pool, ``batch_size`` renders a call."""
        if batch_size < 1:
            raise InputError(f"batch_size={batch_size}: must be >= 1")
        pool = self._pool(references)
        out: list[np.ndarray] = []
        for i in range(0, len(renders), batch_size):
            out += self.maps([self.sample(r, pool, dim_order=dim_order) for r in renders[i:i + batch_size]])
        return out

    def attention(self, sample: Sample, patches: str = "centre", head: int = 0
                  ) -> tuple[list[tuple[int, int]], np.ndarray]:
        """The chosen query ``patches`` (see :func:`attention_patches`) and their cross-attention over the
        references, (P, N_ref, Nh, Nw), from one ``head`` of the last decoder layer."""
        n_heads = self.net.cfg.n_heads
        if not 0 <= head < n_heads:
            raise InputError(f"head={head}: the decoder has {n_heads} heads (0..{n_heads - 1})")
        if not sample.ref_paths:
            raise InputError(f"patches={patches}: needs references (the no-reference variant attends to the query "
                             "itself)")
        b = collate([sample])
        with torch.no_grad(), autocast_for(self.device, self.precision):
            a = self.net(b["query"].to(self.device), b["refs"].to(self.device), b["ref_valid"].to(self.device),
                         need_attn=True, attn_head=head)["attn"]
        a = a[0].float().cpu().numpy()  # (Nh, Nw, N, Nh, Nw)
        chosen = attention_patches(patches, a.shape[:2])
        return chosen, a[tuple(zip(*chosen, strict=True))] if chosen else a[:0, 0]


def _same_file(image: Image, render: Path | None) -> bool:
    return render is not None and isinstance(image, (str, Path)) and Path(image).resolve() == render.resolve()


def _label(image: Image, index: int) -> Path:
    return Path(image) if isinstance(image, (str, Path)) else Path(f"references[{index}]")
