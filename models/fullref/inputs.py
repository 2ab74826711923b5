"""Inputs of the full-reference API: an image path or an array -> a validated (H, W, 3) array; one line per bad input.

Files are read by :func:`models.pixels.read_image` (8-bit RGB: greyscale replicated, palette expanded, 16-bit
reduced by round(v / 257)), an alpha channel kept as a fourth channel. Arrays are (H, W) or (H, W, C) with C = 1, 3
or 4, uint8, uint16 or float (nominally [0, 1]; the protocols clip); greyscale is replicated, as for files. An
RGBA image stays RGBA here: the protocol composites it or drops its alpha (``Protocol.prepare``). What was
converted is collected as one-word notes, so that the caller warns once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from models.errors import InputError
from models.pixels import read_image

ImageLike = str | Path | np.ndarray | torch.Tensor
MIN_SIDE = 32  # AlexNet's pooling needs about 31 px; SSIM 11 px
NOTES = {
    "grayscale": "greyscale image replicated to RGB",
    "palette": "palette image expanded to RGB",
    "16-bit": "16-bit image file read as 8-bit (round(v / 257))",
    "clipped": "float values outside [0, 1] clipped, as every preset does",
}  # fmt: skip


def _check_array(a: np.ndarray, param: str, notes: set[str]) -> np.ndarray:
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise InputError(f"{param}: expected an (H, W) or (H, W, C) image with C = 1, 3 or 4 (channels last), "
                         f"got shape {tuple(a.shape)}")
    if a.dtype not in (np.uint8, np.uint16) and a.dtype.kind != "f":
        raise InputError(f"{param}: pixel type {a.dtype} is not supported; pass uint8, uint16 or float in [0, 1]")
    if a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise InputError(f"{param}: contains NaN or infinite values; pass finite values in [0, 1]")
        if a.size and (a.min() < 0 or a.max() > 1):
            notes.add("clipped")
    if a.shape[2] == 4:
        notes.add("alpha")
    elif a.shape[2] == 1:
        notes.add("grayscale")
        a = np.repeat(a, 3, axis=2)
    return a


def read(image: ImageLike, param: str, notes: set[str]) -> tuple[np.ndarray, str]:
    """(the image as an (H, W, 3) or RGBA (H, W, 4) uint8/uint16/float array, its name for messages: the path, else
    ``param``)."""
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise InputError(f"{path}: no such image file ({param})")
        return read_image(path, warn=notes, alpha=True), str(path)
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise InputError(f"{param}: expected an image path or an (H, W, C) array, got {type(image).__name__}")
    return _check_array(image, param, notes), param


def read_pair(render: ImageLike, gt: ImageLike, notes: set[str]) -> tuple[np.ndarray, np.ndarray, str]:
    """Both images, checked to be the same size and large enough; also the render's name."""
    r, r_name = read(render, "render", notes)
    g, g_name = read(gt, "gt", notes)
    if r.shape[:2] != g.shape[:2]:
        raise InputError(f"{r_name}: the render is {r.shape[1]}x{r.shape[0]} but the ground truth {g_name} is "
                         f"{g.shape[1]}x{g.shape[0]}; render at the ground truth's size")
    if min(r.shape[:2]) < MIN_SIDE:
        raise InputError(f"{r_name}: {r.shape[1]}x{r.shape[0]} is too small; the shorter side must be at least "
                         f"{MIN_SIDE} px")
    return r, g, r_name
