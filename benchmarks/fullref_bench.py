"""``make bench-fullref``: each full-reference metric beside the package a user would call instead, on this machine.

    python -m benchmarks.fullref_bench [--repeats 5] [--threads 0] [--metrics psnr ssim] -> benchmarks/fullref.{json,md}

The pair: frame 0 of examples/Giraffe+NeRF (the ground truth) and the same frame re-encoded as a JPEG of quality 50
by Pillow (the render), 960x768, as (1, 3, 768, 960) float32 tensors in [0, 1]. Each metric and its peer
(:mod:`benchmarks.fullref_peers`: torchmetrics, pytorch_msssim, lpips, DISTS_pytorch, fetched pinned into .cache/)
are timed interleaved in this process: one warm-up call each, then ``--repeats`` rounds of one call of each (the
order alternating between rounds); medians with min–max, and the ratio of the medians (project / peer). Peers run
under ``torch.no_grad()``, as a user evaluating with them would; ours as the API is called. A second table times
the per-pixel maps and each preset's ``FullReference.compute`` on the uint8 arrays (inputs prepared included).
The CPU model and its vector extensions, threads, load average and versions are recorded.
"""

from __future__ import annotations

import io
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
from PIL import Image

from benchmarks.fullref_peers import peers
from consts import EXAMPLE_SEQUENCES, EXAMPLES_DIR, ROOT
from models import cli
from models.cli import opt
from models.fullref import FullReference, create
from models.fullref.metrics import METRICS, device_of
from models.fullref.protocols import PROTOCOLS
from models.pixels import read_image
from models.results import stamp, table, write_report
from models.runtime import DEVICES, cpu_flags, set_threads

JPEG_QUALITY = 50
CPU_FEATURES = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16",
                "amx_tile", "amx_bf16")
STANDIN_NOTE = (
    "lpips and DISTS_pytorch import torchvision for their backbones, and torchvision does not import beside torch "
    "2.13; the benchmark gives them a stand-in `torchvision.models` whose alexnet()/vgg16() build torchvision's "
    "`features` layer layout (same indices, ReLU in place) filled with the ImageNet weights of checkpoints/fullref, "
    "so each peer computes the metric with its own code and its own lin / alpha-beta weights (its values equal ours "
    "to float32 rounding: see the value columns). FLIP has no peer: flip-evaluator (NVIDIA's reference) is already "
    "our implementation, so its row times the package called directly, i.e. our wrapper's cost.")


@dataclass
class FullrefBenchConfig:
    """Flags of ``python -m benchmarks.fullref_bench``."""

    repeats: int = opt(5, "interleaved rounds (one call of ours, one of the peer) after a warm-up", min=1)
    other_repeats: int = opt(3, "timed calls of each map and preset row after a warm-up", min=1)
    threads: int = opt(0, "torch CPU threads (0 = torch's default: one per core)", min=0)
    device: str = opt("cpu", "where the metrics and peers run (FLIP always on the CPU)", choices=DEVICES)
    metrics: list[str] = opt(list(METRICS), "metrics to time beside their peers", choices=tuple(METRICS))
    presets: list[str] = opt(list(PROTOCOLS), "presets to time (FullReference.compute)", choices=tuple(PROTOCOLS))
    others: bool = opt(True, "also time each metric's per-pixel map and each preset (project only)")
    out: str = opt(str(ROOT / "benchmarks"), "folder for fullref.json and fullref.md")


