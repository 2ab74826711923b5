"""Where the exact scorer's time goes on this CPU, against what the hardware allows.

    python -m benchmarks.roofline      # (make roofline) -> benchmarks/roofline.json and benchmarks/roofline.md

On one thread, on real frames (every ``--every``-th frame of the two examples), after a warm-up:

- **peak**: the best of several float32 matrix products (1024³, ``torch.mm``) in GMAC/s, the practical
  multiply-add rate of one core with the vector units this torch build uses here;
- every convolution of the exact fast path **timed in place** (inside the encoder's own forward pass, its reflect
  padding timed apart), with its multiply-adds, its rate and its share of the peak;
- the whole encoder step per frame as a worker thread runs it (uint8 → float, the encoder, uninstrumented), and
  what is not convolution (padding, pooling, sums, heads);
- JPEG decoding per frame through the scorer's reader (``models/pixels.py``).

From these, the **floor**: every multiply-add at the peak plus decoding, shared by the cores (the worker threads
already scale across cores: docs/performance.md), and the highest speed-up over the authors' code that float32
could reach here: their median ms/frame from ``benchmarks/scorer.json`` (``make bench``) over the floor.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from consts import EXAMPLE_SEQUENCES, EXAMPLES_DIR, ROOT
from models import cli
from models.cli import opt
from models.errors import InputError
from models.frames import is_image
from models.pixels import read_image
from models.results import read_json, stamp, table, write_report
from models.runtime import cpu_name

OUT_DIR = ROOT / "benchmarks"


@dataclass
class RooflineConfig:
    """Flags of ``python -m benchmarks.roofline`` (make roofline)."""

    every: int = opt(4, "time every N-th frame of the two examples (4: 60 of their 240 frames)", min=1)
    out: str = opt(str(OUT_DIR), "folder for roofline.json and roofline.md")


def sgemm_peak(n: int = 1024, repeats: int = 5) -> float:
    """Best single-call rate of an (n×n)·(n×n) float32 product on the calling thread, in GMAC/s."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = float("inf")
    for _ in range(repeats + 2):  # the first two warm the library up
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return n**3 / best / 1e9


def _frames(every: int) -> list[Path]:
    folders = [EXAMPLES_DIR / name for name in EXAMPLE_SEQUENCES]
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise InputError(f"{missing[0]}: example frames missing; run from a full checkout (`git checkout examples/`)")
    return [p for f in folders for p in sorted(f.iterdir()) if is_image(p)][::every]


def measure(every: int = 4) -> dict[str, Any]:
    """The measurements above, in the calling process on one torch thread (its thread count is restored)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _measure(every)
    finally:
        torch.set_num_threads(threads)


def _measure(every: int) -> dict[str, Any]:
    from models.nvs_sqa.network import _ConvSiLU
    from models.nvs_sqa.scorer import NVSSQA

    paths = _frames(every)  # before the model: a missing input is reported at once
    model = NVSSQA.from_checkpoint(None, device="cpu", workers=1)  # exact; sets the allocator as app.py does
    convs = [m for m in model._encoder.modules() if isinstance(m, _ConvSiLU)]
    if not convs:
        raise InputError("this torch build has no oneDNN fused conv+SiLU (the exact fast path): nothing to time")
    decode_ms, frames = [], []
    for p in paths:
        t = time.perf_counter()
        frames.append(torch.from_numpy(read_image(p))[None])
        decode_ms.append((time.perf_counter() - t) * 1000)

    per_conv: dict[int, dict[str, Any]] = {}
    samples: dict[int, list[tuple[float, float]]] = defaultdict(list)

    def timed(i: int, m: _ConvSiLU):
        def forward(x: torch.Tensor) -> torch.Tensor:
            t0 = time.perf_counter()
            xp = m.pad_input(x)
            t1 = time.perf_counter()
            y = m.convolve(xp)
            samples[i].append(((t1 - t0) * 1000, (time.perf_counter() - t1) * 1000))
            if i not in per_conv:
                w = m.weight
                per_conv[i] = {"input": "×".join(map(str, x.shape[1:])), "output": "×".join(map(str, y.shape[1:])),
                               "kernel": f"{w.shape[-2]}×{w.shape[-1]}/{m.stride[0]}",
                               "mmac": y.shape[2] * y.shape[3] * w.numel() / 1e6}  # fmt: skip
            return y

        return forward

    total_ms, instrumented_ms = [], []
    with torch.inference_mode():
        for _ in range(2):
            model._encode_batch(frames[0])  # warm-up: oneDNN primitives created, allocator filled
        for hwc in tqdm(frames, desc="roofline", unit="frame", leave=False):  # the two passes alternate frame by frame
            t = time.perf_counter()
            model._encode_batch(hwc)
            total_ms.append((time.perf_counter() - t) * 1000)
            for i, m in enumerate(convs):
                m.forward = timed(i, m)  # instance attribute: shadows the class's forward for this pass only
            t = time.perf_counter()
            model._encode_batch(hwc)
            instrumented_ms.append((time.perf_counter() - t) * 1000)
            for m in convs:
                del m.forward
    peak = max(sgemm_peak() for _ in range(3))
    rows = []
    for i, info in sorted(per_conv.items()):
        pad = float(np.median([s[0] for s in samples[i]]))
        conv = float(np.median([s[1] for s in samples[i]]))
        rows.append({"layer": i, **info, "pad_ms": pad, "conv_ms": conv, "gmac_s": info["mmac"] / conv,
                     "of_peak": info["mmac"] / conv / peak})  # fmt: skip
    return {"frames": len(paths), "every": every, "peak_gmac_s": peak, "convs": rows,
            "encoder_ms": float(np.median(total_ms)), "instrumented_ms": float(np.median(instrumented_ms)),
            "decode_ms": float(np.median(decode_ms))}  # fmt: skip


def summarize(m: dict[str, Any], cores: int, authors_ms: float | None) -> dict[str, Any]:
    """Totals, the floor and the highest reachable speed-up from :func:`measure`'s numbers."""
    mmac = sum(r["mmac"] for r in m["convs"])
    conv_ms = sum(r["conv_ms"] for r in m["convs"])
    pad_ms = sum(r["pad_ms"] for r in m["convs"])
    floor_enc = mmac / m["peak_gmac_s"]  # ms: MMAC / (GMAC/s)
    s = {"cores": cores, "mmac": mmac, "conv_ms": conv_ms, "pad_ms": pad_ms, "conv_of_peak": mmac / conv_ms /
         m["peak_gmac_s"], "rest_ms": m["encoder_ms"] - conv_ms - pad_ms, "floor_encoder_ms": floor_enc,
         "now_ms_per_frame": (m["encoder_ms"] + m["decode_ms"]) / cores,
         "floor_ms_per_frame": (floor_enc + m["decode_ms"]) / cores, "authors_ms": authors_ms}  # fmt: skip
    if authors_ms:
        s["speedup_now"] = authors_ms / s["now_ms_per_frame"]
        s["speedup_ceiling"] = authors_ms / s["floor_ms_per_frame"]
    return s


