"""``make bench-decode``: how fast this machine decodes 960×768 JPEG frames for the scorer, by threads and processes.

    python -m benchmarks.decode_bench [--frames 360] [--workers 1,2] [--rounds 5]      # -> benchmarks/decode.{json,md}

The frames are one example's 120 JPEGs (960×768) repeated to ``--frames``, read as the scorer reads them, in
order, in batches of ``--batch-size``. Each way of decoding is one row; every round runs each row once, in the same
order (interleaved, so a loaded machine's drift falls on all rows alike), after a warm-up pass that starts the
workers; the table gives the median frames/s of the rounds and their range:

- ``prefetch``: today's CPU path: one background thread reads the frames, the consumer stacks batches
  (``NVSSQA._batches``);
- ``threads`` / ``processes``: :class:`models.nvs_sqa.feed.DecodePool` with that many workers writing into the
  ring of batch buffers (shared memory for processes);
- ``pickle``: a ``ProcessPoolExecutor`` returning each frame as an array (pickled through a pipe), stacked by the
  consumer: what the shared memory saves.

``--stats`` also computes the validity statistics of each frame (app.py's path; in the workers for a pool). The
ceiling is the best median: on the lent GPU machine (16 cores) the GPU check runs :func:`measure` as its
``decode`` part, the measured ceiling the scorer is held to there (docs/performance.md, "GPU check").
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # `python benchmarks/decode_bench.py`
    sys.path.insert(0, str(ROOT))

from consts import EXAMPLES_DIR  # noqa: E402
from models import cli  # noqa: E402
from models.cli import opt  # noqa: E402
from models.errors import InputError  # noqa: E402

KINDS = ("prefetch", "threads", "processes", "pickle")
DEFAULT_EXAMPLE = "Giraffe+NeRF"


@dataclass
class DecodeBenchConfig:
    """Flags of ``python -m benchmarks.decode_bench`` (make bench-decode)."""

    frames: int = opt(360, "frames decoded per row and round (the example's JPEGs repeated)", min=1)
    example: str = opt(str(EXAMPLES_DIR / DEFAULT_EXAMPLE), "folder of the JPEG frames")
    workers: str = opt("", "worker counts of the pools, comma-separated (default: 1, 2, 4, … up to the usable cores)")
    kinds: str = opt(",".join(KINDS), f"ways of decoding, comma-separated, of {', '.join(KINDS)}")
    rounds: int = opt(5, "timed rounds (each row once per round, interleaved)", min=1)
    batch_size: int = opt(16, "frames per batch (the GPU check's scorer batch)", min=1)
    stats: bool = opt(False, "also compute each frame's validity statistics (app.py's path)")
    out: str = opt(str(ROOT / "benchmarks"), "folder for decode.json and decode.md")


def worker_counts(spec: str, cores: int, flag: str = "--workers") -> list[int]:
    """``--workers`` ("1,2,4") -> the counts; empty: 1, 2, 4, … doubling up to ``cores``, and ``cores`` itself.
    ``flag``: the option named in the error line."""
    if spec.strip():
        try:
            counts = [int(x) for x in spec.split(",") if x.strip()]
        except ValueError:
            raise InputError(f"{flag} {spec}: give whole numbers, comma-separated (e.g. 1,2,4)") from None
        if not counts or min(counts) < 1:
            raise InputError(f"{flag} {spec}: every count must be at least 1")
        return sorted(set(counts))
    out, n = [], 1
    while n < cores:
        out.append(n)
        n *= 2
    return [*out, cores]


def parse_kinds(spec: str, flag: str = "--kinds") -> list[str]:
    """``--kinds`` -> the kinds in :data:`KINDS` order; an unknown one is one error line naming ``flag``."""
    kinds = [k.strip() for k in spec.split(",") if k.strip()]
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise InputError(f"{flag} {spec}: {bad[0] if bad else 'empty'!r} is not one of {', '.join(KINDS)}")
    return [k for k in KINDS if k in kinds]


def rows_of(kinds: list[str], counts: list[int]) -> list[tuple[str, int]]:
    """The (kind, workers) rows: prefetch once (one thread); pickle at the largest count only."""
    out: list[tuple[str, int]] = []
    for kind in kinds:
        out += [(kind, 1)] if kind == "prefetch" else [(kind, max(counts))] if kind == "pickle" else \
            [(kind, n) for n in counts]  # fmt: skip
    return out


def _read(path: Path) -> Any:
    """One frame as :func:`models.pixels.read_image` reads it (the pickling pool's task)."""
    from models.pixels import read_image

    return read_image(path)


class Row:
    """One way of decoding, its workers kept alive over the rounds; :meth:`once` decodes every frame in order."""

    def __init__(self, kind: str, workers: int, seq: Any, batch_size: int, stats: bool) -> None:
        from models.nvs_sqa.feed import DecodePool

        self.kind, self.workers, self.seq, self.batch_size, self.stats = kind, workers, seq, batch_size, stats
        self.pool = DecodePool(workers, kind) if kind in ("threads", "processes") else None  # type: ignore[arg-type]
        ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
        self.executor = cf.ProcessPoolExecutor(workers, mp_context=ctx) if kind == "pickle" else None

    def batches(self) -> Iterator[Any]:
        """The sequence's frames in order as (b, H, W, 3) uint8 batches; a pool's batch is a view into its ring,
        valid until the next one is asked for."""
        from models.nvs_sqa.feed import frame_stats

        if self.pool is not None:
            for batch, _ in self.pool.batches(self.seq, self.batch_size, frame_stats if self.stats else None):
                yield batch
            return
        yield from self._stacked()

    def _stacked(self) -> Iterator[Any]:
        """Frames from the prefetch thread or the pickling pool, stacked into batches by the consumer."""
        import numpy as np

        from models.frames import prefetch
        from models.nvs_sqa.validity import FrameStats

        frames = prefetch(iter(self.seq), 8) if self.executor is None else \
            self.executor.map(_read, self.seq.files, chunksize=1)  # fmt: skip
        buf, st = [], FrameStats()
        for f in frames:
            if self.stats:
                st.update(f)
            buf.append(f)
            if len(buf) == self.batch_size:
                yield np.stack(buf)
                buf = []
        if buf:
            yield np.stack(buf)

    def once(self) -> int:
        """Decode the sequence once, in order; returns the number of frames delivered. A pool's batches are copied
        out of the ring, as the scorer's feed copies each to pinned memory (stacking is that copy for the others)."""
        import numpy as np

        n, stage = 0, None
        if self.pool is not None:
            stage = np.empty((self.batch_size, self.seq.height, self.seq.width, 3), np.uint8)
        for batch in self.batches():
            if stage is not None:
                np.copyto(stage[: len(batch)], batch)
            n += len(batch)
        return n

    def worker_cpu_s(self) -> float:
        """CPU seconds used so far by this row's worker processes (/proc; 0 for threads, which count in the
        parent's own CPU time)."""
        ex = self.executor if self.executor is not None else self.pool._executor if self.pool is not None else None
        procs = getattr(ex, "_processes", None) or {}
        return sum(_proc_cpu_s(pid) for pid in list(procs)) if self.kind in ("processes", "pickle") else 0.0

    def close(self) -> None:
        """End the row's workers."""
        if self.pool is not None:
            self.pool.close()
        if self.executor is not None:
            self.executor.shutdown()


def _proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux /proc; 0 elsewhere or once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def frame_files(example: Path, frames: int) -> list[Path]:
    """The example's frames repeated (in order) to ``frames`` files."""
    from models.frames import list_images

    files = list_images(example) if example.is_dir() else []
    if not files:
        raise InputError(f"--example {example}: no frames there; give a folder of JPEG frames")
    return [files[i % len(files)] for i in range(frames)]


def machine() -> dict[str, Any]:
    """The CPU that decodes: its name, family and model, native bfloat16, and the cores this process may use."""
    from models.nvs_sqa.feed import usable_cores
    from models.nvs_sqa.precision import native_bf16
    from models.runtime import cpu_id, cpu_name

    return {"cpu": cpu_name(), "cpu_id": cpu_id(), "cpu_native_bf16": native_bf16(), "cores": usable_cores()}


def measure(frames: int = 360, example: Path | None = None, counts: list[int] | None = None,
            kinds: list[str] | None = None, rounds: int = 5, batch_size: int = 16, stats: bool = False,
            deadline: float | None = None) -> dict[str, Any]:  # fmt: skip
    """Frames/s of each (kind, workers) row, interleaved over ``rounds`` after one warm-up round; the rows, the
    ceiling (the best median) and the machine. Rounds that would start after ``deadline`` (monotonic) are skipped."""
    import cv2
    import PIL

    from models.frames import open_frame_files

    host = machine()
    cores = host["cores"]
    files = frame_files(Path(example or EXAMPLES_DIR / DEFAULT_EXAMPLE), frames)
    seq = open_frame_files(files, "decode-bench", str(files[0].parent), 1)
    table = [Row(k, n, seq, batch_size, stats) for k, n in rows_of(kinds or list(KINDS), counts or
                                                                         worker_counts("", cores))]  # fmt: skip
    load0 = os.getloadavg()
    try:
        times = _rounds(table, frames, rounds, deadline)
    finally:
        for row in table:
            row.close()
    out = [_summary(row, t, frames) for row, t in zip(table, times, strict=True)]
    measured = [o for o in out if o["median_fps"]]
    best = max(measured, key=lambda o: o["median_fps"]) if measured else None
    return {"status": "ok", **host, "frames": frames, "size": [seq.width, seq.height],
            "example": str(files[0].parent), "batch_size": batch_size, "stats": stats, "rounds": rounds,
            "loadavg_start": [round(x, 2) for x in load0], "loadavg_end": [round(x, 2) for x in os.getloadavg()],
            "opencv": cv2.__version__, "pillow": PIL.__version__, "jpeg": _jpeg_library(cv2), "rows": out,
            "ceiling_fps": best and best["median_fps"], "ceiling": best and f"{best['kind']} × {best['workers']}"}


def _rounds(table: list[Row], frames: int, rounds: int, deadline: float | None) -> list[list[tuple[float, ...]]]:
    """Each row once per round, in order, after a warm-up round (workers start, files enter the page cache): per row
    and timed round, (wall seconds, this process's CPU seconds, its worker processes' CPU seconds). Rounds that would
    start after ``deadline`` (monotonic) are left out."""
    times: list[list[tuple[float, ...]]] = [[] for _ in table]
    for r in range(rounds + 1):
        if r and deadline is not None and time.monotonic() > deadline:
            break
        for row, t in zip(table, times, strict=True):
            t0, c0, w0 = time.perf_counter(), time.process_time(), row.worker_cpu_s()
            done = row.once()
            if done != frames:
                raise RuntimeError(f"{row.kind} × {row.workers}: {done} frames, not {frames}")
            if r:
                t.append((time.perf_counter() - t0, time.process_time() - c0, row.worker_cpu_s() - w0))
    return times


def _summary(row: Row, times: list[tuple[float, ...]], frames: int) -> dict[str, Any]:
    """One row's results: frames/s per round, its median and range; the median CPU milliseconds per frame of
    this process (its threads included) and of the worker processes."""
    fps = [frames / t for t, _, _ in times]
    ms = lambda k: statistics.median(x[k] for x in times) / frames * 1000 if times else None  # noqa: E731
    return {"kind": row.kind, "workers": row.workers, "rounds": len(times), "frames_per_s": fps,
            "median_fps": statistics.median(fps) if fps else None, "min_fps": min(fps) if fps else None,
            "max_fps": max(fps) if fps else None, "parent_cpu_ms_per_frame": ms(1),
            "worker_cpu_ms_per_frame": ms(2)}


def _jpeg_library(cv2: Any) -> str:
    """The JPEG library OpenCV was built with (its build information's "JPEG:" line)."""
    line = next((x for x in cv2.getBuildInformation().splitlines() if x.strip().startswith("JPEG:")), "")
    return line.split(":", 1)[1].strip() if line else "?"


def fmt_fps(v: float | None) -> str:
    """Frames/s as a table cell ("–" for none)."""
    return "–" if v is None else f"{v:.0f}"


def fmt_ms(v: float | None) -> str:
    """Milliseconds as a table cell ("–" for none)."""
    return "–" if v is None else f"{v:.2f}"


def rows_md(res: dict[str, Any]) -> list[str]:
    """The table of rows (median frames/s and range; the speed-up over one prefetch thread)."""
    base = next((r["median_fps"] for r in res["rows"] if r["kind"] == "prefetch"), None)
    lines = ["| decoding | workers | frames/s (median) | range | × prefetch | CPU ms/frame: this process | "
             "worker processes |", "|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        x = f"{r['median_fps'] / base:.2f}" if base and r["median_fps"] else "–"
        own = r.get("parent_cpu_ms_per_frame")
        workers = r.get("worker_cpu_ms_per_frame") if r["kind"] in ("processes", "pickle") else None
        span = "–" if r["median_fps"] is None else f"{fmt_fps(r['min_fps'])}–{fmt_fps(r['max_fps'])}"
        lines.append(f"| {r['kind']} | {r['workers']} | {fmt_fps(r['median_fps'])} | {span} | {x} | {fmt_ms(own)} | "
                     f"{fmt_ms(workers)} |")
    return lines


def ceiling_line(res: dict[str, Any]) -> str:
    """The best median frames/s and the row that gave it; or why there is none."""
    if res["ceiling_fps"] is None:
        return "Ceiling: not measured (no timed round ran before the deadline)."
    return f"Ceiling: **{fmt_fps(res['ceiling_fps'])} frames/s** ({res['ceiling']})."


def report_md(res: dict[str, Any]) -> str:
    """decode.md from :func:`measure`'s results."""
    w, h = res["size"]
    return "\n".join([
        "# Decoding frames for the scorer (`make bench-decode`)", "",
        f"{res['cpu']} ({res['cpu_id']}; native bfloat16: {'yes' if res['cpu_native_bf16'] else 'no'}), "
        f"{res['cores']} usable cores; OpenCV {res['opencv']} (JPEG: {res['jpeg']}), Pillow "
        f"{res['pillow']}. {res['frames']} frames of {w}×{h} ({res['example']}, repeated), batches of "
        f"{res['batch_size']}, {'with' if res['stats'] else 'without'} the validity statistics; timed rounds: "
        f"{res['rounds']}, interleaved, after a warm-up. Load average {res['loadavg_start']} -> "
        f"{res['loadavg_end']}.", "",
        *rows_md(res), "",
        ceiling_line(res), "",
        "prefetch: one reader thread, batches stacked by the consumer (the CPU scorer's path); threads / processes: "
        "models.nvs_sqa.feed.DecodePool, frames written into a ring of batch buffers (shared memory for "
        "processes); pickle: a process pool returning each frame as an array through a pipe.", ""])


def run(cfg: DecodeBenchConfig) -> int:
    """Measure every row and write decode.json and decode.md to ``--out``."""
    from models.nvs_sqa.feed import usable_cores
    from models.results import check_writable, stamp, write_report

    check_writable(Path(cfg.out))
    counts, kinds = worker_counts(cfg.workers, usable_cores()), parse_kinds(cfg.kinds)
    res = measure(cfg.frames, Path(cfg.example), counts, kinds, cfg.rounds, cfg.batch_size, cfg.stats)
    write_report(Path(cfg.out), "decode", stamp(**res), report_md(res))
    return 0


main = cli.script(DecodeBenchConfig, run, "Decoding throughput by threads and processes -> decode.{json,md}")


if __name__ == "__main__":
    sys.exit(main())
