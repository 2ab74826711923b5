"""The NVS-SQA scorer: a loaded model + regressor; features and JOD scores of any sequence."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.errors import InputError
from models.frames import FrameSequence, SortOrder, open_sequence, prefetch
from models.nvs_sqa.network import MIN_FRAME_SIZE, Regressor, SequenceModel, optimize_for_inference
from models.nvs_sqa.precision import apply_precision, exact_float32, resolve_precision
from models.nvs_sqa.validity import FrameStats, Limits
from models.runtime import resolve_device

# Everything a sequence can be given as (see NVSSQA.open).
log = logging.getLogger(__name__)

Source = str | Path | list | np.ndarray | torch.Tensor | FrameSequence


def window_starts(n_frames: int, window: int, stride: int) -> np.ndarray:
    """Start frames of the windows covering ``n_frames``: 0, stride, 2·stride, … and a last one ending at the end."""
    if window < 1 or stride < 1:
        raise InputError(f"--window {window} --stride {stride}: both must be >= 1")
    if n_frames <= window:
        return np.array([0])
    starts = list(range(0, n_frames - window + 1, stride))
    if starts[-1] + window < n_frames:
        starts.append(n_frames - window)
    return np.array(starts)


def plan_windows(n_frames: int, window: int | None, stride: int, lim: Limits) -> tuple[int, int]:
    """(window, stride) for a sequence of ``n_frames``; (0, 0) = one pass. ``window`` None = auto: one pass up to
    ``lim.max_frames``, else the validated window; 0 = one pass; N = windows of N. ``stride`` 0 = the default
    (the validated stride for auto, N/2 for N)."""
    if window is None:
        return (lim.window, stride or lim.stride) if n_frames > lim.max_frames else (0, 0)
    return (window, stride or max(1, window // 2)) if window else (0, 0)


@dataclass
class WindowedScore:
    """Window scores of one sequence along its camera path; ``score`` is their mean."""

    name: str
    starts: np.ndarray  # first frame of each window
    ends: np.ndarray  # one past the last frame
    scores: np.ndarray  # JOD per window

    @property
    def score(self) -> float:
        return float(np.mean(self.scores))

    @property
    def worst(self) -> tuple[int, int, float]:
        """(start, end, score) of the lowest-scoring window."""
        i = int(np.argmin(self.scores))
        return int(self.starts[i]), int(self.ends[i]), float(self.scores[i])


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt() parameters (malloc.h)


def keep_freed_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 512 << 20) -> bool:
    """Have glibc's malloc keep freed blocks for reuse instead of returning them to the kernel: the encoder's
    per-frame maps (4–9 MB a frame) are otherwise mmap'ed or trimmed and re-faulted on every call, several
    thousand page faults a frame on the worker threads (≈8 % of the time end to end: docs/performance.md). Process-wide
    and numerics-neutral; False where the C library is not glibc (then nothing changes)."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))


