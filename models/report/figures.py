"""The report's pictures as PNG bytes: quality curves of all methods overlaid, per-frame metric curves, and the
failure panels (render, ground truth, error map, CrossScore map side by side). Plain matplotlib Figures on the
Agg canvas: no pyplot state, no display."""

from __future__ import annotations

import io
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.report.failures import Window

DPI = 90


def _figure(w: float, h: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _colours(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def curves_png(scene: str, curves: dict[str, dict[str, Any]], worst: dict[str, Sequence[Window]], floor: float,
               flagged: Collection[str] = ()) -> bytes:
    """Every method's quality curve (window JOD vs window centre) on one axis; each method's failing windows
    shaded in its colour; the curve's noise floor drawn as an error bar; a flagged method's curve dashed and its
    name marked ⚠ (its score is not to be trusted)."""
    fig = _figure(8.0, 3.6)
    ax = fig.add_subplot()
    for (name, c), colour in zip(curves.items(), _colours(len(curves)), strict=True):
        starts, ends = np.asarray(c["starts"]), np.asarray(c["ends"])
        centres = (starts + ends - 1) / 2
        bad = name in flagged
        ax.plot(centres, c["scores"], "o--" if bad else "o-", ms=3, lw=1.5, color=colour,
                label=f"{name} ⚠ flagged" if bad else name)
        for w in worst.get(name, []):
            ax.axvspan(w.start, w.end - 1, color=colour, alpha=0.12)
    if floor > 0:
        ax.errorbar([0.02], [0.08], yerr=[floor], transform=ax.transAxes, color="0.4", capsize=3, fmt="none")
        ax.annotate(f" ±{floor:g} JOD: one window's noise floor", (0.025, 0.06), xycoords="axes fraction",
                    fontsize=8, color="0.3")
    ax.set_xlabel("frame along the camera path (window centre)")
    ax.set_ylabel("JOD (higher is better)")
    ax.set_title(f"{scene}: NVS-SQA quality along the path", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _png(fig)


def frames_png(scene: str, metric: str, higher_is_better: bool, values: dict[str, Sequence[float]]) -> bytes:
    """One full-reference (or CrossScore) value per frame, every method on one axis."""
    fig = _figure(8.0, 3.2)
    ax = fig.add_subplot()
    for (name, v), colour in zip(values.items(), _colours(len(values)), strict=True):
        ax.plot(np.arange(len(v)), v, ".-", ms=3, lw=1, color=colour, label=name)
    ax.set_xlabel("frame (in file-name order)")
    ax.set_ylabel(f"{metric} ({'higher' if higher_is_better else 'lower'} is better)")
    ax.set_title(f"{scene}: {metric} per frame", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _png(fig)


@dataclass
class Tile:
    """One image of a panel: an RGB frame (uint8 (H, W, 3)) or a float map with its colour scale."""

    title: str
    image: np.ndarray
    cmap: str | None = None  # None: an RGB image
    vmin: float = 0.0
    vmax: float = 1.0
    label: str = ""  # the colour bar's label


def panel_png(tiles: Sequence[Tile], width: float = 3.6) -> bytes:
    """The tiles side by side (the caption is the page's), maps with their colour bars."""
    h, w = tiles[0].image.shape[:2]
    fig = _figure(width * len(tiles), width * h / w + 0.4)
    for i, t in enumerate(tiles):
        ax = fig.add_subplot(1, len(tiles), i + 1)
        im = ax.imshow(t.image, cmap=t.cmap, vmin=t.vmin, vmax=t.vmax, interpolation="nearest")
        ax.set_title(t.title, fontsize=8)
        ax.set_axis_off()
        if t.cmap is not None:
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).set_label(t.label, fontsize=7)
    return _png(fig)
