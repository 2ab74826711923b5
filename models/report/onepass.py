"""One pass over a method's frames: every frame of the render and of its ground truth decoded once and handed, in
order, to each part that needs it: NVS-SQA (through its reader's own stream, tapped: :meth:`FramePass.sequence`),
the full-reference metrics (:data:`BATCH` pairs of one size per call), FovVideoVDP (one window of frames held at a
time) and CrossScore. Memory does not grow with the number of frames.

Frames are read as the full-reference API reads files (alpha kept, for the presets that composite); NVS-SQA,
FovVideoVDP and CrossScore get the RGB channels, which are the frames as read without alpha. The seconds of each
stage accumulate in :data:`STAGES` (``make bench-report`` reads them).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import InputError
from models.frames import FrameSequence, list_images, open_sequence
from models.pixels import read_image
from models.report.scene import FrameProblems, Method, Pair, render_problem
from models.report.series import FULLREF

log = logging.getLogger(__name__)

BATCH = 1  # full-reference pairs per metric call: one (a batch of 4 was 1.3-6x slower a pair on 2 cores: its
# tensors, 4x larger, are mmapped and page-faulted afresh by every call; measured in docs/report.md, Time)
# Seconds per stage of this process's passes (decode, jod, fullref:<metric>, fullref inputs, fvvdp, crossscore) and
# "frames", the render frames handed on. NVS-SQA's encoder runs beside the pass's own work: its stage holds only
# the time it adds to the pass.
STAGES: Counter[str] = Counter()


@contextmanager
def timed(stage: str) -> Iterator[None]:
    """Add the block's wall time to ``STAGES[stage]``."""
    t = time.perf_counter()
    try:
        yield
    finally:
        STAGES[stage] += time.perf_counter() - t


@dataclass
class Decoded:
    """One frame of the render as the pass hands it on."""

    index: int  # along the render's path
    render: np.ndarray | None  # uint8 RGB, or RGBA where the file has alpha; None: it could not be decoded
    pair: Pair | None = None  # its ground truth, where it has one
    position: int = -1  # the pair's place in Method.pairs
    gt: np.ndarray | None = None  # uint8 RGB or RGBA, where some part needs it
    error: str | None = None  # why the render (``render`` None) or else its ground truth could not be decoded


class Sink:
    """What one part does with the frames of the pass, in order."""

    needs_gt = True

    def wants(self, index: int) -> bool:
        """Whether frame ``index`` must be decoded for this part."""
        raise NotImplementedError

    def add(self, f: Decoded) -> None:
        raise NotImplementedError

    def stopped(self, why: str) -> None:
        """The render cannot be decoded past the frames handed on so far (a video that breaks off)."""

    def result(self) -> dict[str, Any]:
        """The part's numbers (InputError: none could be made)."""
        raise NotImplementedError


class FramePass:
    """One decode of a method's frames and their ground truth, each frame handed to every sink in order; NVS-SQA
    reads the same decode through :meth:`sequence`, and :meth:`drain` decodes what it did not reach (everything,
    without NVS-SQA)."""

    def __init__(self, method: Method, sinks: list[Sink], progress: bool = False) -> None:
        from tqdm import tqdm

        self.method, self.sinks = method, sinks
        self.where = {p.index: (j, p) for j, p in enumerate(method.pairs)}
        self.next = 0  # the first frame not handed on yet
        self.notes: set[str] = set()  # conversions made reading files outside NVS-SQA's reader
        self.busy = 0.0  # seconds spent decoding and in the sinks
        self.lock, self.closed = threading.Lock(), False
        self.threads = _torch_threads()  # the sinks' intra-op threads, wherever they run
        self.bar = tqdm(total=method.n_frames or None, desc=f"{method.name}: frames", unit="frame",
                        disable=not progress)  # fmt: skip

    def wants(self, index: int) -> bool:
        return any(s.wants(index) for s in self.sinks)

    def hand(self, index: int, render: np.ndarray | None, error: str | None = None) -> None:
        """Frame ``index`` (None: not decoded, ``error`` says why) with its ground truth to every sink."""
        t = time.perf_counter()
        position, pair = self.where.get(index, (-1, None))
        gt = None
        if pair is not None and error is None and any(s.needs_gt for s in self.sinks):
            try:
                with timed("decode"):
                    gt = read_image(pair.gt, self.notes, alpha=True)
            except InputError as e:
                error = str(e)
        f = Decoded(index, render, pair, position, gt, error)
        for s in self.sinks:
            s.add(f)
        self.next = index + 1
        STAGES["frames"] += 1
        self.bar.update()
        self.busy += time.perf_counter() - t

    def sequence(self, model: Any) -> FrameSequence:
        """The render as ``model`` (NVSSQA) opens it, each frame read with its alpha and handed on as it streams."""
        seq = model.open(self.method.path)
        tapped = _Tapped(**{f.name: getattr(seq, f.name) for f in fields(seq)})
        tapped.alpha, tapped.feed = True, self
        return tapped

    def drain(self) -> None:
        """Hand on the frames that NVS-SQA's stream did not reach (a broken frame is read again on its own)."""
        with self.lock:
            self.closed = True
        m, start = self.method, self.next
        if m.frames:
            for i in range(start, len(m.frames)):
                if not self.wants(i):
                    continue
                try:
                    with timed("decode"):
                        render = read_image(m.frames[i], self.notes, alpha=True)
                except InputError as e:
                    self.hand(i, None, str(e))
                else:
                    self.hand(i, render)
            return
        last = max((i for i in range(start, max(self.where, default=-1) + 1) if self.wants(i)), default=-1)
        if last < 0:
            return
        try:
            for i, frame in enumerate(_timed_frames(open_sequence(m.path, min_size=1))):
                if i >= start and self.wants(i):
                    self.hand(i, frame)
                if i >= last:
                    break
        except InputError as e:
            for s in self.sinks:
                s.stopped(str(e))

    def close(self) -> None:
        self.bar.close()
        said = sorted(n for n in self.notes if n != "alpha")  # alpha: each part says what it does with it
        if said:
            log.warning("%s: frames or ground truth converted to 8-bit RGB (%s); see docs/scoring.md, 'Input formats "
                        "and conversions'", self.method.key, ", ".join(said))


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _timed_frames(frames: Any) -> Iterator[np.ndarray]:
    it = iter(frames)
    while True:
        with timed("decode"):
            frame = next(it, None)
        if frame is None:
            return
        yield frame


