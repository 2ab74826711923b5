"""Pixel values to ``uint8`` RGB: one image file (:func:`read_image`, :func:`image_size`) or an array
(:func:`to_uint8`). Conversions (documented in docs/scoring.md, 'Input formats and conversions'):

- grayscale (``L``, ``1``) is replicated to three channels; palette images are expanded to RGB;
- an alpha channel is discarded (the colour channels are used as stored), with a warning; ``alpha=True`` keeps
  it as a fourth channel instead (RGBA ``uint8``), for a caller that composites (the full-reference metrics);
- 16-bit images (PNG, grayscale or colour) are reduced to 8 bits by ``round(v / 257)`` (= v·255/65535),
  rather than Pillow's truncation to the high byte;
- CMYK / YCbCr / other colour modes are converted by Pillow to RGB;
- arrays: see :func:`to_uint8` (never a silent clip).

A frame over :data:`MAX_FRAME_PIXELS` is refused from its header, before decoding. Bad input raises
:class:`InputError`, one line naming the file and what to do. Sequences are read by ``models/frames.py``.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
from PIL import Image, JpegImagePlugin, PngImagePlugin, UnidentifiedImageError

from models.errors import InputError

# Largest frame read: Pillow's default Image.MAX_IMAGE_PIXELS (about 9459x9459); larger ones are refused.
MAX_FRAME_PIXELS = 89_478_485


def _png_is_16bit(path: Path) -> bool:
    """True for a 16-bit-per-channel PNG (IHDR bit depth byte), which Pillow would truncate for RGB."""
    with open(path, "rb") as f:
        head = f.read(26)
    return head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) == 26 and head[24] == 16


def _header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) of a PNG or JPEG from its header, without Pillow's decompression-bomb check (so that a
    huge frame is refused by :func:`_check_pixels`, in one line naming its size); None for other content."""
    plugin = {b"\x89PNG": PngImagePlugin.PngImageFile, b"\xff\xd8\xff": JpegImagePlugin.JpegImageFile}
    try:
        with open(path, "rb") as f:
            head = f.read(4)
        cls = next((c for magic, c in plugin.items() if head.startswith(magic)), None)
        if cls is None:
            return None
        with cls(path) as im:
            return im.size
    except (OSError, SyntaxError, ValueError, IndexError, TypeError, struct.error):
        return None  # Image.open reports it


def _jpeg_rgb_fast(path: Path) -> np.ndarray | None:
    """A complete 3-component (YCbCr/RGB) JPEG decoded by OpenCV's libjpeg-turbo: the same pixels as Pillow's
    (islow IDCT, fancy upsampling; tests/nvs_sqa/test_speed_paths.py checks it) in ≈60 % of the time. None for
    anything else (grayscale, CMYK, a file not ending in EOI, a decode failure): Pillow then reads and reports it."""
    try:
        with open(path, "rb") as f:
            f.seek(-2, 2)
            if f.read(2) != b"\xff\xd9":  # truncated or trailing data: Pillow's rules and messages apply
                return None
        with JpegImagePlugin.JpegImageFile(path) as im:
            if im.mode != "RGB":
                return None
        import cv2  # already a dependency (16-bit PNGs)

        rgb = cv2.imread(str(path), cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION)  # as stored, as Pillow
    except (OSError, SyntaxError, ValueError, IndexError, TypeError, struct.error, AttributeError):
        return None
    return rgb if rgb is not None and rgb.ndim == 3 and rgb.shape[2] == 3 else None


def _check_pixels(path: Path, width: int, height: int) -> None:
    if width * height > MAX_FRAME_PIXELS:
        raise InputError(
            f"{path}: frame is {width}x{height} ({width * height:,} px), above the limit of {MAX_FRAME_PIXELS:,} px "
            "per frame (Pillow's decompression-bomb limit, about 9459x9459); downscale the render"
        )


def _bomb_error(path: Path, e: Exception) -> InputError:
    """One line for Pillow's DecompressionBombError (content that is neither PNG nor JPEG)."""
    n = re.search(r"\((\d+) pixels\)", str(e))
    size = f"{int(n.group(1)):,} px" if n else str(e).splitlines()[0]
    return InputError(f"{path}: frame of {size} is above the limit of {MAX_FRAME_PIXELS:,} px per frame (Pillow's "
                      "decompression-bomb limit, about 9459x9459); downscale the render")


UINT16_AMBIGUOUS = 4095  # uint16 arrays whose maximum is at most this need max_value


