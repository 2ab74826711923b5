"""The quality curve of a windowed sequence: window scores along the camera path, the lowest window marked.

Drawn on a plain matplotlib :class:`~matplotlib.figure.Figure` with the Agg canvas (no pyplot state, no display,
safe in threads) and returned as PNG bytes, which app.py writes atomically as ``curves/<name>.png``.
"""

from __future__ import annotations

import io

import numpy as np


def quality_curve(name: str, starts: np.ndarray, ends: np.ndarray, scores: np.ndarray, n_frames: int,
                  window: int, stride: int, floor: float = 0.0) -> bytes:
    """PNG of window score vs. window centre (frames; ``ends`` exclusive), with the sequence score (their mean)
    as a dashed line and the band of ± ``floor`` (the windows' noise floor) around it. The lowest window is shaded
    and marked only when it lies more than ``floor`` below the highest: inside the noise no window is "lowest"."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    starts, ends, scores = np.asarray(starts), np.asarray(ends), np.asarray(scores, dtype=float)
    centres = (starts + ends - 1) / 2
    low, mean = int(np.argmin(scores)), float(scores.mean())
    fig = Figure(figsize=(7.0, 3.4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(centres, scores, "o-", color="tab:blue", ms=4, label="window score")
    ax.axhline(mean, color="tab:gray", ls="--", lw=1, label=f"mean of the windows {mean:.3f}")
    if floor > 0:
        ax.axhspan(mean - floor, mean + floor, color="tab:gray", alpha=0.12, label=f"noise floor ±{floor:g} JOD")
    if scores.max() - scores[low] > floor:
        ax.axvspan(starts[low], ends[low] - 1, color="tab:red", alpha=0.12)
        ax.plot([centres[low]], [scores[low]], "v", color="tab:red", ms=10,
                label=f"lowest: frames {starts[low]}-{ends[low] - 1}, {scores[low]:.3f}")
    else:
        ax.plot([], [], " ", label="all windows within the noise floor: no lowest window")
    ax.set_xlim(0, max(n_frames - 1, 1))
    ax.set_xlabel("frame along the camera path (window centre)")
    ax.set_ylabel("JOD (higher is better)")
    ax.set_title(f"{name}: {len(scores)} windows of {window} frames, every {stride}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
