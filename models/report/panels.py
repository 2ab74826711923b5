"""Where each method fails, as pictures: for its worst windows (NVS-SQA) and worst frames (full-reference) the
render beside its ground truth, the error map and CrossScore's predicted map, whichever of them the inputs allow."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from models.errors import InputError
from models.report.failures import Failures
from models.report.figures import Tile, panel_png
from models.report.measure import Models
from models.report.scene import Method

log = logging.getLogger(__name__)

FAILURE_MAPS = ("flip", "ssim", "lpips")  # the error map shown beside a failing frame, first available
MAP_STYLE = {  # how each error map is drawn: colour map, range, colour-bar label
    "flip": ("magma", 0.0, 1.0, "FLIP error (0 = identical)"),
    "ssim": ("turbo", 0.0, 1.0, "SSIM (1 = identical)"),
    "lpips": ("magma", 0.0, None, "LPIPS distance (0 = identical)"),
}


def error_tile(models: Models, render: Path, gt: Path) -> Tile | None:
    """The first error map of :data:`FAILURE_MAPS` the report's metrics have, on the render's pixel grid."""
    maps = models.fullref().maps(render, gt)
    key = next((k for k in FAILURE_MAPS if k in maps), None)
    if key is None:
        return None
    cmap, lo, hi, label = MAP_STYLE[key]
    m = maps[key]
    return Tile(f"{key} map vs ground truth", m, cmap, lo, hi if hi is not None else max(float(m.max()), 1e-3),
                label)


def crossscore_tile(models: Models, render: Path, references: Path, hw: tuple[int, int]) -> Tile:
    from models.crossscore.data import map_to_render

    cs = models.crossscore()
    m = map_to_render(cs.predict(render, references), hw, cs.short_side)
    return Tile(f"CrossScore map (mean {float(m.mean()):.3f})", m, "turbo", 0.0, 1.0, "predicted SSIM")


def panel(models: Models, method: Method, index: int, frame: np.ndarray, references: Path | None,
          best: Method | None = None) -> bytes:
    """One failing frame of ``method``: render, ground truth + error map (when paired), else the same frame of
    the ``best`` method (for comparison), CrossScore map (with references). A map that cannot be made is left
    out, saying why."""
    tiles = [Tile(f"{method.name}: {method.frame_name(index)}", frame)]
    path = method.frames[index] if method.frames else None
    gt = method.gt.get(path.name) if path is not None else None
    try:
        if gt is None and best is not None and best is not method:
            same = best.read([index]).get(index)
            if same is not None and same.shape == frame.shape:
                tiles.append(Tile(f"{best.name} (best JOD): {best.frame_name(index)}", same))
        if gt is not None and path is not None:
            from models.pixels import read_image

            tiles.append(Tile(f"ground truth: {gt.name}", read_image(gt)))
            err = error_tile(models, path, gt)
            if err is not None:
                tiles.append(err)
        if references is not None and path is not None:
            tiles.append(crossscore_tile(models, path, references, frame.shape[:2]))
    except InputError as e:
        log.warning("%s: a map of the failure panel left out: %s", method.key, e)
    return panel_png(tiles)


def method_panels(models: Models, method: Method, failures: Failures, references: Path | None,
                  best: Method | None = None) -> list[tuple[str, bytes]]:
    """(caption, PNG) of every failure of one method: its worst windows, then its worst frames."""
    wanted: list[tuple[int, str]] = []
    for w in failures.windows:
        mid = (w.start + w.end - 1) // 2
        wanted.append((mid, f"{method.name}: window of frames {w.start}-{w.end - 1}, JOD {w.score:.3f} "
                            f"({w.below_median:.2f} below its median); middle frame {mid}"))
    index = {p.frame: p.index for p in method.pairs}
    for f in failures.frames:
        if f.frame in index:
            wanted.append((index[f.frame], f"{method.name}: frame {f.frame}, {failures.frames_by} {f.value:.4g}"))
    if not wanted:
        return []
    try:
        frames = method.read([i for i, _ in wanted])
    except InputError as e:
        log.warning("%s: failure panels left out: %s", method.key, e)
        return []
    return [(caption, panel(models, method, i, frames[i], references, best)) for i, caption in wanted if i in frames]