def to_uint8(arr: np.ndarray, max_value: float | None = None, source: str = "<array>") -> np.ndarray:
    """Pixel values to ``uint8`` by the rules of docs/scoring.md, 'Arrays and tensors': never a silent clip.

    uint8 as is; uint16 by ``round(v / 257)`` when some value exceeds 4095 (below, 8-, 10- and 12-bit data kept
    in uint16 cannot be told from dark 16-bit data: ``max_value`` must say which); other integers as is when all
    lie in 0..255; floats
    ``round(255 v)`` when all lie in [0, 1]; with ``max_value``, any integer or float ``round(255 v / max_value)``
    when all lie in [0, max_value]. Anything else (out of range, NaN/inf, bool, other types) is an error.
    """
    kind, dt = arr.dtype.kind, arr.dtype
    if kind not in "iuf":
        raise InputError(f"{source}: pixel type {dt} is not supported; pass uint8 (0-255), uint16 (0-65535) or "
                         "float (0-1) frames")
    if arr.size == 0 or (dt == np.uint8 and max_value is None):
        return arr.astype(np.uint8, copy=False)
    lo, hi = arr.min(), arr.max()
    if kind == "f" and not (np.isfinite(lo) and np.isfinite(hi)):
        what = "NaN" if np.isnan(lo) or np.isnan(hi) else "infinite values"
        raise InputError(f"{source}: frames contain {what}; pass finite pixel values in [0, 1]")
    if max_value is not None:
        if isinstance(max_value, bool) or not (isinstance(max_value, (int, float, np.number)) and max_value > 0
                                                and np.isfinite(max_value)):
            raise InputError(f"{source}: max_value must be a positive number, got {max_value!r}")
        if lo < 0 or hi > max_value:
            raise InputError(f"{source}: values range {lo:g}..{hi:g}, outside 0..max_value={max_value:g}; pass the "
                             "true maximum of the pixel scale as max_value")
        scale = 255.0 / max_value
    elif kind == "f":
        if lo < 0 or hi > 1:
            raise InputError(f"{source}: float frames must lie in [0, 1] (max 1.0), got values {lo:g}..{hi:g}; "
                             "divide by the scale's maximum, or pass max_value=<that maximum> (e.g. 255)")
        scale = 255.0
    elif dt == np.uint16:
        if 0 < hi <= UINT16_AMBIGUOUS:  # 8-, 10- or 12-bit values kept in uint16 would read as nearly black
            raise InputError(f"{source}: uint16 frames with values only up to {hi} may be 8-, 10- or 12-bit pixels; "
                             "pass max_value (255, 1023, 4095, or 65535 if they really are 16-bit)")
        scale = 1 / 257.0  # = 255 / 65535, as 16-bit PNGs
    elif lo < 0 or hi > 255:
        raise InputError(f"{source}: {dt} frames hold values {lo}..{hi}, outside 0..255; pass uint16 for 16-bit "
                         "pixels (0-65535), or max_value=<the maximum> (e.g. max_value=1023 for 10-bit)")
    else:
        return arr.astype(np.uint8)
    work = arr.astype(np.float32 if kind == "f" and dt.itemsize <= 4 and max_value is None else np.float64,
                      copy=False)
    return np.rint(work * scale).astype(np.uint8)


def read_image(path: Path, warn: set[str] | None = None, alpha: bool = False) -> np.ndarray:
    """Decode one image file to ``uint8`` RGB (H, W, 3), applying the documented conversions.

    ``warn`` collects one-word conversion notes (``alpha``, ``16-bit``, ``grayscale``, ...) so that callers
    can warn once per sequence instead of once per frame. ``alpha``: an image with an alpha channel (or a
    transparent palette entry) comes back as RGBA (H, W, 4), its alpha as stored; other images as RGB.
    """
    notes = warn if warn is not None else set()
    size = _header_size(path)
    if size is not None:
        _check_pixels(path, *size)
    if size is not None and path.suffix.lower() in (".jpg", ".jpeg"):
        rgb = _jpeg_rgb_fast(path)
        if rgb is not None:
            return rgb
    try:
        if path.suffix.lower() == ".png" and _png_is_16bit(path):
            import cv2  # only for 16-bit colour PNGs, which Pillow reads as 8-bit by truncation

            raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if raw is None:
                raise InputError(f"{path}: cannot decode this 16-bit PNG; re-export it as 8-bit PNG or JPEG")
            notes.add("16-bit")
            if raw.ndim == 2:
                raw = np.repeat(raw[..., None], 3, axis=2)
                notes.add("grayscale")
            elif raw.shape[2] == 4:
                raw = raw[..., [2, 1, 0, 3] if alpha else [2, 1, 0]]
                notes.add("alpha")
            else:
                raw = raw[..., ::-1]
            return np.ascontiguousarray(to_uint8(raw, 65535, str(path)))
        with Image.open(path) as im:
            im.load()  # decodes now, so that truncation is reported here
            mode = im.mode
            has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info)
            if mode == "RGB":
                return np.asarray(im)
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                notes.update({"16-bit", "grayscale"})
                arr = to_uint8(np.asarray(im), 65535, str(path))
                return np.repeat(arr[..., None], 3, axis=2)
            if mode == "F":
                raise InputError(f"{path}: floating-point images are not supported; save frames as 8-bit PNG/JPEG")
            if mode in ("L", "1", "LA", "La"):
                notes.add("grayscale")
            elif mode == "P":
                notes.add("palette")
            if has_alpha:
                notes.add("alpha")
                if alpha:
                    return np.asarray(im if mode == "RGBA" else im.convert("RGBA"))
            return np.asarray(im.convert("RGB"))
    except InputError:
        raise
    except Image.DecompressionBombError as e:
        raise _bomb_error(path, e) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{path}: cannot decode image ({reason}); re-export or remove this frame") from None


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels; frames over MAX_FRAME_PIXELS are
    refused in one line."""
    try:
        size = _header_size(path)
        if size is None:
            with Image.open(path) as im:
                size = im.size
    except Image.DecompressionBombError as e:
        raise _bomb_error(path, e) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{path}: not a readable image ({reason}); re-export or remove this frame") from None
    _check_pixels(path, *size)
    return size