def _sync(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def _once(fn: Callable[[], Any], sync: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    sync()
    return (time.perf_counter() - t0) * 1000


def spread(times: Sequence[float]) -> dict[str, Any]:
    """Median, min and max of ``times`` (ms), and the times themselves."""
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "all": list(times)}


def time_ms(fn: Callable[[], Any], repeats: int, device: torch.device) -> dict[str, Any]:
    """:func:`spread` of ``repeats`` calls of ``fn()`` after one warm-up call."""
    sync = _sync(device)
    _once(fn, sync)
    return spread([_once(fn, sync) for _ in range(repeats)])


def interleaved(ours: Callable[[], Any], peer: Callable[[], Any], repeats: int, device: torch.device
                ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both timed in the same rounds: one warm-up call each, then ``repeats`` rounds of one call each, the order
    alternating, so that a change of machine load hits both alike."""
    sync = _sync(device)
    _once(ours, sync)
    _once(peer, sync)
    t_ours, t_peer = [], []
    for r in range(repeats):
        if r % 2:
            t_peer.append(_once(peer, sync))
            t_ours.append(_once(ours, sync))
        else:
            t_ours.append(_once(ours, sync))
            t_peer.append(_once(peer, sync))
    return spread(t_ours), spread(t_peer)


def _value(out: Any) -> float:
    return float(torch.as_tensor(out).detach().flatten()[0])


def versus_peers(x: torch.Tensor, y: torch.Tensor, device: torch.device, repeats: int, names: Sequence[str]
                 ) -> list[dict[str, Any]]:
    """One row per metric: ours and its peer's ms (interleaved), their ratio, and both values."""
    rows = []
    with peers(device) as theirs:
        for name in names:
            m, peer = create(name, device), theirs.get(name)
            row: dict[str, Any] = {"metric": name, "value": _value(m(x, y))}
            if peer is None:
                row.update(peer="none", ms=time_ms(lambda m=m: m(x, y), repeats, device))
            else:
                def call_peer(fn=peer.fn):
                    with torch.no_grad():
                        return fn(x, y)

                row["ms"], row["peer_ms"] = interleaved(lambda m=m: m(x, y), call_peer, repeats, device)
                rounds = [o / t for o, t in zip(row["ms"]["all"], row["peer_ms"]["all"], strict=True)]
                row.update(peer=peer.label, peer_value=_value(call_peer()), round_ratios=spread(rounds),
                           ratio=row["ms"]["median"] / row["peer_ms"]["median"])
            rows.append(row)
    return rows


def measure_others(x: torch.Tensor, y: torch.Tensor, render: np.ndarray, gt: np.ndarray, device: torch.device,
                   repeats: int, names: Sequence[str], presets: Sequence[str]) -> list[dict[str, Any]]:
    """Project-only rows: each metric with its per-pixel map, each preset's ``FullReference.compute``."""
    rows = []
    for name in names:
        m = create(name, device)
        if m.has_map:
            rows.append({"what": f"{name} + map", "ms": time_ms(lambda m=m: m.evaluate(x, y, with_map=True), repeats,
                                                                device), "value": f"{_value(m(x, y)):.6g}"})
    for name in presets:
        fr = FullReference(name, device=device)
        values = fr.compute(render, gt)
        rows.append({"what": f"preset {name}", "ms": time_ms(lambda fr=fr: fr.compute(render, gt), repeats, device),
                     "value": ", ".join(f"{k} {v:.6g}" for k, v in values.items())})
    return rows


def _ms(s: dict[str, Any]) -> str:
    return f"{s['median']:.1f} ({s['min']:.1f}–{s['max']:.1f})"


def report(result: dict[str, Any]) -> str:
    head = (f"Made by `python -m benchmarks.fullref_bench` (`make bench-fullref`) on {result['cpu']} "
            f"({result['cpu_features']}; torch CPU capability {result['cpu_capability']}), {result['threads']} torch "
            f"threads, device {result['device']}, torch {result['torch']}, load average {result['load_before']:.2f} "
            f"before / {result['load_after']:.2f} after. The pair: {result['pair']}. Interleaved rounds: one warm-up "
            f"call each, then {result['repeats']} rounds of one call of ours and one of the peer (order alternating); "
            f"ms as median (min–max); ratio = median ours / median peer (in brackets: the range of the rounds' own "
            f"ratios).")
    peer_rows = [{"metric": r["metric"], "project ms": _ms(r["ms"]), "peer": r["peer"],
                  "peer ms": _ms(r["peer_ms"]) if "peer_ms" in r else "",
                  "ratio": f"{r['ratio']:.2f} ({r['round_ratios']['min']:.2f}–{r['round_ratios']['max']:.2f})"
                  if "ratio" in r else "",
                  "project value": f"{r['value']:.7g}",
                  "peer value": f"{r['peer_value']:.7g}" if "peer_value" in r else ""} for r in result["peers"]]
    other = [{"what": r["what"], "ms": _ms(r["ms"]), "value": r["value"]} for r in result["others"]]
    cols = ["metric", "project ms", "peer", "peer ms", "ratio", "project value", "peer value"]
    parts = [f"# Full-reference metrics beside their peers: time per {result['image']} image", head,
             table(peer_rows, cols, fmt="github", text=cols), STANDIN_NOTE]
    if other:
        parts += [f"Maps and presets (project only; median (min–max) of {result['other_repeats']} calls after a "
                  f"warm-up):", table(other, ["what", "ms", "value"], fmt="github", text=("what", "ms", "value"))]
    return "\n\n".join(parts)


def cpu_features(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The vector extensions of :data:`CPU_FEATURES` this CPU reports ("avx2 fma avx512f ..."), for results files."""
    flags = cpu_flags(cpuinfo)
    return " ".join(f for f in CPU_FEATURES if f in flags) or "unknown"


def example_pair() -> tuple[np.ndarray, np.ndarray]:
    """(render, gt): frame 0 of the first example sequence re-encoded as a JPEG of quality 50, and the frame."""
    gt = read_image(sorted((EXAMPLES_DIR / EXAMPLE_SEQUENCES[0]).glob("*.jpg"))[0])
    buf = io.BytesIO()
    Image.fromarray(gt).save(buf, "JPEG", quality=JPEG_QUALITY)
    return np.asarray(Image.open(buf).convert("RGB")), gt


def run(cfg: FullrefBenchConfig) -> int:
    set_threads(cfg.threads)
    device = device_of(cfg.device)
    render, gt = example_pair()
    x, y = (torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1)[None].contiguous().to(device)
            for a in (render, gt))
    load_before = os.getloadavg()[0]
    rows = versus_peers(x, y, device, cfg.repeats, cfg.metrics)
    others = (measure_others(x, y, render, gt, device, cfg.other_repeats, cfg.metrics, cfg.presets)
              if cfg.others else [])
    machine = stamp(cpu_features=cpu_features(), cpu_capability=torch.backends.cpu.get_cpu_capability(),
                    threads=torch.get_num_threads(), device=str(device), repeats=cfg.repeats,
                    other_repeats=cfg.other_repeats, load_before=load_before, load_after=os.getloadavg()[0])
    pair = (f"{EXAMPLE_SEQUENCES[0]} frame 0 (ground truth) vs its JPEG re-encoding at quality {JPEG_QUALITY} "
            f"(Pillow {Image.__version__}; the render)")
    result = {**machine, "image": f"{gt.shape[1]}x{gt.shape[0]}", "pair": pair, "peers": rows, "others": others}
    write_report(Path(cfg.out), "fullref", result, report(result) + "\n")
    return 0


main = cli.script(FullrefBenchConfig, run, __doc__.split("\n")[0])


if __name__ == "__main__":
    sys.exit(main())
