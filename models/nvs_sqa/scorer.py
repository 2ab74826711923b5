"""The NVS-SQA scorer: a loaded model + regressor; features and JOD scores of any sequence."""

from __future__ import annotations

import logging
import warnings
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.errors import InputError, ValidityWarning
from models.frames import FrameSequence, SortOrder, open_sequence, prefetch
from models.nvs_sqa.feed import DECODE_CHOICES, DecodePool, Transfers, add_stats, frame_stats, pin_host
from models.nvs_sqa.network import MIN_FRAME_SIZE, Regressor, SequenceModel, optimize_for_inference
from models.nvs_sqa.precision import apply_precision, exact_float32, resolve_precision
from models.nvs_sqa.validity import FrameStats, Limits, check
from models.nvs_sqa.windows import WindowedScore, WindowPlan, plan_windows
from models.runtime import resolve_device

# Everything a sequence can be given as (see NVSSQA.open).
log = logging.getLogger(__name__)

Source = str | Path | list | np.ndarray | torch.Tensor | FrameSequence


class Score(float):
    """A JOD score (a float) that carries how it was made (``mode``) and why it may not be trusted (``warnings``:
    empty inside the validated range)."""

    def __new__(cls, value: float, warnings: list[str] | None = None, mode: str = "single") -> Score:
        obj = super().__new__(cls, value)
        obj.warnings, obj.mode = list(warnings or []), mode
        return obj


