"""How long report.py takes on this CPU (make bench-report) -> benchmarks/report.{json,md}.

Runs, each as the command a user types, from an empty cache, timed end to end (wall clock, one process):

- ``demo``: the scene of ``make report-demo`` (3 methods × 120 frames at 960×768, NVS-SQA only);
- ``bench``: 8 methods × 200 frames at 960×768 with ground truth (:mod:`benchmarks.report_scene` ``--kind bench``):
  NVS-SQA and the ``nerfbaselines`` preset (PSNR, SSIM, MAE, MSE, LPIPS-alex) on every frame;
- ``bench, one method added``: the same report again after a ninth method is added: the cache at work.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.report_scene import SceneConfig, make
from models import cli
from models.cli import opt
from models.results import stamp, table, write_report
from models.runtime import cpu_name

HERE = Path(__file__).resolve().parent


@dataclass
class BenchConfig:
    """Options of the report timing."""

    work: str = opt("runs/report-bench", "where the scenes and reports are made (replaced)")
    frames: int = opt(200, "frames per method of the bench scene", min=2)
    out: str = opt(str(HERE), "folder of report.{json,md}")
    skip_bench: bool = opt(False, "time the demo only (minutes instead of most of an hour)")


def timed(args: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "report.py", *args, "--quiet"], check=True, cwd=HERE.parent)
    return time.perf_counter() - t


def bench(cfg: BenchConfig) -> int:
    load0 = [round(x, 2) for x in os.getloadavg()]
    work = Path(cfg.work).resolve()
    shutil.rmtree(work, ignore_errors=True)
    rows = []
    make(SceneConfig(out=str(work / "demo/Giraffe"), kind="demo"))
    s = timed([str(work / "demo/Giraffe"), "--out", str(work / "demo/report")])
    rows.append({"run": "demo", "methods": 3, "frames": 120, "metrics": "jod", "seconds": s})
    if not cfg.skip_bench:
        scene = work / "bench/scene"
        make(SceneConfig(out=str(scene), kind="bench", frames=cfg.frames))
        gt = scene / "gt"
        os.rename(gt, work / "bench/gt")
        args = [str(scene), "--gt", str(work / "bench/gt"), "--out", str(work / "bench/report")]
        s = timed(args)
        rows.append({"run": "bench", "methods": 8, "frames": cfg.frames, "metrics": "jod + nerfbaselines",
                     "seconds": s})  # fmt: skip
        # a ninth method: new files (new modification times), so a new fingerprint and nothing cached for it
        shutil.copytree(scene / "reencoded", scene / "reencoded-copy", copy_function=shutil.copy)
        s = timed(args)
        rows.append({"run": "bench, one method added", "methods": 9, "frames": cfg.frames,
                     "metrics": "jod + nerfbaselines", "seconds": s})  # fmt: skip
    for r in rows:
        r["per frame (s)"] = r["seconds"] / (r["methods"] * r["frames"]) if "added" not in r["run"] else None
    load = [round(x, 2) for x in os.getloadavg()]
    result = stamp(cpu=cpu_name(), cores=os.cpu_count(), load_before=load0, load_after=load, rows=rows)
    md = (f"# report.py: time on this CPU\n\nMade by `python -m benchmarks.report_bench` (`make bench-report`) on "
          f"{cpu_name()}, {os.cpu_count()} cores, torch {result['torch']}, {result['created']}, load average "
          f"{load0[0]} before / {load[0]} after; wall clock of the whole command, from an empty cache except the "
          "last row.\n\n"
          + table(rows, ["run", "methods", "frames", "metrics", "seconds", "per frame (s)"], floatfmt=".2f",
                  fmt="github") + "\n")  # fmt: skip
    write_report(Path(cfg.out), "report", result, md)
    print(md)
    return 0


main = cli.script(BenchConfig, bench, "Time report.py on the demo scene and an 8-method x 200-frame scene.")

if __name__ == "__main__":
    raise SystemExit(main())
