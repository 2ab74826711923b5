"""How long report.py takes on this CPU and where the time goes (make bench-report) -> benchmarks/report.{json,md}.

report.py's ``main`` runs in this process, from an empty cache, as a user types it, with every stage timed:

- the pass over the frames (:data:`models.report.onepass.STAGES`): decoding (render and ground truth), JOD (what
  NVS-SQA adds to the pass: its encoder runs beside the pass's own work), the full-reference inputs (uint8 ->
  float, compositing), each metric of the preset, FovVideoVDP, CrossScore;
- here, by wrapping the library's functions: loading the models, the statistics, the figures, the failure panels and
  the page; ``rest`` is what no stage holds (imports, scene discovery, cache files, CSV/JSON, writing).

Runs: ``demo`` (3 methods × 120 frames, NVS-SQA only), ``bench`` (``--methods`` of :mod:`benchmarks.report_scene`'s
8 methods × ``--frames`` frames at 960×768 with ground truth: NVS-SQA, the ``nerfbaselines`` preset and FovVideoVDP)
and ``bench, one method added`` (the cache at work). Then the parts on their own, in this process on the bench
scene's frames, before and after the report runs (the load of a shared machine changes): the scorer as
:mod:`benchmarks.scorer_bench` times it (``worker("exact")``: decoding and encoder per frame), each metric of the
preset on one pair per call as :mod:`benchmarks.fullref_bench` times them (tensors in, median after a warm-up) and
FovVideoVDP on one unit window. Goal: the report costs no more than the sum of the parts plus 5 %.
"""

from __future__ import annotations

import functools
import importlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.report_scene import BENCH, SceneConfig, make
from models import cli
from models.cli import opt
from models.results import stamp, table, write_report

HERE = Path(__file__).resolve().parent
PRESET = "nerfbaselines"
WRAPPED = {  # stage -> the library functions whose wall time it holds (a call inside another of its stage counts once)
    "models": ["models.report.measure:Models._get"],
    "statistics": ["models.report.summary:scene_summary"],
    "figures": ["models.report.figures:curves_png", "models.report.figures:frames_png"],
    "failure panels": ["models.report.panels:method_panels"],
    "page": ["models.report.page:document"],
}
GOAL = 1.05


@dataclass
class BenchConfig:
    """Options of the report timing."""

    work: str = opt("runs/report-bench", "where the scenes and reports are made (replaced)")
    frames: int = opt(200, "frames per method of the bench scene", min=6)
    methods: int = opt(len(BENCH), f"methods of the bench scene (the first N of its {len(BENCH)})", min=2)
    parts_frames: int = opt(40, "frames the scorer is timed on alone", min=6)
    repeats: int = opt(5, "calls of each metric timed alone (median after a warm-up)", min=1)
    out: str = opt(str(HERE), "folder of report.{json,md}")
    skip_bench: bool = opt(False, "time the demo only (minutes instead of most of an hour)")


class Stopwatch:
    """Wall time per stage of wrapped functions (main thread)."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()
        self._depth: Counter[str] = Counter()

    def wrap(self, fn: Callable, stage: str) -> Callable:
        @functools.wraps(fn)
        def timed(*a: Any, **k: Any) -> Any:
            self._depth[stage] += 1
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self._depth[stage] -= 1
                if not self._depth[stage]:
                    self.seconds[stage] += time.perf_counter() - t
        return timed

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Every wrapped function replaced wherever the report's modules hold it (by any name), then restored."""
        undo = []
        for stage, targets in WRAPPED.items():
            for target in targets:
                mod, _, name = target.partition(":")
                owner: Any = importlib.import_module(mod)
                *path, attr = name.split(".")
                for p in path:
                    owner = getattr(owner, p)
                real = getattr(owner, attr)
                timed = self.wrap(real, stage)
                holders = [owner] + [m for n, m in list(sys.modules.items()) if n.startswith("models.report")]
                for h in holders:
                    for key, value in list(vars(h).items()):
                        if value is real:
                            setattr(h, key, timed)
                            undo.append((h, key, real))
        try:
            yield
        finally:
            for h, key, real in reversed(undo):
                setattr(h, key, real)


def timed_report(args: list[str], n_frames: int) -> dict[str, Any]:
    """report.py's main on ``args`` in this process: the wall time and the seconds of each stage."""
    from models.report.onepass import STAGES
    from report import main

    watch = Stopwatch()
    before = Counter(STAGES)
    t = time.perf_counter()
    with watch.installed():
        rc = main([*args, "--quiet"])
    wall = time.perf_counter() - t
    if rc != 0:
        raise SystemExit(f"report.py {' '.join(args)}: exit {rc}")
    stages = {k: v - before[k] for k, v in STAGES.items() if k != "frames"}
    stages.update(watch.seconds)
    stages["rest"] = wall - sum(stages.values())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the process's so far (this run or earlier)
    return {"seconds": wall, "frames": n_frames, "handed": STAGES["frames"] - before["frames"], "stages": stages,
            "peak_rss_mb": peak}


