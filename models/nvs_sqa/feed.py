"""Feeding the encoder at the device's rate: frames decoded on every core, batches sent while the last one computes.

- :class:`DecodePool`: a sequence's image files decoded on worker threads or processes (processes where the GIL
  would limit threads: many cores feeding a GPU) straight into a ring of batch buffers — shared memory between
  processes, so no pixels are pickled — handed back in order, bit for bit :func:`models.pixels.read_image`'s
  frames. The validity statistics of each frame are computed in the workers too (:func:`frame_stats`).
- :class:`Transfers`: on CUDA each batch goes through a pinned staging buffer and is copied with
  ``non_blocking=True`` on a side stream that the compute stream waits for, so the copy of batch *i* runs beside
  the compute of batch *i − 1*; on the CPU the batch is used where it is (nothing to copy or wait for).

The scorer (models.nvs_sqa.scorer) chooses: ``decode="auto"`` is today's one prefetch thread on the CPU (the
encoder keeps every core busy there) and a process pool on CUDA. benchmarks/decode_bench.py measures both kinds.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal

import numpy as np
import torch

from models.errors import InputError
from models.frames import FrameSequence, decode_into
from models.nvs_sqa.validity import FrameStats

log = logging.getLogger(__name__)

DecodeKind = Literal["threads", "processes"]
DECODE_CHOICES = ("auto", "thread", "threads", "processes")  # "thread": one prefetch thread (the CPU's default)


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask; ``os.cpu_count()`` where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def frame_stats(frame: np.ndarray) -> FrameStats:
    """One frame's validity statistics (run in a decode worker; :func:`add_stats` gathers them in order)."""
    one = FrameStats()
    one.update(frame)
    return one


def add_stats(stats: FrameStats, one: FrameStats) -> None:
    """Fold one frame's statistics into ``stats``: the same sums and lists, in the same order, as ``stats.update``
    of that frame would make."""
    stats.n += one.n
    stats.background += one.background
    stats.noise += one.noise
    stats.blocks += one.blocks