def authors_median(scorer_json: Path = OUT_DIR / "scorer.json") -> float | None:
    """The authors' median ms/frame from the last ``make bench``, or None."""
    if not scorer_json.is_file():
        return None
    rows = read_json(scorer_json).get("rows", [])
    return next((float(r["ms_median"]) for r in rows if r.get("engine") == "upstream"), None)


def report_md(res: dict[str, Any]) -> str:
    """``benchmarks/roofline.md`` from the results dict."""
    s, m = res["summary"], res["measured"]
    cols = ("layer", "input", "output", "kernel", "mmac", "pad_ms", "conv_ms", "gmac_s", "of_peak")
    rows = [{**r, "of_peak": f"{r['of_peak']:.0%}"} for r in m["convs"]]
    lines = [f"Measured by `make roofline` on {res['machine']}, torch {res['torch']}, {res['created']}; one thread, "
             f"{m['frames']} frames (every {m['every']}th of the two 960×768 examples), load (1-min) before: "
             f"{res['load_before']:.1f}, after: {res['load_after']:.1f}.", "",
             f"Peak: **{m['peak_gmac_s']:.1f} GMAC/s** (best float32 1024³ `torch.mm` on one thread).", "",
             table(rows, cols, floatfmt=".2f", fmt="github", text=("of_peak",)), "",
             f"Convolutions: {s['mmac']:.0f} MMAC a frame in {s['conv_ms']:.1f} ms ({s['conv_of_peak']:.0%} of the "
             f"peak overall); reflect padding {s['pad_ms']:.1f} ms; the rest of the encoder step (uint8 → float, "
             f"pooling, sums, heads) {s['rest_ms']:.1f} ms; encoder step {m['encoder_ms']:.1f} ms "
             f"({m['instrumented_ms']:.1f} ms instrumented); JPEG decoding {m['decode_ms']:.1f} ms a frame.", "",
             f"On {s['cores']} cores: now ≈ (encoder + decoding) / cores = **{s['now_ms_per_frame']:.1f} ms/frame**; "
             f"floor (every multiply-add at the peak, nothing else but decoding) = "
             f"**{s['floor_ms_per_frame']:.1f} ms/frame**."]  # fmt: skip
    if s.get("authors_ms"):
        lines += ["", f"Against the authors' median of the last `make bench` ({s['authors_ms']:.1f} ms/frame): now "
                  f"≈ {s['speedup_now']:.2f}×, **ceiling {s['speedup_ceiling']:.2f}×** for float32 on this machine."]
    return "\n".join(lines) + "\n"


def run(cfg: RooflineConfig) -> int:
    load_before = os.getloadavg()[0]
    measured = measure(cfg.every)
    cores = len(os.sched_getaffinity(0))
    machine = f"{cpu_name()}, {cores} cores, torch CPU capability {torch.backends.cpu.get_cpu_capability()}"
    res = stamp(machine=machine, measured=measured, summary=summarize(measured, cores, authors_median()),
                load_before=load_before, load_after=os.getloadavg()[0])  # fmt: skip
    write_report(Path(cfg.out), "roofline", res, report_md(res))
    return 0


main = cli.script(RooflineConfig, run, "The exact scorer's time per convolution against this CPU's float32 peak "
                  "-> benchmarks/roofline.{json,md}")


if __name__ == "__main__":
    raise SystemExit(main())
