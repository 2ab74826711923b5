"""Reading sequences: a folder of frames, a video file, a list of image paths or an array of frames.

Every sequence becomes a stream of validated ``uint8`` RGB frames of shape (H, W, 3) (``dim_order="HWC"``).
All bad-input errors are raised here or in ``models/pixels.py`` (the pixel conversions of one image file or
array, documented in docs/scoring.md), once, as :class:`InputError` whose message is one line naming the
file and what to do. Which sequences an INPUT holds, and their names: models.discovery.

Frames are ordered by *natural* sort of their file names (``f2 < f10``); ``sort="plain"`` gives upstream's
plain ``sorted()`` order. The two agree whenever frame numbers are zero-padded, as in the examples.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from consts import APP_OUTPUTS, IMAGE_EXTS, VIDEO_EXTS
from models.errors import InputError
from models.pixels import image_size, read_image, to_uint8

log = logging.getLogger(__name__)

SortOrder = Literal["natural", "plain"]
# Files we write ourselves next to the frames (app.py's default output folder is the input folder).
OWN_OUTPUTS = APP_OUTPUTS


def natural_key(name: str) -> list[int | str]:
    """Sort key that orders embedded integers numerically: ``frame2.png`` < ``frame10.png``."""
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", name)]


def is_hidden(path: Path) -> bool:
    """A hidden entry (``.name``): dot files, ``.DS_Store`` and the macOS resource forks ``._0001.png``."""
    return path.name.startswith(".")


def is_image(path: Path) -> bool:
    """The one rule for which files are frames, by name: a .png/.jpg/.jpeg (any case) that is not hidden
    (:func:`is_hidden`; a macOS ``._0001.png`` is metadata, not a frame). Every lister of frames uses it."""
    return path.suffix.lower() in IMAGE_EXTS and not is_hidden(path)


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTS


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
    warnings: list[str] = field(default_factory=list)  # doubts found while reading (e.g. a truncated video)
    _array: np.ndarray | None = field(default=None, repr=False)
    # files with an alpha channel read as RGBA (H, W, 4), alpha as stored, for a reader that also hands the frames
    # to metrics that composite; their RGB channels are the frames read without it
    alpha: bool = False

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
            frame = _check_frame(path, read_image(path, notes, alpha=self.alpha), self.width, self.height)
            if i == 0:
                self.note_conversions(notes)
            yield frame

    def note_conversions(self, notes: set[str]) -> None:
        """The one warning of a sequence whose first frame needed a conversion (``notes`` of :func:`read_image`)."""
        if notes:
            log.warning("%s: frames converted to 8-bit RGB (%s); see docs/scoring.md, 'Input formats and "
                        "conversions'", self.source, ", ".join(sorted(notes)))

    @property
    def plain_files(self) -> bool:
        """Frames of image files read as RGB by this class's own reader (what :class:`DecodePool` can read for it);
        False for videos, arrays, alpha and a subclass that reads its frames otherwise."""
        return self.kind == "frames" and not self.alpha and type(self).__iter__ is FrameSequence.__iter__

    def _iter_video(self) -> Iterator[np.ndarray]:
        from models import video  # PyAV, imported only when a video is read

        # the decoded count; problems (truncation, decode errors) go to self.warnings and the results' warnings
        self.n_frames = yield from video.frames(Path(self.source), self.width, self.height, self.warnings)


def _check_frame(path: Path, frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """``frame`` if it has the sequence's size (the header said so; one that lied is still refused)."""
    if frame.shape[:2] != (height, width):
        raise InputError(f"{path}: frame is {frame.shape[1]}x{frame.shape[0]} but the sequence is {width}x{height}; "
                         "all frames of a sequence must have one size")
    return frame


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
    return FrameSequence(str(name), source, "frames", width, height, len(files), list(files), ignored or [])


def _shown(names: Sequence[str], n: int = 5) -> str:
    return ", ".join(names[:n]) + (f" (+{len(names) - n} more)" if len(names) > n else "")


def folder_name(folder: Path) -> str:
    """A folder's name as the user gave it, also for ``.`` or ``..`` (``Path('.').name`` is ''): made absolute
    without resolving links, so a link keeps its own name."""
    p = Path(os.path.abspath(folder))
    return p.name or str(p)


def list_images(folder: Path) -> list[Path]:
    """The frames of ``folder`` (files passing :func:`is_image`), natural-sorted by file name."""
    return sorted((p for p in folder.iterdir() if p.is_file() and is_image(p)), key=lambda p: natural_key(p.name))


def visible_entries(folder: Path) -> list[Path]:
    """The entries of a folder in natural order of their names, hidden ones (:func:`is_hidden`) left out (an
    OSError as is)."""
    return sorted((p for p in folder.iterdir() if not is_hidden(p)), key=lambda p: natural_key(p.name))


def _entries(folder: Path) -> list[Path]:
    """:func:`visible_entries`, an unlistable folder being one InputError line."""
    try:
        return visible_entries(folder)
    except OSError as e:
        raise InputError(f"{folder}: cannot list this folder ({e.strerror or e}); check its permissions") from None


