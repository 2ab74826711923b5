"""``make bench-fullref``: milliseconds per 960x768 image for each full-reference metric and preset, on this machine.

    python -m benchmarks.fullref_bench [--repeats 5] [--threads 0] [--device cpu]   -> benchmarks/fullref.{json,md}

The pair: frame 0 of examples/Giraffe+NeRF (the render) against frame 0 of examples/Giraffe+IBRNet-C (a stand-in
ground truth of the same view; only the time matters here). Each registered metric is timed on the prepared
(1, 3, 768, 960) float tensors, with and without its per-pixel map; each preset by ``FullReference.compute`` on
the two uint8 arrays (input preparation included). Every time is the median of ``--repeats`` calls after one
warm-up call (which also loads the weights). The CPU model, threads, load average and torch version are recorded.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from consts import EXAMPLE_SEQUENCES, EXAMPLES_DIR, ROOT
from models import cli
from models.cli import opt
from models.fullref import FullReference, create
from models.fullref.metrics import METRICS, device_of
from models.fullref.protocols import PROTOCOLS
from models.pixels import read_image
from models.results import stamp, table, write_report
from models.runtime import DEVICES, cpu_name, set_threads


@dataclass
class FullrefBenchConfig:
    """Flags of ``python -m benchmarks.fullref_bench``."""

    repeats: int = opt(5, "timed calls per metric after one warm-up call; the median is reported", min=1)
    threads: int = opt(0, "torch CPU threads (0 = torch's default: one per core)", min=0)
    device: str = opt("cpu", "where the metrics run (FLIP always on the CPU)", choices=DEVICES)
    out: str = opt(str(ROOT / "benchmarks"), "folder for fullref.json and fullref.md")


def time_ms(fn: Callable[[], Any], repeats: int, device: torch.device) -> float:
    """Median milliseconds of ``fn()`` over ``repeats`` calls, after one warm-up call."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def measure_metrics(x: torch.Tensor, y: torch.Tensor, device: torch.device, repeats: int,
                    names: Sequence[str] = tuple(METRICS)) -> list[dict[str, Any]]:
    """One row per metric (and one more for its map, where it has one): ms per image and the value."""
    rows = []
    for name in names:
        m = create(name, device)
        value = float(m(x, y)[0])
        rows.append({"what": name, "ms": time_ms(lambda m=m: m(x, y), repeats, device), "value": value})
        if m.has_map:
            ms = time_ms(lambda m=m: m.evaluate(x, y, with_map=True), repeats, device)
            rows.append({"what": f"{name} + map", "ms": ms, "value": value})
    return rows


def measure_presets(render: np.ndarray, gt: np.ndarray, device: torch.device, repeats: int,
                    presets: Sequence[str] = tuple(PROTOCOLS)) -> list[dict[str, Any]]:
    """One row per preset: ms per image of ``FullReference.compute`` (reading arrays, quantising, all metrics)."""
    rows = []
    for name in presets:
        fr = FullReference(name, device=device)
        values = fr.compute(render, gt)
        rows.append({"what": f"preset {name}", "ms": time_ms(lambda fr=fr: fr.compute(render, gt), repeats, device),
                     "value": ", ".join(f"{k} {v:.4g}" for k, v in values.items())})
    return rows


def report(result: dict[str, Any]) -> str:
    head = (f"Made by `python -m benchmarks.fullref_bench` (`make bench-fullref`) on {result['cpu']}, "
            f"{result['threads']} torch threads, device {result['device']}, torch {result['torch']}, load average "
            f"{result['load_before']:.2f} before / {result['load_after']:.2f} after; median of {result['repeats']} "
            f"calls after a warm-up. The pair: {result['pair']}.")
    rows = [{**r, "value": r["value"] if isinstance(r["value"], str) else f"{r['value']:.6g}"} for r in result["rows"]]
    return "\n\n".join([f"# Full-reference metrics: time per {result['image']} image", head,
                        table(rows, ["what", "ms", "value"], floatfmt=".1f", fmt="github", text=("what", "value"))])


def _frame(sequence: str) -> np.ndarray:
    return read_image(sorted((EXAMPLES_DIR / sequence).glob("*.jpg"))[0])


def run(cfg: FullrefBenchConfig) -> int:
    set_threads(cfg.threads)
    device = device_of(cfg.device)
    render, gt = _frame(EXAMPLE_SEQUENCES[0]), _frame(EXAMPLE_SEQUENCES[1])
    x, y = (torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1)[None].to(device) for a in (render, gt))
    load_before = os.getloadavg()[0]
    rows = measure_metrics(x, y, device, cfg.repeats) + measure_presets(render, gt, device, cfg.repeats)
    result = {**stamp(cpu=cpu_name(), threads=torch.get_num_threads(), device=str(device), repeats=cfg.repeats,
                      load_before=load_before, load_after=os.getloadavg()[0]),
              "image": f"{render.shape[1]}x{render.shape[0]}",
              "pair": f"{EXAMPLE_SEQUENCES[0]} vs {EXAMPLE_SEQUENCES[1]}, frame 0", "rows": rows}
    write_report(Path(cfg.out), "fullref", result, report(result) + "\n")
    return 0


main = cli.script(FullrefBenchConfig, run, __doc__.split("\n")[0])


if __name__ == "__main__":
    sys.exit(main())