class NVSSQA:
    """The scorer: load once, then :meth:`features` / :meth:`score` for any number of sequences.

    >>> m = NVSSQA.from_checkpoint()                    # released v0.0.1 weights, CPU or CUDA
    >>> m.score("examples/Giraffe+NeRF")                # a frame folder, a video, a path list or an array
    -2.0440...
    """

    def __init__(
        self, model: SequenceModel, regressor: Regressor | None = None, device: str | torch.device = "auto",
        fast: bool = True, info: dict[str, Any] | None = None, precision: str = "exact", workers: int = 0,
    ) -> None:  # fmt: skip
        self.device = resolve_device(device)
        self.model = model.eval().to(self.device)
        self.regressor = regressor
        self.info = info or {}
        # Fast path for inference (measured by bench.py, see docs/performance.md); fast=False runs the plain modules.
        enc = self.model.view_encoder
        self._encoder = optimize_for_inference(enc, self.device) if fast else enc
        # --precision (precision.py): the mode that runs; one warning line where the requested one cannot.
        self.precision_requested = precision
        self.precision, why = resolve_precision(precision, self.device)
        if why:
            log.warning("%s", why)
        self._encoder = apply_precision(self._encoder, self.precision)
        # CPU: frames in flight on `workers` threads of one intra-op thread each (0 = one per torch thread):
        # the small late layers keep every core busy this way, which intra-op splitting of one call does not.
        self.workers = (workers or torch.get_num_threads()) if self.device.type == "cpu" else 1
        if self.device.type == "cpu" and fast and not keep_freed_memory():
            log.debug("mallopt not available: freed encoder maps go back to the kernel (slower, same results)")

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, device: str | torch.device = "auto",
                        fast: bool = True, precision: str = "exact", workers: int = 0) -> NVSSQA:
        """Load a checkpoint folder (default: the released v0.0.1 in ``checkpoints/``); ``precision``: exact |
        mixed | bf16 | fp16 (see precision.py); ``workers``: CPU frames in flight (0 = one per torch thread)."""
        from models.nvs_sqa.checkpoint import load_checkpoint  # here: `python -m models.nvs_sqa.checkpoint` runs clean

        ckpt = load_checkpoint(path)
        return cls(ckpt.model, ckpt.regressor, device, fast, ckpt.info, precision, workers)

    def _batches(self, frames: Iterator[np.ndarray], batch_size: int) -> Iterator[torch.Tensor]:
        buf: list[np.ndarray] = []
        for f in frames:
            buf.append(f)
            if len(buf) == batch_size:
                yield torch.from_numpy(np.stack(buf))
                buf = []
        if buf:
            yield torch.from_numpy(np.stack(buf))

    def _encode_batch(self, hwc: torch.Tensor) -> torch.Tensor:
        # (B, H, W, 3) uint8 -> (B, 3, H, W) view, already channels_last in memory; /255 as upstream (the same
        # float32 values as `.float() / 255`, in place).
        x = hwc.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        if self.precision != "exact":
            return self._encoder(x).float().cpu()
        with exact_float32(self.device):
            return self._encoder(x).float().cpu()

    def _encode(self, batches: Iterator[torch.Tensor]) -> Iterator[torch.Tensor]:
        """Features of each batch, in order. With ``workers`` > 1 (CPU), that many batches are in flight, each on a
        thread of one intra-op thread; a batch's result does not depend on which thread ran it."""
        if self.workers <= 1:
            yield from map(self._encode_batch, batches)
            return

        def one_thread() -> None:
            torch.set_num_threads(1)  # this thread's own setting; the caller's thread keeps its count

        def work(hwc: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():  # thread-local: enter it in the worker
                return self._encode_batch(hwc)

        pending: deque = deque()
        with ThreadPoolExecutor(self.workers, initializer=one_thread, thread_name_prefix="encoder") as pool:
            try:
                for hwc in batches:
                    pending.append(pool.submit(work, hwc))
                    if len(pending) > self.workers:  # at most one waiting batch per worker
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            finally:
                for f in pending:
                    f.cancel()

    def open(self, source: Source, sort: SortOrder = "natural", dim_order: str = "THWC",
             max_value: float | None = None) -> FrameSequence:
        """Any sequence input as a :class:`FrameSequence`: a frame folder, a video, a list of image paths, an array
        or tensor (uint8 0–255, uint16 0–65535, other integers ≤ 255, floats in [0, 1], or any of them with an
        explicit ``max_value``; ``dim_order`` THWC or TCHW), or an already opened sequence."""
        if isinstance(source, FrameSequence):
            return source
        return open_sequence(source, MIN_FRAME_SIZE, sort, dim_order, max_value)

    @torch.inference_mode()
    def frame_features(
        self, source: Source, batch_size: int = 4, progress: bool = False, prefetch_depth: int = 8,
        sort: SortOrder = "natural", dim_order: str = "THWC", stats: FrameStats | None = None,
        max_value: float | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """Per-frame 360-d features (T, 360) of a sequence, streamed: memory does not grow with T. ``stats``
        (optional) gathers the frame statistics that the validity checks read, on the way."""
        from tqdm import tqdm

        seq = self.open(source, sort, dim_order, max_value)
        feats: list[torch.Tensor] = []
        it: Iterator[np.ndarray] = stats.watch(seq) if stats is not None else iter(seq)
        frames: Iterator[np.ndarray] = prefetch(it, prefetch_depth) if prefetch_depth else it
        bar = tqdm(total=seq.n_frames, desc=seq.name, unit="frame", disable=not progress, leave=False)
        with bar:
            for out in self._encode(self._batches(frames, batch_size)):
                feats.append(out)
                bar.update(len(out))
        if not feats:
            raise InputError(f"{seq.source}: no frames to score")
        return torch.cat(feats)

    @torch.inference_mode()
    def aggregate(self, frame_feats: torch.Tensor) -> np.ndarray:
        """(T, 360) per-frame features -> the 384-d float32 quality representation."""
        x = frame_feats.to(self.device).unsqueeze(1)
        return self.model.aggregate(x)[0].float().cpu().numpy()

    def features(self, source: Source, batch_size: int = 4, progress: bool = False, sort: SortOrder = "natural",
                 dim_order: str = "THWC", max_value: float | None = None) -> np.ndarray:
        """The 384-d quality representation of one sequence, in one pass (upstream's protocol; any input that
        :meth:`open` takes)."""
        return self.aggregate(self.frame_features(source, batch_size, progress, sort=sort, dim_order=dim_order,
                                                  max_value=max_value))

    @torch.inference_mode()
    def window_representations(self, frame_feats: torch.Tensor, window: int, stride: int
                               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The 384-d representation of every window of ``window`` frames of per-frame features (T, 360), one every
        ``stride`` frames; the last window ends at the last frame, so every frame is covered. Returns (starts,
        ends (exclusive), representations (N, 384)). A sequence no longer than ``window`` is one window."""
        t = len(frame_feats)
        starts = window_starts(t, window, stride)
        ends = np.minimum(starts + window, t)
        return starts, ends, np.stack([self.aggregate(frame_feats[s:e]) for s, e in zip(starts, ends, strict=True)])

    def window_scores(self, frame_feats: torch.Tensor, window: int, stride: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(starts, ends, JOD per window) of :meth:`window_representations`."""
        starts, ends, reps = self.window_representations(frame_feats, window, stride)
        return starts, ends, self.predict(reps)

    def windows(self, source: Source, window: int | None = None, stride: int | None = None, batch_size: int = 4,
                progress: bool = False, sort: SortOrder = "natural", dim_order: str = "THWC",
                max_value: float | None = None) -> WindowedScore:
        """Windowed scoring of one sequence: the view encoder runs once per frame, the temporal model once per
        window of ``window`` frames every ``stride`` (default: the validated window of ``validity_v1.json``); the
        sequence score is the mean of the window scores (see :meth:`window_scores`)."""
        lim = Limits.load()
        seq = self.open(source, sort, dim_order, max_value)
        w, s = window or lim.window, stride or lim.stride
        starts, ends, scores = self.window_scores(self.frame_features(seq, batch_size, progress), w, s)
        return WindowedScore(seq.name, starts, ends, scores)

    def predict(self, feats: np.ndarray) -> np.ndarray:
        """JOD scores from representations (N, 384) or (384,)."""
        if self.regressor is None:
            raise InputError(
                f"{self.info.get('path', 'checkpoint')}: has no regressor.json, so no JOD score; "
                "use --features-only, or fit one with evaluate.py --save-regressor"
            )
        return self.regressor.predict(np.atleast_2d(feats))

    def score_features(self, frame_feats: torch.Tensor, window: int | str = "auto") -> tuple[float, str]:
        """The JOD score from per-frame features (T, 360), and how it was made (``single`` or ``windows W/S``).

        ``window="auto"``: one pass as upstream up to ``Limits.max_frames`` frames, beyond it the mean of windows of
        the validated length (scores of one long pass are not trustworthy: see docs/scoring.md); ``0``: always one
        pass; ``N``: windows of N frames every N/2.
        """
        w, s = plan_windows(len(frame_feats), None if window == "auto" else int(window), 0, Limits.load())
        if w == 0 or len(frame_feats) <= w:
            return float(self.predict(self.aggregate(frame_feats))[0]), "single"
        return float(np.mean(self.window_scores(frame_feats, w, s)[2])), f"windows {w}/{s}"

    def score(self, source: Source, batch_size: int = 4, progress: bool = False, window: int | str = "auto",
              sort: SortOrder = "natural", dim_order: str = "THWC", max_value: float | None = None) -> float:
        """JOD score (offset by the reference; higher is better) of one sequence; ``window`` as in
        :meth:`score_features`."""
        feats = self.frame_features(source, batch_size, progress, sort=sort, dim_order=dim_order, max_value=max_value)
        return self.score_features(feats, window)[0]