class _Tapped(FrameSequence):
    """A render's sequence as NVS-SQA reads it, each frame also handed to the pass: read with its alpha (for the
    full-reference metrics), NVS-SQA getting the RGB channels, which are the frames as read without it."""

    feed: FramePass

    def __iter__(self) -> Iterator[np.ndarray]:
        import torch

        # This runs on NVS-SQA's reading thread, whose first torch call would take the thread count last set in the
        # process: 1, by the encoder's workers (each runs one frame on one thread). The sinks use every core.
        torch.set_num_threads(self.feed.threads)
        frames = super().__iter__()
        while True:
            with self.feed.lock:  # drain() waits for the frame in hand, then this stream stops
                if self.feed.closed:
                    return
                t = time.perf_counter()
                try:
                    frame = next(frames, None)
                finally:
                    STAGES["decode"] += time.perf_counter() - t
                    self.feed.busy += time.perf_counter() - t
                if frame is None:
                    return
                self.feed.hand(self.feed.next, frame)
            yield frame[..., :3]


class FullrefSink(Sink):
    """The preset's metrics per frame with ground truth, :data:`BATCH` pairs of one size per call. A problem of
    single frames is counted by kind: one line in ``errors`` per kind, naming how many frames it hit (the other
    frames are still scored)."""

    def __init__(self, method: Method, fr: Any) -> None:
        self.method, self.fr = method, fr
        self.paired = {p.index for p in method.pairs}
        self.rows: list[dict[str, Any]] = []
        self.problems = FrameProblems()
        self.pending: list[tuple[Pair, Any, Any]] = []
        self.errors: list[str] = []

    def wants(self, index: int) -> bool:
        return index in self.paired

    def add(self, f: Decoded) -> None:
        if f.pair is None:
            return
        if f.error is not None:
            render_problem(self.method, self.problems, f.pair, f.error)
            return
        try:
            with timed("fullref inputs"):
                x, y = self.fr.prepare(f.render, f.gt)
        except InputError as e:
            render_problem(self.method, self.problems, f.pair, str(e))
            return
        if self.pending and self.pending[0][1].shape != x.shape:
            self.flush()
        self.pending.append((f.pair, x, y))
        if len(self.pending) == BATCH:
            self.flush()

    def flush(self) -> None:
        import torch

        if not self.pending:
            return
        x, y = torch.cat([p[1] for p in self.pending]), torch.cat([p[2] for p in self.pending])
        values: dict[str, list[float]] = {}
        for key in self.fr.metrics:
            with timed(f"{FULLREF}:{key}"):
                values.update(self.fr.compute_prepared(x, y, (key,)))
        self.rows += [{"frame": p.frame, **{k: v[i] for k, v in values.items()}} for i, (p, _, _) in
                      enumerate(self.pending)]  # fmt: skip
        self.pending = []

    def stopped(self, why: str) -> None:
        self.errors.append(why)

    def result(self) -> dict[str, Any]:
        self.flush()
        m, n = self.method, len(self.method.pairs)
        done = len(self.rows) + len(self.problems)
        if self.errors and not done:
            raise InputError(self.errors[0])
        errors = self.problems.lines(n) + self.errors
        if done < n:  # a video with fewer frames than its container declared
            errors.append(f"{m.path}: only {done} of the {n} frames paired with ground truth could be decoded")
        for line in errors:
            log.warning("%s: %s", m.key, line)
        higher = {k: metric.higher_is_better for k, metric in self.fr.metrics.items()}
        return {"preset": self.fr.protocol.name, "higher_is_better": higher, "rows": self.rows, "errors": errors,
                "unmatched": list(m.unmatched), "n_paired": n}