class DecodePool:
    """Image files decoded on ``workers`` threads or processes (0 = the cores this process may use) into a ring of
    batch buffers, handed back in order. Processes start by ``forkserver`` (a parent holding CUDA and thread pools
    is never forked), this module imported once in the server rather than in each worker. Reusable for any number
    of sequences; :meth:`close` (or ``with``) ends the workers."""

    def __init__(self, workers: int = 0, kind: DecodeKind = "processes",
                 pin: Callable[[np.ndarray], Callable[[], None] | None] | None = None) -> None:  # fmt: skip
        if kind not in ("threads", "processes"):
            raise InputError(f"decode={kind!r}: a decode pool is threads or processes")
        self.workers, self.kind = workers or usable_cores(), kind
        self.pin = pin  # called on each new ring (e.g. pin_host: page-locked for DMA); returns its undoing, or None
        self._executor: cf.Executor | None = None
        self._spare: _Ring | None = None  # the last sequence's ring, kept for the next one of its shape

    def _pool(self) -> cf.Executor:
        if self._executor is None:
            if self.kind == "threads":
                self._executor = cf.ThreadPoolExecutor(self.workers, thread_name_prefix="decode")
            else:
                ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
                if ctx.get_start_method() == "forkserver":
                    ctx.set_forkserver_preload([__name__])  # what the tasks import; not the caller's __main__
                self._executor = cf.ProcessPoolExecutor(self.workers, mp_context=ctx)
        return self._executor

    def batches(self, seq: FrameSequence, batch_size: int, per_frame: Callable[[np.ndarray], Any] | None = None,
                depth: int = 0) -> Iterator[tuple[np.ndarray, list]]:  # fmt: skip
        """``seq``'s frames (:attr:`~models.frames.FrameSequence.plain_files`) as ``(batch, results)``: a
        (b, H, W, 3) uint8 view into the ring, valid until the next batch is asked for, and ``per_frame`` (a
        picklable function, run in the workers) of each of its frames. ``depth`` batches are in flight (0: two
        frames per worker, at least 3 batches). A frame that cannot be read raises its InputError in order."""
        if not seq.plain_files:
            raise InputError(f"{seq.source}: a decode pool reads image files only; iterate the sequence instead")
        depth = depth or max(3, -(-2 * self.workers // batch_size) + 1)
        held = self._take_ring((depth, batch_size, seq.height, seq.width, 3))
        ring, target = held.array, held.target if self.kind == "processes" else held.array
        starts, n = range(0, len(seq.files), batch_size), len(seq.files)
        futures: dict[int, list[cf.Future]] = {}
        pool = self._pool()

        def submit(b: int) -> None:
            futures[b] = [pool.submit(decode_into, target, (b % depth, i - starts[b]), seq.files[i],
                                      (seq.width, seq.height), per_frame)
                          for i in range(starts[b], min(starts[b] + batch_size, n))]  # fmt: skip

        try:
            for b in range(min(depth, len(starts))):
                submit(b)
            for b in range(len(starts)):
                try:
                    done = [f.result() for f in futures.pop(b)]
                except cf.BrokenExecutor as e:  # BrokenProcessPool
                    if b:
                        raise
                    yield from self._on_threads(seq, batch_size, per_frame, e)
                    return
                if b == 0:
                    seq.note_conversions(done[0][0])
                yield ring[b % depth, : len(done)], [r for _, r in done]
                if b + depth < len(starts):
                    submit(b + depth)  # into the buffer just handed back
        finally:
            _settle([f for fs in futures.values() for f in fs])
            del ring
            self._give_ring(held)

    def _on_threads(self, seq: FrameSequence, batch_size: int, per_frame: Callable[[np.ndarray], Any] | None,
                    why: BaseException) -> Iterator[tuple[np.ndarray, list]]:  # fmt: skip
        """The worker processes died before the first batch: most often a script without an
        ``if __name__ == "__main__":`` guard, which every new process re-runs. Decode on threads from now on."""
        log.warning("decode worker processes could not start (%s); decoding on %d threads instead (a script that "
                    "wants processes must guard its entry point with `if __name__ == \"__main__\":`)",
                    str(why).splitlines()[0] if str(why) else type(why).__name__, self.workers)
        self.close()
        self.kind = "threads"
        yield from self.batches(seq, batch_size, per_frame)

    def _take_ring(self, shape: tuple[int, ...]) -> _Ring:
        """The spare ring when it has this shape (its pages already mapped, the workers already attached), else a
        new one; a sequence iterated while another is under way gets its own."""
        spare, self._spare = self._spare, None
        if spare is not None and spare.array.shape == shape:
            return spare
        if spare is not None:
            spare.free()
        ring = _Ring(shape, shared=self.kind == "processes")
        ring.unpin = self.pin(ring.array) if self.pin is not None else None
        return ring

    def _give_ring(self, ring: _Ring) -> None:
        if self._spare is None:
            self._spare = ring
        else:
            ring.free()

    def close(self) -> None:
        """End the workers and free the spare ring (a later :meth:`batches` starts new ones)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        if self._spare is not None:
            self._spare.free()
            self._spare = None

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Ring:
    """``shape`` (depth, batch, H, W, 3) uint8 batch buffers: in shared memory (``target`` names it to the worker
    processes) or a plain array (threads)."""

    def __init__(self, shape: tuple[int, ...], shared: bool) -> None:
        self.shm, self.unpin = None, None
        if shared:
            from multiprocessing import shared_memory

            self.shm = shared_memory.SharedMemory(create=True, size=int(np.prod(shape)))
            self.array = np.ndarray(shape, np.uint8, buffer=self.shm.buf)
            self.target = (self.shm.name, shape)
        else:
            self.array = np.empty(shape, np.uint8)

    def free(self) -> None:
        if self.unpin is not None:
            self.unpin()
        del self.array  # the view first: shared memory with a view still exported cannot close
        if self.shm is not None:
            self.shm.close()
            self.shm.unlink()


def _settle(futures: list[cf.Future]) -> None:
    """Cancel what has not started and wait for the rest: nothing may still write into a ring that goes."""
    for f in futures:
        f.cancel()
    for f in futures:
        if not f.cancelled():
            f.exception()


def pin_host(array: np.ndarray) -> Callable[[], None] | None:
    """Page-lock ``array``'s memory for the GPU's DMA (``cudaHostRegister``), so batches in it are copied
    asynchronously with no staging copy; returns the undoing, or None where CUDA refuses (then batches are staged)."""
    try:
        cudart = torch.cuda.cudart()
        ptr = array.ctypes.data
        if int(cudart.cudaHostRegister(ptr, array.nbytes, 0)) != 0:
            return None
    except (AssertionError, RuntimeError, AttributeError, TypeError) as e:  # no CUDA build, no binding
        log.debug("cudaHostRegister unavailable (%s): batches go through a pinned staging buffer", e)
        return None
    return lambda: cudart.cudaHostUnregister(ptr)


class CudaOps:
    """The CUDA calls of :class:`Transfers`, in one place (tests hand it a recording stand-in on the CPU)."""

    def stream(self, device: torch.device) -> Any:
        return torch.cuda.Stream(device)

    def on(self, stream: Any) -> Any:
        return torch.cuda.stream(stream)

    def current(self, device: torch.device) -> Any:
        return torch.cuda.current_stream(device)

    def pinned(self, n: int, dtype: torch.dtype) -> torch.Tensor:
        return torch.empty(n, dtype=dtype, pin_memory=True)

    def is_pinned(self, t: torch.Tensor) -> bool:
        return t.is_pinned()

    def hand_over(self, x: torch.Tensor, stream: Any) -> None:
        x.record_stream(stream)  # made on the side stream, used on the compute stream: not freed before it is done


class Transfers:
    """Host batches to the compute device. CUDA: copied ``non_blocking`` on a side stream that the compute stream
    waits for, so a batch's copy overlaps the previous batch's compute; from the batch itself where it is
    page-locked (a ring of :func:`pin_host`), else through one pinned staging buffer. Elsewhere the batch is used
    as it is. ``host_s``: seconds spent filling the staging buffer; ``direct`` / ``staged``: batches sent each way."""

    def __init__(self, device: torch.device, ops: CudaOps | None = None) -> None:
        self.device = device
        self.ops = ops or (CudaOps() if device.type == "cuda" else None)
        self.stream = self.ops.stream(device) if self.ops is not None else None
        self._staging: torch.Tensor | None = None
        self._copied: Any = None  # the event of the last copy queued
        self.host_s, self.direct, self.staged = 0.0, 0, 0

    def send(self, hwc: torch.Tensor) -> torch.Tensor:
        """``hwc`` (a host batch) on the device, for the compute stream; :meth:`settle` before ``hwc`` is reused."""
        ops = self.ops
        if ops is None:
            return hwc.to(self.device)
        src = hwc
        if not ops.is_pinned(hwc):
            t0 = time.perf_counter()
            if self._staging is None or self._staging.numel() < hwc.numel():
                self._staging = ops.pinned(hwc.numel(), hwc.dtype)
            self.settle()  # the previous copy has left the staging buffer
            src = self._staging[: hwc.numel()].view(hwc.shape)
            src.copy_(hwc)
            self.host_s += time.perf_counter() - t0
        self.staged += src is not hwc
        self.direct += src is hwc
        with ops.on(self.stream):
            x = src.to(self.device, non_blocking=True)
            self._copied = self.stream.record_event()
        compute = ops.current(self.device)
        compute.wait_event(self._copied)
        ops.hand_over(x, compute)
        return x

    def settle(self) -> None:
        """Wait until the last batch sent has left host memory (not for its compute)."""
        if self._copied is not None:
            self._copied.synchronize()
