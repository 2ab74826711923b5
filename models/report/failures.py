"""Where each method fails: its worst windows along the camera path (NVS-SQA's quality curve) and its worst frames
(a full-reference metric), each shown only when it is worse than the method's own typical window or frame by more
than a measured floor — a near-perfect method has no failure to show.

- Windows: below the curve's median by more than the curve's noise floor (``Limits.curve_noise_floor_jod``).
- Frames: a frame's *distance* from its ground truth (0 = identical: LPIPS, DISTS, FLIP, MAE, MSE as they are,
  1 − SSIM, and the MSE behind a PSNR, 10^(−PSNR/10)) above the method's median distance by more than the metric's
  floor: what changes nobody would see (±1 code value, JPEG quality 95) do to one frame, measured by
  ``make validity`` (``python -m benchmarks.failure_floors``) into ``floors_v1.json`` beside this file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import InputError

FLOORS_FILE = Path(__file__).with_name("floors_v1.json")
WORST_FRAME_BY = ("lpips", "ssim", "psnr", "flip", "dists")  # the metric (preset key) that picks the worst frames
SIMILARITIES = ("ssim", "ms-ssim")  # registry metrics where 1 = identical


def distance(metric: str, value: float) -> float:
    """``value`` of registry metric ``metric`` as a distance from the ground truth (0 = identical)."""
    if metric == "psnr":
        return 0.0 if value == math.inf else 10.0 ** (-value / 10.0)
    if metric in SIMILARITIES:
        return 1.0 - value
    return value


@dataclass(frozen=True)
class Floors:
    """Per registry metric, the distance a frame may be above its method's median distance without being a
    failure (what invisible changes do to one frame). No defaults: the file is the one source."""

    version: str
    measured_by: str
    floors: dict[str, float]

    @classmethod
    def load(cls, path: Path = FLOORS_FILE) -> Floors:
        """The floors in ``path``; a missing or malformed file is an :class:`InputError` naming it."""
        try:
            d = json.loads(Path(path).read_text())
            return cls(d["version"], d["measured_by"], {k: float(v) for k, v in d["floors"].items()})
        except FileNotFoundError:
            raise InputError(f"{path}: the failure floors file is missing; restore it (git checkout) or re-make it "
                             "with `make validity`") from None
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
            raise InputError(f"{path}: not a usable failure floors file ({type(e).__name__}); restore it or re-make "
                             "it with `make validity`") from None


@dataclass(frozen=True)
class Window:
    start: int
    end: int  # exclusive
    score: float
    below_median: float


@dataclass(frozen=True)
class Frame:
    frame: str
    value: float
    beyond: float  # distance above the method's median distance


@dataclass(frozen=True)
class Failures:
    """One method's failures: windows (NVS-SQA) and frames (``frames_by``), and a sentence where there are none."""

    windows: list[Window] = field(default_factory=list)
    windows_note: str = ""
    frames_by: str | None = None
    frames: list[Frame] = field(default_factory=list)
    frames_note: str = ""


def worst_windows(curve: dict[str, Any] | None, k: int, floor: float) -> tuple[list[Window], str]:
    """Up to ``k`` non-overlapping curve windows below the curve's median by more than ``floor``, worst first."""
    if not curve or k == 0:
        return [], "no quality curve (fewer frames than the curve needs)" if k else ""
    scores = np.asarray(curve["scores"], np.float64)
    median = float(np.median(scores))
    out: list[Window] = []
    for i in np.argsort(scores, kind="stable"):
        s, e = int(curve["starts"][i]), int(curve["ends"][i])
        if len(out) == k or scores[i] >= median - floor:
            break
        if all(e <= w.start or s >= w.end for w in out):
            out.append(Window(s, e, float(scores[i]), median - float(scores[i])))
    note = "" if out else f"no window falls below the curve's median by more than its {floor:g} JOD noise floor"
    return out, note


def worst_frame_metric(keys: Sequence[str]) -> str:
    """The metric (preset key) that picks a method's worst frames: the first of :data:`WORST_FRAME_BY` it has."""
    return next((m for m in WORST_FRAME_BY if m in keys), keys[0])


def worst_frames(values: dict[str, float], metric: str, k: int, floor: float) -> tuple[list[Frame], str]:
    """Up to ``k`` frames whose distance (registry ``metric``) exceeds the median distance by more than ``floor``,
    worst first; and a sentence when none does."""
    if not values or k == 0:
        return [], ""
    names = list(values)
    d = np.array([distance(metric, values[n]) for n in names])
    median = float(np.median(d))
    order = np.argsort(-d, kind="stable")
    out = [Frame(names[i], values[names[i]], float(d[i] - median)) for i in order[:k] if d[i] - median > floor]
    note = "" if out else (f"no frame is worse than the method's typical frame by more than the {metric} floor "
                           f"({floor:.3g}, what invisible changes do to a frame)")
    return out, note