def open_frame_folder(folder: Path, min_size: int, sort: SortOrder = "natural") -> FrameSequence:
    """A folder of frames (one NSS). Non-image files and sub-folders are ignored, and reported in a warning."""
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder; check the path")
    entries = _entries(folder)
    files = [p for p in entries if p.is_file() and is_image(p)]
    ignored = [p.name for p in entries if p.is_file() and not is_image(p) and p.name not in OWN_OUTPUTS]
    subdirs = [p.name + "/" for p in entries if p.is_dir()]
    if sort == "plain":
        files.sort(key=str)
    if ignored:
        log.warning("%s: ignoring %d non-image file(s): %s", folder, len(ignored), _shown(ignored))
    if subdirs and files:
        log.warning("%s: ignoring %d sub-folder(s) of this frame folder: %s; to score one, pass it as its own "
                    "input", folder, len(subdirs), _shown(subdirs))
    return open_frame_files(files, folder_name(folder), str(folder), min_size, ignored + subdirs)


def open_video(path: Path, min_size: int) -> FrameSequence:
    """A video file, decoded as a stream (never loaded whole) by :mod:`models.video` (PyAV)."""
    from models import video

    if not path.is_file():
        raise InputError(f"{path}: no such file; check the path")
    info = video.probe(path)
    _check_size(path, info.width, info.height, min_size)
    return FrameSequence(path.stem, str(path), "video", info.width, info.height, max(info.declared, 1))


def open_array(
    frames: np.ndarray, min_size: int, dim_order: str = "THWC", name: str = "array", max_value: float | None = None
) -> FrameSequence:
    """A sequence from an in-memory array or tensor, ``dim_order`` THWC or TCHW: uint8 0–255, uint16 0–65535,
    other integers 0–255, floats in [0, 1]; or any integers/floats in [0, ``max_value``] (see ``pixels.to_uint8``)."""
    try:
        import torch

        if isinstance(frames, torch.Tensor):
            t = frames.detach().cpu()
            frames = (t.float() if t.dtype == torch.bfloat16 else t).numpy()
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    try:
        arr = np.asarray(frames)
    except ValueError as e:  # ragged nested lists
        reason = str(e).splitlines()[0]
        raise InputError(f"<array>: frames are not one array ({reason}); pass frames of one size") from None
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
    if arr.shape[0] == 0:
        raise InputError(f"<array>: no frames (shape {arr.shape}); pass at least one frame")
    arr = to_uint8(arr, max_value)  # the network sees uint8/255, as upstream
    t, h, w, _ = arr.shape
    _check_size("<array>", w, h, min_size)
    if t == 1:
        log.warning("<array>: a single frame; the model sees no temporal change, so treat its score with care")
    return FrameSequence(str(name), "<array>", "array", w, h, t, _array=np.ascontiguousarray(arr))


def open_sequence(
    item: str | Path | Sequence[str | Path] | np.ndarray, min_size: int, sort: SortOrder = "natural",
    dim_order: str = "THWC", max_value: float | None = None,
) -> FrameSequence:
    """Open anything that is one sequence: a frame folder, a video file, a list of image paths, an array.

    ``dim_order`` (THWC or TCHW) and ``max_value`` (the top of the pixel scale) apply to arrays and tensors only.
    """
    is_paths = isinstance(item, (list, tuple)) and all(isinstance(p, (str, Path)) for p in item)
    if max_value is not None and (is_paths or isinstance(item, (str, Path))):
        src = item if isinstance(item, (str, Path)) else "<list>"
        raise InputError(f"{src}: max_value applies to arrays and tensors only; files are read at their own bit depth")
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
    if is_paths:
        files = [Path(p) for p in item]
        for p in files:
            if not p.is_file():
                raise InputError(f"{p}: no such file; check the path")
        name = folder_name(files[0].parent) if files else "frames"
        return open_frame_files(files, name, str(files[0].parent) if files else "<list>", min_size)
    return open_array(item, min_size, dim_order, max_value=max_value)  # type: ignore[arg-type]


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


# --------------------------------------------------------------------------------------------- decoding pools
# The worker side of models.nvs_sqa.feed.DecodePool: one frame decoded into its slot of a ring of batches.
_ATTACHED: dict[str, tuple] = {}  # in a worker process: the shared ring it writes into (name -> (memory, array))


def _ring_array(target: tuple[str, tuple[int, ...]] | np.ndarray) -> np.ndarray:
    """The ring of batch buffers a decode task writes into: the array itself (threads), or the shared memory
    named in ``target`` (processes), attached once per worker (the previous ring let go)."""
    if isinstance(target, np.ndarray):
        return target
    from multiprocessing import shared_memory

    name, shape = target
    if name not in _ATTACHED:
        while _ATTACHED:  # the previous sequence's ring: its array first, then the memory it views
            _, (old, view) = _ATTACHED.popitem()
            del view
            old.close()
        shm = shared_memory.SharedMemory(name=name)
        _ATTACHED[name] = (shm, np.ndarray(shape, np.uint8, buffer=shm.buf))
    return _ATTACHED[name][1]


def decode_into(target: tuple | np.ndarray, slot: tuple[int, int], path: Path, size: tuple[int, int],
                 per_frame: Callable[[np.ndarray], Any] | None) -> tuple[set[str], Any]:  # fmt: skip
    """A decode task: ``path`` read as :func:`read_image` reads it, checked against the sequence's (width, height)
    and written to ``slot`` (buffer, index) of the ring; returns its conversion notes and ``per_frame(frame)``."""
    notes: set[str] = set()
    frame = _check_frame(path, read_image(path, notes), *size)
    _ring_array(target)[slot] = frame
    return notes, per_frame(frame) if per_frame is not None else None
