"""The failure floors of the scene report: how far changes nobody would see move one frame's full-reference metric
(part of ``make validity``).

    python -m benchmarks.failure_floors   # -> benchmarks/failure_floors.{json,md}, models/report/floors_v1.json

On ``--frames`` evenly spaced frames of each example sequence (960x768), every registered full-reference metric
compares the frame with an invisibly changed copy of itself — every pixel one code value up, one down (clipped),
Gaussian noise of sigma 1 code value (seeded), a JPEG round trip at quality 90 (Pillow, 4:2:0) — as a *distance*
from the original (0 = identical; 1 − SSIM for
the similarities, the MSE behind PSNR: :func:`models.report.failures.distance`). A metric's floor is the largest
such distance over frames and changes: a frame worse than its method's typical frame by no more than that may
differ only invisibly, so the report shows it as no failure. Seeded: deterministic on a CPU.
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from consts import EXAMPLE_SEQUENCES, EXAMPLES_DIR, ROOT
from models import cli
from models.cli import opt
from models.frames import list_images
from models.fullref import FullReference, list_metrics
from models.pixels import read_image
from models.report.failures import FLOORS_FILE, distance
from models.results import atomic_write_json, stamp, table, write_report
from models.runtime import set_threads

CHANGES = ("+1", "-1", "noise1", "jpeg90")
VERSION = "v1"
MEASURED_BY = "python -m benchmarks.failure_floors (make validity)"


def changed(frame: np.ndarray, kind: str) -> np.ndarray:
    """``frame`` after one invisible change of :data:`CHANGES`."""
    if kind in ("+1", "-1"):
        return np.clip(frame.astype(np.int16) + (1 if kind == "+1" else -1), 0, 255).astype(np.uint8)
    if kind == "noise1":
        noise = np.random.default_rng(0).normal(0.0, 1.0, frame.shape)
        return np.clip(np.rint(frame + noise), 0, 255).astype(np.uint8)
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, "JPEG", quality=90)
    return np.asarray(Image.open(buf).convert("RGB"))


def measure(n_frames: int) -> list[dict]:
    """One row per sequence, frame, change and metric: the metric's value and its distance."""
    metrics = list(list_metrics())
    fr = FullReference("reference", metrics=metrics, device="cpu")
    keys = {m: m for m in metrics}
    rows = []
    for seq in EXAMPLE_SEQUENCES:
        files = list_images(EXAMPLES_DIR / seq)
        for i in np.linspace(0, len(files) - 1, n_frames).round().astype(int):
            frame = read_image(files[i])
            for kind in CHANGES:
                values = fr.compute(changed(frame, kind), frame)
                rows += [{"sequence": seq, "frame": files[i].name, "change": kind, "metric": m,
                          "value": values[keys[m]], "distance": distance(m, values[keys[m]])} for m in metrics]
    return rows


def floors(rows: list[dict]) -> dict[str, float]:
    """Per metric, the largest distance an invisible change gave one frame (3 significant digits, rounded up)."""
    out = {}
    for m in dict.fromkeys(r["metric"] for r in rows):
        top = max(r["distance"] for r in rows if r["metric"] == m)
        digits = 2 - int(np.floor(np.log10(top))) if top > 0 else 0
        out[m] = float(np.ceil(top * 10**digits) / 10**digits)
    return out


@dataclass
class FloorsConfig:
    """Flags of ``python -m benchmarks.failure_floors``."""

    frames: int = opt(6, "frames per example sequence, evenly spaced", min=1)
    write: bool = opt(True, f"write the floors file the report reads ({FLOORS_FILE.name})")
    threads: int = opt(0, "torch threads (0 = torch's choice)", min=0)
    out: str = opt(str(ROOT / "benchmarks"), "folder for failure_floors.json and failure_floors.md")


def run(cfg: FloorsConfig) -> int:
    set_threads(cfg.threads)
    rows = measure(cfg.frames)
    fl = floors(rows)
    worst = [{"metric": m, "floor (distance)": v,
              **{c: max(r["distance"] for r in rows if r["metric"] == m and r["change"] == c) for c in CHANGES}}
             for m, v in fl.items()]  # fmt: skip
    md = ("# Failure floors of the scene report\n\nMade by `python -m benchmarks.failure_floors` (`make validity`): "
          f"the largest distance (0 = identical) an invisible change gives one frame, over {cfg.frames} frames of "
          "each example; a worst frame is a failure only beyond its method's median by more than this.\n\n"
          + table(worst, list(worst[0]), floatfmt=".3g", fmt="github") + "\n")
    write_report(Path(cfg.out), "failure_floors", {**stamp(), "frames": cfg.frames, "floors": fl, "rows": rows}, md)
    if cfg.write:
        atomic_write_json(FLOORS_FILE, {"version": VERSION, "measured_by": MEASURED_BY, "floors": fl})
    return 0


main = cli.script(FloorsConfig, run, __doc__.split("\n")[0])

if __name__ == "__main__":
    sys.exit(main())
