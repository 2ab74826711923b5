"""The one rule for how a sequence is scored: one pass, or windows along the camera path (and which).

Every scoring path calls :func:`plan_windows` — ``app.py``, :meth:`NVSSQA.score`, :meth:`NVSSQA.windows` and the
shards — and carries its :class:`WindowPlan`; the scores come back as a :class:`WindowedScore`.

- ``window=None`` (auto): one pass as upstream up to the validated length (``Limits.max_frames``), beyond it
  windows of the validated size and stride (a long single pass leaves the benchmark's range: docs/validity.md);
- ``window=0``: always one pass;
- ``window=N``: windows of N frames, every ``stride`` (default N/2).

A sequence no longer than its window is one pass (the one window would be the whole sequence), whatever asked
for it, so ``--window 60`` on 24 frames reads ``single`` in app.py and in the API alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.errors import InputError
from models.nvs_sqa.validity import Limits


def window_problem(window: int | None, stride: int, span: int) -> str | None:
    """Why a window setting is unusable (``span``: the window it resolves to), or None. The library and the CLI
    each put their own names (parameters / flags) in front of this reason."""
    if window is not None and window < 0:
        return "use auto, 0 (one pass) or a number of frames >= 1"
    if stride < 0:
        return "the stride must be >= 0 (0 = the default)"
    if window == 0 and stride:
        return "a stride is for windows; drop it, or use auto or a window of N frames"
    if stride > span:
        return f"a stride over the window of {span} frames would leave frames unscored; use a smaller stride"
    return None


def window_starts(n_frames: int, window: int, stride: int) -> np.ndarray:
    """Start frames of the windows covering ``n_frames``: 0, stride, 2·stride, … and a last one ending at the end."""
    if window < 1 or stride < 1:
        raise InputError(f"window={window}, stride={stride}: both must be >= 1")
    if n_frames <= window:
        return np.array([0])
    starts = list(range(0, n_frames - window + 1, stride))
    if starts[-1] + window < n_frames:
        starts.append(n_frames - window)
    return np.array(starts)


@dataclass(frozen=True)
class WindowPlan:
    """How one sequence of ``n_frames`` is scored: one pass (``window`` 0) or windows ``[starts, ends)``."""

    n_frames: int
    window: int  # 0: one pass
    stride: int  # 0: one pass
    starts: np.ndarray
    ends: np.ndarray  # exclusive

    @property
    def single(self) -> bool:
        return self.window == 0

    @property
    def mode(self) -> str:
        """``single``, or ``windows W/S ×K`` (what results files and tables show)."""
        return "single" if self.single else f"windows {self.window}/{self.stride} ×{len(self.starts)}"


def plan_windows(n_frames: int, window: int | None = None, stride: int = 0, limits: Limits | None = None
                 ) -> WindowPlan:  # fmt: skip
    """The plan for a sequence of ``n_frames`` (see the module docstring); an unusable ``window``/``stride`` is
    one :class:`InputError` naming them. ``limits``: the validated limits (default: the committed file)."""
    lim = limits if limits is not None else Limits.load() if window is None else None
    span = lim.window if window is None else window  # type: ignore[union-attr]
    why = window_problem(window, stride, span)
    if why:
        raise InputError(f"window={window}, stride={stride}: {why}")
    long = n_frames > lim.max_frames if window is None else window > 0  # type: ignore[union-attr]
    if not long or n_frames <= span:
        return WindowPlan(n_frames, 0, 0, np.array([0]), np.array([n_frames]))
    step = stride or (lim.stride if window is None else max(1, window // 2))  # type: ignore[union-attr]
    starts = window_starts(n_frames, span, step)
    return WindowPlan(n_frames, span, step, starts, np.minimum(starts + span, n_frames))


@dataclass
class WindowedScore:
    """The JOD of one sequence and how it was made: one pass (one score) or one score per window of ``plan``,
    whose mean is the sequence's score."""

    name: str
    plan: WindowPlan
    scores: np.ndarray  # JOD per window (one value for a single pass)

    @property
    def score(self) -> float:
        return float(np.mean(self.scores))

    @property
    def mode(self) -> str:
        return self.plan.mode

    @property
    def starts(self) -> np.ndarray:
        return self.plan.starts

    @property
    def ends(self) -> np.ndarray:
        return self.plan.ends

    @property
    def worst(self) -> tuple[int, int, float]:
        """(start, end, score) of the lowest-scoring window."""
        i = int(np.argmin(self.scores))
        return int(self.starts[i]), int(self.ends[i]), float(self.scores[i])