def parts_alone(scene: Path, gt: Path, n: int, repeats: int) -> dict[str, float]:
    """Seconds per frame of each part on its own: the scorer on ``n`` frames (benchmarks.scorer_bench's worker,
    exact), each preset metric on one pair per call, FovVideoVDP on one unit window."""
    import numpy as np

    from benchmarks.scorer_bench import worker
    from models.frames import list_images
    from models.fullref import FullReference
    from models.fullref.fvvdp import FovVideoVDP
    from models.nvs_sqa.validity import Limits
    from models.pixels import read_image
    from models.report.stats import unit_window

    render, truth = list_images(scene / next(iter(BENCH))), list_images(gt)
    sub = scene.parent / "parts-alone"
    shutil.rmtree(sub, ignore_errors=True)
    sub.mkdir()
    for p in render[:n]:
        (sub / p.name).symlink_to(p)
    seq = worker("exact", [str(sub)], 1)["sequences"][sub.name]
    out = {"scorer (decode + NVS-SQA)": seq["seconds"] / seq["frames"]}
    fr = FullReference(PRESET, device="cpu")
    x, y = fr.prepare(render[0], truth[0])
    for key, metric in fr.metrics.items():
        out[f"fullref:{key}"] = median_seconds(lambda m=metric: m(x, y), repeats)
    lim = Limits.load()
    w = unit_window(len(truth), lim.min_frames, lim.curve_window)
    test, ref = (np.stack([read_image(p) for p in paths[:w]]) for paths in (render, truth))
    fv = FovVideoVDP()
    out["fvvdp"] = median_seconds(lambda: fv.windows(lambda *_: test, lambda *_: ref, [(0, w)]),
                                  max(1, repeats // 2)) / w
    return out


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def machine_load() -> str:
    """``uptime``'s line (the load averages of a machine that other jobs share)."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def bench_scene(work: Path, cfg: BenchConfig) -> tuple[Path, Path]:
    """The bench scene with its first ``cfg.methods`` methods, its ground truth moved beside it."""
    scene = work / "bench/scene"
    make(SceneConfig(out=str(scene), kind="bench", frames=cfg.frames))
    for name in list(BENCH)[cfg.methods:]:
        shutil.rmtree(scene / name)
    gt = work / "bench/gt"
    os.rename(scene / "gt", gt)
    return scene, gt


def bench(cfg: BenchConfig) -> int:
    import torch

    load0 = machine_load()
    work = Path(cfg.work).resolve()
    shutil.rmtree(work, ignore_errors=True)
    runs: dict[str, dict[str, Any]] = {}
    make(SceneConfig(out=str(work / "demo/Giraffe"), kind="demo"))
    runs["demo"] = {"methods": 3, "parts": "jod",
                    **timed_report([str(work / "demo/Giraffe"), "--out", str(work / "demo/report")], 3 * 120)}
    alone: dict[str, dict[str, float]] = {}
    if not cfg.skip_bench:
        scene, gt = bench_scene(work, cfg)
        alone["before"] = parts_alone(scene, gt, cfg.parts_frames, cfg.repeats)
        args = [str(scene), "--gt", str(gt), "--out", str(work / "bench/report")]
        parts = f"jod + {PRESET} + fvvdp"
        runs["bench"] = {"methods": cfg.methods, "parts": parts, **timed_report(args, cfg.methods * cfg.frames)}
        # a new method: new files (new modification times), so a new fingerprint and nothing cached for it
        shutil.copytree(scene / next(iter(BENCH)), scene / "added-copy", copy_function=shutil.copy)
        runs["bench, one method added"] = {"methods": cfg.methods + 1, "parts": parts, **timed_report(args,
                                                                                                      cfg.frames)}
        alone["after"] = parts_alone(scene, gt, cfg.parts_frames, cfg.repeats)
    result = stamp(cpu_capability=torch.backends.cpu.get_cpu_capability(), cores=os.cpu_count(),
                   threads=torch.get_num_threads(), load_before=load0, load_after=machine_load(),
                   command="python -m benchmarks.report_bench " + " ".join(cli.to_argv(cfg)), frames=cfg.frames,
                   runs=runs, alone=alone, **verdict(runs, alone))
    md = render_md(result)
    write_report(Path(cfg.out), "report", result, md)
    print(md)
    return 0


def verdict(runs: dict[str, dict[str, Any]], alone: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The report's seconds per frame against the sum of its parts on their own (the mean of before and after)."""
    if "bench" not in runs or not alone:
        return {}
    parts = {k: statistics.mean(a[k] for a in alone.values()) for k in alone["before"]}
    total = sum(parts.values())
    per_frame = runs["bench"]["seconds"] / runs["bench"]["frames"]
    return {"parts_sum_s": total, "report_s": per_frame, "ratio": per_frame / total, "goal": GOAL,
            "met": per_frame <= GOAL * total}


def stage_order(runs: dict[str, dict[str, Any]]) -> list[str]:
    seen = {k for r in runs.values() for k in r["stages"]}
    first = ["decode", "jod", "fullref inputs"]
    metrics = list(dict.fromkeys(k for r in runs.values() for k in r["stages"] if k.startswith("fullref:")))
    last = ["fvvdp", "crossscore", *WRAPPED, "rest"]
    return [k for k in [*first, *metrics, *last] if k in seen]


def render_md(r: dict[str, Any]) -> str:
    runs = r["runs"]
    head = (f"# report.py: time on this CPU\n\nMade by `{r['command']}` (`make bench-report`) on {r['cpu']} (torch "
            f"CPU capability {r['cpu_capability']}), {r['cores']} cores, {r['threads']} torch threads, torch "
            f"{r['torch']}, {r['created']}. The machine is shared with other jobs: `uptime` before: "
            f"{r['load_before']}; after: {r['load_after']}. Each run is report.py's `main` in one process from an "
            "empty cache (the last row: one method added to the cached report).\n\n")
    rows = [{"run": k, "methods": v["methods"], "frames per method": r["frames"] if k != "demo" else 120,
             "parts": v["parts"], "seconds": v["seconds"], "s per frame": v["seconds"] / v["frames"],
             "peak RSS so far (MB)": v["peak_rss_mb"]}
            for k, v in runs.items()]
    out = head + table(rows, list(rows[0]), floatfmt=".3f", fmt="github") + "\n"
    stages = [{"stage": s, **{k: 1000 * v["stages"].get(s, 0.0) / v["frames"] for k, v in runs.items()}}
              for s in stage_order(runs)]
    stages.append({"stage": "total", **{k: 1000 * v["seconds"] / v["frames"] for k, v in runs.items()}})
    out += ("\n## Where the time goes: ms per frame (frames: methods × frames; the last run: the added method's)\n\n"
            "JOD is what NVS-SQA adds to the pass: its encoder runs beside the decoding and the other parts, whose "
            "stages hold their own time on the other core. The stages add up to the total.\n\n"
            + table(stages, ["stage", *runs], floatfmt=".1f", fmt="github") + "\n")
    if r.get("alone"):
        b = runs["bench"]
        inside = {"scorer (decode + NVS-SQA)": b["stages"].get("decode", 0) + b["stages"].get("jod", 0),
                  **{k: b["stages"].get(k, 0) for k in r["alone"]["before"] if k.startswith("fullref:")},
                  "fvvdp": b["stages"].get("fvvdp", 0)}
        rows = [{"part": k, **{f"alone, {w}": 1000 * a[k] for w, a in r["alone"].items()},
                 "in the report": 1000 * inside[k] / b["frames"]} for k in r["alone"]["before"]]
        rows.append({"part": "sum", **{f"alone, {w}": 1000 * sum(a.values()) for w, a in r["alone"].items()},
                     "in the report": 1000 * r["report_s"]})
        out += ("\n## The report against its parts on their own (ms per frame, this process, bench scene)\n\n"
                "Alone: the scorer as `benchmarks/scorer_bench.py` times it (`worker('exact')`, decoding included), "
                "each metric on one 960×768 pair per call (tensors in) as `benchmarks/fullref_bench.py` times them, "
                "FovVideoVDP on one unit window; before and after the report runs. In the report: decode (render "
                "and ground truth) + JOD for the scorer; the sum row is the whole report per frame.\n\n"
                + table(rows, list(rows[0]), floatfmt=".1f", fmt="github") + "\n\n"
                f"Goal: the report ≤ {GOAL:.2f} × the sum of its parts: {1000 * r['report_s']:.0f} ms against "
                f"{1000 * r['parts_sum_s']:.0f} ms per frame (ratio {r['ratio']:.3f}): "
                f"{'met' if r['met'] else 'NOT met'}.\n")
    return out


main = cli.script(BenchConfig, bench, "Time report.py on the demo scene and an 8-method x 200-frame scene, by stage.")

if __name__ == "__main__":
    raise SystemExit(main())