@dataclass
class Assessment:
    """One sequence assessed as app.py reports it: the 384-d feature, the score and how it was made (``windowed``;
    None without a regressor), the quality curve along the path (``curve``: short windows, for sequences of
    ``Limits.curve_min_frames`` frames or more) and the validity warnings."""

    name: str
    source: str
    n_frames: int
    width: int
    height: int
    feature: np.ndarray
    windowed: WindowedScore | None
    curve: WindowedScore | None
    warnings: list[str]
    stats: FrameStats | None = None  # the frame statistics the validity checks read (noise, blockiness, background)
    frame_features: torch.Tensor | None = None  # (T, 360): any other window plan is scored from these (cheap)

    @property
    def score(self) -> float | None:
        return None if self.windowed is None else self.windowed.score

    @property
    def mode(self) -> str:
        return self.windowed.mode if self.windowed is not None else "features"


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
        emulate: bool = False, decode: str = "auto", decoders: int = 0,
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
        self.precision, why = resolve_precision(precision, self.device, emulate=emulate)
        if why:
            log.warning("%s", why)
        self._encoder = apply_precision(self._encoder, self.precision)
        # CPU: frames in flight on `workers` threads of one intra-op thread each (0 = one per torch thread):
        # the small late layers keep every core busy this way, which intra-op splitting of one call does not.
        self.workers = (workers or torch.get_num_threads()) if self.device.type == "cpu" else 1
        if self.device.type == "cpu" and fast and not keep_freed_memory():
            log.debug("mallopt not available: freed encoder maps go back to the kernel (slower, same results)")
        # Decoding (feed.py): one prefetch thread on the CPU, where the encoder keeps every core busy; a process pool
        # of `decoders` workers (0 = every core) where the cores feed a GPU. Frame files only; the rest is iterated.
        if decode not in DECODE_CHOICES:
            raise InputError(f"decode={decode!r}: choose one of {', '.join(DECODE_CHOICES)}")
        self.decode = ("processes" if self.device.type == "cuda" else "thread") if decode == "auto" else decode
        pin = pin_host if self.device.type == "cuda" else None
        self._pool = None if self.decode == "thread" else DecodePool(decoders, self.decode, pin)  # type: ignore[arg-type]
        self.feed: Transfers | None = None  # the last sequence's transfers (how its batches went; for the GPU check)

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, device: str | torch.device = "auto",
                        fast: bool = True, precision: str = "exact", workers: int = 0,
                        emulate: bool = False, decode: str = "auto", decoders: int = 0) -> NVSSQA:  # fmt: skip
        """Load a checkpoint folder (default: the released v0.0.1 in ``checkpoints/``); ``precision``: exact |
        mixed | bf16 | fp16 (see precision.py); ``workers``: CPU frames in flight (0 = one per torch thread);
        ``emulate``: run mixed/bf16 even on a CPU without native bfloat16 (slow; for measuring their error);
        ``decode``: auto | thread | threads | processes, how frame files are decoded (feed.py; auto: one thread on
        the CPU, processes on CUDA), ``decoders`` the pool's workers (0 = every core)."""
        from models.nvs_sqa.checkpoint import load_checkpoint  # here: `python -m models.nvs_sqa.checkpoint` runs clean

        ckpt = load_checkpoint(path)
        return cls(ckpt.model, ckpt.regressor, device, fast, ckpt.info, precision, workers, emulate, decode, decoders)

    def close(self) -> None:
        """End the decode pool's workers, if any (a later call starts them again)."""
        if self._pool is not None:
            self._pool.close()

    def _batches(self, frames: Iterator[np.ndarray], batch_size: int) -> Iterator[torch.Tensor]:
        buf: list[np.ndarray] = []
        for f in frames:
            buf.append(f)
            if len(buf) == batch_size:
                yield torch.from_numpy(np.stack(buf))
                buf = []
        if buf:
            yield torch.from_numpy(np.stack(buf))

    def _run(self, hwc: torch.Tensor) -> torch.Tensor:
        """Features of a (B, H, W, 3) uint8 batch already on the device, left there (queued, on CUDA)."""
        # (B, 3, H, W) view, already channels_last in memory; /255 as upstream (the same float32 values as
        # `.float() / 255`, in place).
        x = hwc.permute(0, 3, 1, 2).float().div_(255.0)
        if self.precision != "exact":
            return self._encoder(x).float()
        with exact_float32(self.device):
            return self._encoder(x).float()

    def _encode_batch(self, hwc: torch.Tensor) -> torch.Tensor:
        return self._run(hwc.to(self.device)).cpu()

    def _encode_fed(self, batches: Iterator[torch.Tensor]) -> Iterator[torch.Tensor]:
        """One batch at a time (CUDA; a CPU of one worker): each batch sent by :class:`~models.nvs_sqa.feed.Transfers`
        (on CUDA a side-stream copy from pinned memory that overlaps the previous batch's compute) and its features
        brought back one batch later, so the device has the next batch queued while the host waits for the last."""
        send, held = Transfers(self.device), None
        self.feed = send
        for hwc in batches:
            out = self._run(send.send(hwc))
            send.settle()  # the batch may be overwritten once the next one is asked for
            if held is not None:
                yield held.cpu()
            held = out
        if held is not None:
            yield held.cpu()

    def _encode(self, batches: Iterator[torch.Tensor]) -> Iterator[torch.Tensor]:
        """Features of each batch, in order. With ``workers`` > 1 (CPU), that many batches are in flight, each on a
        thread of one intra-op thread; a batch's result does not depend on which thread ran it."""
        if self.workers <= 1:
            yield from self._encode_fed(batches)
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
        bar = tqdm(total=seq.n_frames, desc=seq.name, unit="frame", disable=not progress, leave=False)
        with bar:
            for out in self._encode(self._frame_batches(seq, batch_size, prefetch_depth, stats)):
                feats.append(out)
                bar.update(len(out))
        if not feats:
            raise InputError(f"{seq.source}: no frames to score")
        return torch.cat(feats)

    def _frame_batches(self, seq: FrameSequence, batch_size: int, prefetch_depth: int,
                       stats: FrameStats | None) -> Iterator[torch.Tensor]:  # fmt: skip
        """The sequence as (B, H, W, 3) uint8 batches, ``stats`` gathered on the way: from the decode pool where
        there is one and the sequence is plain frame files (a batch is then a view, valid until the next one is
        asked for, unless CPU workers hold several), else from its own reader on a prefetch thread."""
        if self._pool is None or not seq.plain_files:
            it: Iterator[np.ndarray] = stats.watch(seq) if stats is not None else iter(seq)
            yield from self._batches(prefetch(it, prefetch_depth) if prefetch_depth else it, batch_size)
            return
        for batch, per in self._pool.batches(seq, batch_size, frame_stats if stats is not None else None):
            for one in per if stats is not None else ():
                add_stats(stats, one)
            yield torch.from_numpy(batch.copy() if self.workers > 1 else batch)

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
    def window_representations(self, frame_feats: torch.Tensor, plan: WindowPlan) -> np.ndarray:
        """The 384-d representation of every span of ``plan`` (one for a single pass) from per-frame features
        (T, 360): (N, 384)."""
        return np.stack([self.aggregate(frame_feats[s:e]) for s, e in zip(plan.starts, plan.ends, strict=True)])

    def score_features(self, frame_feats: torch.Tensor, window: int | str | None = "auto", stride: int = 0,
                       name: str = "") -> WindowedScore:  # fmt: skip
        """The JOD of a sequence from its per-frame features (T, 360), by the one window rule
        (:func:`~models.nvs_sqa.windows.plan_windows`): ``window`` "auto"/None (one pass up to the validated length,
        windows beyond it), 0 (one pass) or N (windows of N frames every ``stride``, default N/2)."""
        plan = plan_windows(len(frame_feats), _window(window), stride)
        return WindowedScore(name, plan, self.predict(self.window_representations(frame_feats, plan)))

    def windows(self, source: Source, window: int | None = None, stride: int = 0, batch_size: int = 4,
                progress: bool = False, sort: SortOrder = "natural", dim_order: str = "THWC",
                max_value: float | None = None) -> WindowedScore:
        """The quality along the camera path: windows of ``window`` frames (default: the validated window of the
        limits file) every ``stride`` (default half a window); a sequence no longer than a window is one pass."""
        seq = self.open(source, sort, dim_order, max_value)
        feats = self.frame_features(seq, batch_size, progress)
        return self.score_features(feats, window or Limits.load().window, stride, name=seq.name)

    def predict(self, feats: np.ndarray) -> np.ndarray:
        """JOD scores from representations (N, 384) or (384,)."""
        if self.regressor is None:
            raise InputError(
                f"{self.info.get('path', 'checkpoint')}: has no regressor.json, so no JOD score; use features() "
                "for the 384-d representation, or fit a regressor with evaluate.py --save-regressor"
            )
        x = np.atleast_2d(np.asarray(feats))
        dim = len(self.regressor.coef)  # 384 for the released model
        if x.ndim != 2 or x.shape[1] != dim or x.dtype.kind not in "fiu":
            raise InputError(f"feats: expected ({dim},) or (N, {dim}) numbers (what features() returns), got shape "
                             f"{np.shape(feats)} of {x.dtype}")
        return self.regressor.predict(x)

    def assess(self, source: Source, window: int | str | None = "auto", stride: int = 0, batch_size: int = 4,
               progress: bool = False, sort: SortOrder = "natural", dim_order: str = "THWC",
               max_value: float | None = None, features_only: bool = False, curve: bool = True,
               limits: Limits | None = None) -> Assessment:  # fmt: skip
        """Everything app.py reports about one sequence, computed once: the encoder runs once per frame; the plan
        (:func:`~models.nvs_sqa.windows.plan_windows`) gives the score, the curve's own short windows give the
        quality along the path, and :func:`~models.nvs_sqa.validity.check` the warnings (the one validity path of
        app.py and the API). ``features_only`` (or a checkpoint without regressor): no score, no curve."""
        lim = limits or Limits.load()
        seq = self.open(source, sort, dim_order, max_value)
        stats = FrameStats()
        feats = self.frame_features(seq, batch_size, progress, stats=stats)
        plan = plan_windows(len(feats), _window(window), stride, lim)
        reps = self.window_representations(feats, plan)
        feature = reps[0] if plan.single else reps.mean(axis=0)  # the ridge is linear: predict(mean) = mean score
        scored = not features_only and self.regressor is not None
        windowed = WindowedScore(seq.name, plan, self.predict(reps)) if scored else None
        path = None
        if scored and curve and len(feats) >= lim.curve_min_frames:
            cplan = plan_windows(len(feats), lim.curve_window, lim.curve_stride, lim)
            path = WindowedScore(seq.name, cplan, self.predict(self.window_representations(feats, cplan)))
        reasons = check(len(feats), seq.width, seq.height, windowed.score if windowed else None, stats, lim,
                        window=plan.window) + list(seq.warnings)  # fmt: skip
        return Assessment(seq.name, seq.source, len(feats), seq.width, seq.height, feature, windowed, path, reasons,
                          stats, feats)

    def score(self, source: Source, batch_size: int = 4, progress: bool = False, window: int | str | None = "auto",
              stride: int = 0, sort: SortOrder = "natural", dim_order: str = "THWC",
              max_value: float | None = None) -> Score:
        """JOD score (offset by the reference; higher is better) of one sequence, ``window`` and ``stride`` as in
        :meth:`score_features`; a :class:`Score` (a float) with ``.warnings`` and ``.mode``. A score outside the
        validated range also raises a :class:`~models.errors.ValidityWarning` (``warnings.warn``), saying why."""
        if self.regressor is None:
            self.predict(np.zeros(384, np.float32))  # the one-line "no regressor" error
        a = self.assess(source, window, stride, batch_size, progress, sort, dim_order, max_value, curve=False)
        for reason in a.warnings:
            warnings.warn(f"{a.name}: outside the validated range: {reason}", ValidityWarning, stacklevel=2)
        return Score(a.score, a.warnings, a.mode)  # type: ignore[arg-type]


def _window(window: int | str | None) -> int | None:
    """The ``window`` argument as the plan takes it: None for auto, else a number of frames."""
    if window is None or window == "auto":
        return None
    if isinstance(window, str) and not window.isdigit():
        raise InputError(f"window={window!r}: use 'auto', 0 (one pass) or a number of frames >= 1")
    return int(window)
