"""Correlations with their undefined cases: Pearson, Spearman (SRCC), Kendall tau-b (KRCC), RMSE.

Everything in float64; a correlation that is undefined (fewer than two values, a constant input) is NaN,
never an exception, so a results table shows the gap instead of a crash.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation in float64; NaN when either input is constant."""
    a, b = a - a.mean(), b - b.mean()
    den = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / den if den > 0 else math.nan


def correlations(pred: np.ndarray, label: np.ndarray) -> dict[str, float]:
    """SRCC, PLCC, KRCC (tau-b) and RMSE of predictions against labels; NaN where undefined (n < 2, constant)."""
    p, t = np.asarray(pred, dtype=np.float64), np.asarray(label, dtype=np.float64)
    out = {"rmse": float(np.sqrt(np.mean((p - t) ** 2))) if len(p) else math.nan}
    if len(p) < 2 or np.ptp(p) == 0 or np.ptp(t) == 0:
        return {"srcc": math.nan, "plcc": math.nan, "krcc": math.nan, **out}
    return {
        "srcc": pearson(stats.rankdata(p), stats.rankdata(t)), "plcc": pearson(p, t),
        "krcc": float(stats.kendalltau(p, t).statistic), **out,
    }  # fmt: skip