class FvvdpSink(Sink):
    """FovVideoVDP of the frames paired with ground truth, one JOD per disjoint window ``spans`` of pair positions
    (:meth:`models.fullref.fvvdp.FovVideoVDP.windows`); only the window being filled is in memory."""

    def __init__(self, method: Method, metric: Any, spans: list[tuple[int, int]]) -> None:
        self.method, self.metric, self.spans = method, metric, spans
        self.wanted = {p.index for s, e in spans for p in method.pairs[s:e]}
        self.at = 0  # the window being filled
        self.render: list[np.ndarray] = []
        self.truth: list[np.ndarray] = []
        self.broken: str | None = None  # why the window being filled cannot be scored
        self.scores: list[float] = []
        self.done: list[tuple[int, int]] = []
        self.errors: list[str] = []
        self.stop: str | None = None

    def wants(self, index: int) -> bool:
        return index in self.wanted

    def add(self, f: Decoded) -> None:
        if f.pair is None:
            return
        while self.at < len(self.spans) and f.position >= self.spans[self.at][1]:
            self._close()
        if self.at == len(self.spans) or f.position < self.spans[self.at][0]:
            return
        if f.error is not None:
            self.broken = self.broken or f.error
        elif self.broken is None:
            self.render.append(f.render[..., :3])
            self.truth.append(f.gt[..., :3])
        if f.position == self.spans[self.at][1] - 1:
            self._close()

    def _close(self) -> None:
        s, e = self.spans[self.at]
        what = f"FovVideoVDP, frames {s}-{e - 1}"
        if self.broken is None and len(self.render) < e - s:
            self.broken = self.stop or f"only {len(self.render)} of its {e - s} frames could be decoded"
        if self.broken is not None:
            self.errors.append(f"{what}: {self.broken}")
        else:
            test, ref = np.stack(self.render), np.stack(self.truth)
            try:
                with timed("fvvdp"):
                    self.scores += self.metric.windows(lambda *_: test, lambda *_: ref, [(s, e)])
                self.done.append((s, e))
            except (InputError, ValueError) as err:
                self.errors.append(f"{what}: {err}")
        self.render, self.truth, self.broken = [], [], None
        self.at += 1

    def stopped(self, why: str) -> None:
        self.stop = why

    def result(self) -> dict[str, Any]:
        while self.at < len(self.spans):
            self._close()
        if self.stop is not None and not self.done:
            raise InputError(self.stop)
        return {"starts": [s for s, _ in self.done], "ends": [e for _, e in self.done], "scores": self.scores,
                "errors": self.errors}


class CrossScoreSink(Sink):
    """The mean of CrossScore's predicted SSIM map per frame of a frame folder (1 = as the unseen ground truth
    would be); each frame's references are chosen by its file, as ``CrossScore.predict`` chooses them for it."""

    needs_gt = False

    def __init__(self, method: Method, cs: Any, references: Path) -> None:
        self.method, self.cs, self.references = method, cs, references
        self.pool = list_images(references) if references.is_dir() else []
        self.frames: list[str] = []
        self.scores: list[float] = []
        self.errors: list[str] = []

    def wants(self, index: int) -> bool:
        return bool(self.method.frames)

    def add(self, f: Decoded) -> None:
        from models.crossscore.data import select_references

        if not self.method.frames:
            return
        path = self.method.frames[f.index]
        try:
            if f.render is None:
                raise InputError(f.error or f"{path}: not decoded")
            with timed("crossscore"):
                refs = select_references(self.pool, self.cs.n_ref, path, self.cs.seed)
                # without references to choose from, the call by file says so (naming the render)
                m = self.cs.predict(f.render[..., :3], refs) if refs or not self.cs.n_ref else \
                    self.cs.predict(path, self.references)
            self.scores.append(float(np.mean(m)))
            self.frames.append(path.name)
        except InputError as e:
            self.errors.append(str(e))
            log.warning("%s", e)

    def result(self) -> dict[str, Any]:
        return {"frames": self.frames, "scores": self.scores, "errors": self.errors,
                "warning": self.cs.info.get("warning")}
