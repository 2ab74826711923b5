"""Reading sequences: a folder of frames, a video file, a list of image paths or an array of frames.

Every sequence becomes a stream of validated ``uint8`` RGB frames of shape (H, W, 3) (``dim_order="HWC"``).
All bad-input errors are raised here, once, as :class:`InputError` whose message is one line naming the
file and what to do. Conversions (documented in docs/scoring.md):

- grayscale (``L``, ``1``) is replicated to three channels; palette images are expanded to RGB;
- an alpha channel is discarded (the colour channels are used as stored), with a warning;
- 16-bit images (PNG, grayscale or colour) are reduced to 8 bits by ``round(v / 257)`` (= v·255/65535),
  rather than Pillow's truncation to the high byte;
- CMYK / YCbCr / other colour modes are converted by Pillow to RGB.

Frames are ordered by *natural* sort of their file names (``f2 < f10``); ``sort="plain"`` gives upstream's
plain ``sorted()`` order. The two agree whenever frame numbers are zero-padded, as in the examples.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from consts import IMAGE_EXTS, VIDEO_EXTS
from models.errors import InputError

log = logging.getLogger(__name__)

SortOrder = Literal["natural", "plain"]
# Files we write ourselves next to the frames (app.py's default output folder is the input folder).
OWN_OUTPUTS = frozenset({"output_features.npz", "scores.csv", "scores.json"})


def natural_key(name: str) -> list[int | str]:
    """Sort key that orders embedded integers numerically: ``frame2.png`` < ``frame10.png``."""
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", name)]


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTS


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTS


# --------------------------------------------------------------------------------------------- images
def _png_is_16bit(path: Path) -> bool:
    """True for a 16-bit-per-channel PNG (IHDR bit depth byte), which Pillow would truncate for RGB."""
    with open(path, "rb") as f:
        head = f.read(26)
    return head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) == 26 and head[24] == 16


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype in (np.uint16, np.int32, np.int64) or arr.dtype.kind in "iu":
        return np.clip(np.rint(arr.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)
    raise InputError(f"unsupported pixel type {arr.dtype}")


def read_image(path: Path, warn: set[str] | None = None) -> np.ndarray:
    """Decode one image file to ``uint8`` RGB (H, W, 3), applying the documented conversions.

    ``warn`` collects one-word conversion notes (``alpha``, ``16-bit``, ``grayscale``, ...) so that callers
    can warn once per sequence instead of once per frame.
    """
    notes = warn if warn is not None else set()
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
                raw = raw[..., [2, 1, 0]]
                notes.add("alpha")
            else:
                raw = raw[..., ::-1]
            return np.ascontiguousarray(_to_uint8(raw))
        with Image.open(path) as im:
            im.load()  # decodes now, so that truncation is reported here
            mode = im.mode
            if mode == "RGB":
                return np.asarray(im)
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                notes.update({"16-bit", "grayscale"})
                arr = _to_uint8(np.asarray(im))
                return np.repeat(arr[..., None], 3, axis=2)
            if mode == "F":
                raise InputError(f"{path}: floating-point images are not supported; save frames as 8-bit PNG/JPEG")
            if mode in ("L", "1"):
                notes.add("grayscale")
            elif mode == "P":
                if "transparency" in im.info:
                    notes.add("alpha")
                notes.add("palette")
            elif mode in ("RGBA", "LA", "PA", "RGBa", "La"):
                notes.add("alpha")
                if mode in ("LA", "La"):
                    notes.add("grayscale")
            return np.asarray(im.convert("RGB"))
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{path}: cannot decode image ({reason}); re-export or remove this frame") from None


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{path}: not a readable image ({reason}); re-export or remove this frame") from None


# --------------------------------------------------------------------------------------------- sequences
@dataclass
class FrameSequence:
    """One neurally synthesised sequence (NSS): frames in temporal order, all of one size.

    Iterating yields ``uint8`` (H, W, 3) RGB arrays. Sizes are read from headers up front, so that a
    sequence with mixed sizes fails before any compute; decoding errors surface during iteration.
    """

    name: str
    source: str  # folder, video file, or "<array>"
    kind: Literal["frames", "video", "array"]
    width: int
    height: int
    n_frames: int  # exact for frames and arrays; the container's estimate for videos until read
    files: list[Path] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    _array: np.ndarray | None = field(default=None, repr=False)

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.kind == "frames":
            yield from self._iter_files()
        elif self.kind == "video":
            yield from self._iter_video()
        else:
            assert self._array is not None
            yield from self._array

    def _iter_files(self) -> Iterator[np.ndarray]:
        notes: set[str] = set()
        for i, path in enumerate(self.files):
            frame = read_image(path, notes)
            if frame.shape[:2] != (self.height, self.width):  # header lied (rare), still refuse
                raise InputError(
                    f"{path}: frame is {frame.shape[1]}x{frame.shape[0]} but the sequence is "
                    f"{self.width}x{self.height}; all frames of a sequence must have one size"
                )
            if i == 0 and notes:
                log.warning("%s: frames converted to 8-bit RGB (%s); see docs/scoring.md, 'Input formats and "
                            "conversions'", self.source, ", ".join(sorted(notes)))
            yield frame

    def _iter_video(self) -> Iterator[np.ndarray]:
        import cv2

        cap = cv2.VideoCapture(self.source)
        try:
            count = 0
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                if bgr.shape[:2] != (self.height, self.width):
                    raise InputError(f"{self.source}: frame {count} changes size; re-encode the video")
                count += 1
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            if count == 0:
                raise InputError(f"{self.source}: no frame could be decoded; re-encode the video (e.g. H.264 mp4)")
            self.n_frames = count
        finally:
            cap.release()


def _check_size(path: str | Path, width: int, height: int, min_size: int) -> None:
    if min(width, height) < min_size:
        raise InputError(
            f"{path}: frames are {width}x{height}, smaller than the {min_size}x{min_size} the network needs; "
            "render at a higher resolution"
        )


def open_frame_files(
    files: Sequence[Path], name: str, source: str, min_size: int, ignored: list[str] | None = None
) -> FrameSequence:
    """A sequence from image files already in temporal order; sizes validated from headers."""
    if not files:
        raise InputError(f"{source}: no frames (.png/.jpg/.jpeg) found; point at a folder of rendered frames")
    width, height = image_size(files[0])
    for p in files[1:]:
        if image_size(p) != (width, height):
            w, h = image_size(p)
            raise InputError(
                f"{p}: frame is {w}x{h} but {files[0].name} is {width}x{height}; "
                "all frames of a sequence must have one size (resize or split the sequence)"
            )
    _check_size(files[0], width, height, min_size)
    if len(files) == 1:
        log.warning("%s: a single frame; the model sees no temporal change, so treat its score with care", source)
    return FrameSequence(name, source, "frames", width, height, len(files), list(files), ignored or [])


def open_frame_folder(folder: Path, min_size: int, sort: SortOrder = "natural") -> FrameSequence:
    """A folder of frames (one NSS). Non-image files are ignored and reported."""
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder; check the path")
    entries = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    files = [p for p in entries if is_image(p)]
    ignored = sorted(p.name for p in entries if not is_image(p) and p.name not in OWN_OUTPUTS)
    key = (lambda p: natural_key(p.name)) if sort == "natural" else (lambda p: str(p))
    files.sort(key=key)
    if ignored:
        shown = ", ".join(ignored[:5]) + (f" (+{len(ignored) - 5} more)" if len(ignored) > 5 else "")
        log.warning("%s: ignoring %d non-image file(s): %s", folder, len(ignored), shown)
    return open_frame_files(files, folder.name, str(folder), min_size, ignored)


def open_video(path: Path, min_size: int) -> FrameSequence:
    """A video file, decoded as a stream (never loaded whole)."""
    import cv2

    if not path.is_file():
        raise InputError(f"{path}: no such file; check the path")
    cap = cv2.VideoCapture(str(path))
    try:
        ok, bgr = cap.read() if cap.isOpened() else (False, None)
        if not ok:
            raise InputError(f"{path}: cannot read this video; re-encode it (e.g. H.264 mp4) or extract frames")
        height, width = bgr.shape[:2]
        n_est = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 0
    finally:
        cap.release()
    _check_size(path, width, height, min_size)
    return FrameSequence(path.stem, str(path), "video", width, height, max(n_est, 1))


def open_array(frames: np.ndarray, min_size: int, dim_order: str = "THWC", name: str = "array") -> FrameSequence:
    """A sequence from an in-memory array or tensor: ``uint8`` 0–255 or float 0–1, ``dim_order`` THWC or TCHW."""
    try:
        import torch

        if isinstance(frames, torch.Tensor):
            frames = frames.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    arr = np.asarray(frames)
    if arr.ndim == 3:  # one frame
        arr = arr[None]
    if arr.ndim != 4 or dim_order not in ("THWC", "TCHW"):
        raise InputError(f"<array>: expected 4-d frames in dim_order THWC or TCHW, got shape {arr.shape}")
    if dim_order == "TCHW":
        arr = arr.transpose(0, 2, 3, 1)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    if arr.shape[-1] != 3:
        raise InputError(f"<array>: expected 3 colour channels, got shape {arr.shape} (dim_order={dim_order})")
    if arr.dtype.kind == "f":
        arr = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)  # the network sees uint8/255, as upstream
    elif arr.dtype != np.uint8:
        arr = _to_uint8(arr)
    t, h, w, _ = arr.shape
    _check_size("<array>", w, h, min_size)
    return FrameSequence(name, "<array>", "array", w, h, t, _array=np.ascontiguousarray(arr))


def open_sequence(
    item: str | Path | Sequence[str | Path] | np.ndarray, min_size: int, sort: SortOrder = "natural",
    dim_order: str = "THWC",
) -> FrameSequence:
    """Open anything that is one sequence: a frame folder, a video file, a list of image paths, an array.

    ``dim_order`` (THWC or TCHW) applies to arrays and tensors only.
    """
    if isinstance(item, (str, Path)):
        path = Path(item)
        if path.is_dir():
            return open_frame_folder(path, min_size, sort)
        if path.is_file():
            if is_video(path):
                return open_video(path, min_size)
            if is_image(path):
                return open_frame_files([path], path.stem, str(path), min_size)
            raise InputError(f"{path}: not a frame folder, image or video ({', '.join(VIDEO_EXTS)})")
        raise InputError(f"{path}: no such file or folder; check the path")
    if isinstance(item, (list, tuple)):
        files = [Path(p) for p in item]
        for p in files:
            if not p.is_file():
                raise InputError(f"{p}: no such file; check the path")
        name = files[0].parent.name if files else "frames"
        return open_frame_files(files, name, str(files[0].parent) if files else "<list>", min_size)
    return open_array(item, min_size, dim_order)  # type: ignore[arg-type]


def discover(path: Path) -> list[Path]:
    """Expand one command-line INPUT into sequence paths.

    A folder holding images is one sequence; a folder holding sub-folders and/or videos is a folder of
    sequences (each sub-folder with images, each video); a video file is one sequence.
    """
    if not path.exists():
        raise InputError(f"{path}: no such file or folder; check the path")
    if path.is_file():
        if is_video(path) or is_image(path):
            return [path]
        raise InputError(f"{path}: not a frame folder or a video ({', '.join(VIDEO_EXTS)})")
    children = [p for p in path.iterdir() if not p.name.startswith(".")]
    if any(p.is_file() and is_image(p) for p in children):
        return [path]
    seqs = [p for p in children if (p.is_dir() and any(is_image(q) for q in p.iterdir())) or
            (p.is_file() and is_video(p))]
    if not seqs:
        raise InputError(
            f"{path}: no frames (.png/.jpg/.jpeg), videos or sequence folders found; "
            "point at a folder of frames, a folder of such folders, or a video"
        )
    return sorted(seqs, key=lambda p: natural_key(p.name))


def prefetch(items: Iterable, depth: int = 4) -> Iterator:
    """Iterate ``items`` in a background thread, ``depth`` ahead, so decoding overlaps compute.

    Exceptions raised by the producer are re-raised in the consumer, in order.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for x in items:
                if stop.is_set():
                    return
                q.put((x, None))
            q.put((done, None))
        except BaseException as e:  # noqa: BLE001 - forwarded to the consumer
            q.put((done, e))

    t = threading.Thread(target=produce, daemon=True, name="frame-prefetch")
    t.start()
    try:
        while True:
            x, err = q.get()
            if x is done:
                if err is not None:
                    raise err
                return
            yield x
    finally:
        stop.set()
        while t.is_alive():  # drain so the producer can exit
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(timeout=0.05)
