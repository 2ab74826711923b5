"""The numbers of a scene report, from the measured methods: per method and metric a value with its interval and
rank, pairwise decisions, agreement between metrics, preferences, and the windows and frames where each fails."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from models.nvs_sqa.validity import Limits
from models.report import stats

JOD = "jod"
CROSSSCORE = "crossscore"
FAILURE_MAPS = ("flip", "ssim", "lpips")  # the error map shown beside a failing frame, first available
WORST_FRAME_BY = ("lpips", "ssim", "psnr", "flip", "dists")  # the metric that picks a method's worst frames


@dataclass
class MetricView:
    """One metric as every method of a scene has it: per method the per-unit values (aligned by unit name)."""

    name: str
    higher_is_better: bool
    unit: str  # "windows" | "frames"
    floor: float  # the smallest difference that counts (the JOD noise floor; 0 for exact metrics)
    values: dict[str, float] = field(default_factory=dict)  # method -> value
    units: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> {unit name: value}
    preset: str | None = None


def metric_views(methods: Sequence[dict[str, Any]], limits: Limits) -> list[MetricView]:
    """The metrics the measured ``methods`` of one scene have, each with every method's values."""
    views: dict[str, MetricView] = {}
    for m in methods:
        j = m.get(JOD)
        if j and j.get("score") is not None:
            v = views.setdefault(JOD, MetricView(JOD, True, "windows", limits.noise_floor_jod))
            v.values[m["name"]] = j["score"]
            c = j.get("curve")
            if c:
                keep = stats.disjoint(c["starts"], c["ends"])
                v.units[m["name"]] = {f"{c['starts'][i]}-{c['ends'][i]}": c["scores"][i] for i in keep}
        fr = m.get("fullref")
        if fr and fr["rows"]:
            for key, higher in fr["higher_is_better"].items():
                v = views.setdefault(key, MetricView(key, higher, "frames", 0.0, preset=fr["preset"]))
                per = {r["frame"]: r[key] for r in fr["rows"] if np.isfinite(r[key])}
                if per:
                    v.values[m["name"]] = float(np.mean(list(per.values())))
                    v.units[m["name"]] = per
        cs = m.get(CROSSSCORE)
        if cs and cs["scores"]:
            v = views.setdefault(CROSSSCORE, MetricView(CROSSSCORE, True, "frames", 0.0))
            v.values[m["name"]] = float(np.mean(cs["scores"]))
            v.units[m["name"]] = dict(zip(cs["frames"], cs["scores"], strict=True))
    return list(views.values())


def _oriented(view: MetricView, values: Sequence[float]) -> np.ndarray:
    return np.asarray(values, np.float64) * (1.0 if view.higher_is_better else -1.0)


def estimates(view: MetricView, seed: int, n: int) -> dict[str, stats.Estimate]:
    out = {}
    for name, value in view.values.items():
        u = view.units.get(name)
        arr = None if not u else np.asarray(list(u.values()), np.float64)
        out[name] = stats.estimate(value, arr, view.unit, stats.rng_for(seed, view.name, name), n)
    return out


def comparisons(view: MetricView, seed: int, n: int) -> dict[tuple[str, str], stats.Comparison]:
    """Every ordered pair of methods on one metric (the second of a pair is the first's mirror image)."""
    names = list(view.values)
    out: dict[tuple[str, str], stats.Comparison] = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ua, ub = view.units.get(a, {}), view.units.get(b, {})
            shared = [k for k in ua if k in ub]
            paired = len(shared) >= 2
            xa = _oriented(view, [ua[k] for k in shared] if paired else list(ua.values())) if ua else None
            xb = _oriented(view, [ub[k] for k in shared] if paired else list(ub.values())) if ub else None
            delta = float(_oriented(view, [view.values[a] - view.values[b]])[0])
            c = stats.compare(a, b, delta, xa, xb, paired, stats.rng_for(seed, view.name, a, b), n, view.floor)
            out[(a, b)] = c
            flip = {"better": "worse", "worse": "better"}.get(c.decision, c.decision)
            out[(b, a)] = stats.Comparison(b, a, -delta, None if c.high is None else -c.high,
                                           None if c.low is None else -c.low, c.units, c.paired, flip, c.why)
    return out


def agreement(views: Sequence[MetricView]) -> list[dict[str, Any]]:
    """Kendall's tau between every two metrics over the methods both have (oriented: 1 = same order)."""
    out = []
    for i, a in enumerate(views):
        for b in views[i + 1:]:
            common = [m for m in a.values if m in b.values]
            tau = stats.kendall_tau(_oriented(a, [a.values[m] for m in common]),
                                    _oriented(b, [b.values[m] for m in common]))
            out.append({"a": a.name, "b": b.name, "methods": len(common), "tau": tau})
    return out


def worst_windows(jod: dict[str, Any] | None, k: int, floor: float) -> tuple[list[dict[str, Any]], str]:
    """Up to ``k`` non-overlapping curve windows that fall below the curve's median by more than ``floor`` (the
    curve's noise floor), worst first; and a sentence when none does."""
    c = (jod or {}).get("curve")
    if not c or k == 0:
        return [], "no quality curve (fewer frames than the curve needs)" if k else ""
    scores = np.asarray(c["scores"])
    median = float(np.median(scores))
    out: list[dict[str, Any]] = []
    for i in np.argsort(scores, kind="stable"):
        s, e = int(c["starts"][i]), int(c["ends"][i])
        if len(out) == k or scores[i] >= median - floor:
            break
        if all(e <= w["start"] or s >= w["end"] for w in out):
            out.append({"start": s, "end": e, "score": float(scores[i]), "below_median": median - float(scores[i])})
    note = "" if out else f"no window falls below the curve's median by more than its {floor:g} JOD noise floor"
    return out, note


def worst_frame_metric(higher_is_better: dict[str, bool]) -> str:
    """The full-reference metric that picks a method's worst frames: the first of WORST_FRAME_BY it has."""
    return next((m for m in WORST_FRAME_BY if m in higher_is_better), next(iter(higher_is_better)))


def worst_frames(fr: dict[str, Any] | None, k: int) -> tuple[str | None, list[dict[str, Any]]]:
    """The metric that picks the worst frames and up to ``k`` frames, worst first."""
    if not fr or not fr["rows"] or k == 0:
        return None, []
    key = worst_frame_metric(fr["higher_is_better"])
    sign = 1.0 if fr["higher_is_better"][key] else -1.0
    rows = sorted(fr["rows"], key=lambda r: sign * r[key])[:k]
    return key, [{"frame": r["frame"], "value": r[key]} for r in rows]


def scene_summary(scene: str, methods: Sequence[dict[str, Any]], limits: Limits, seed: int, n: int,
                  k: int) -> dict[str, Any]:
    """Everything the page, report.csv and report.json show about one scene."""
    views = metric_views(methods, limits)
    metrics = []
    for v in views:
        est = estimates(v, seed, n)
        comps = comparisons(v, seed, n)
        rank = stats.ranks(list(v.values), comps)
        metrics.append({
            "metric": v.name, "higher_is_better": v.higher_is_better, "unit": v.unit, "floor": v.floor,
            "preset": v.preset,
            "methods": {m: {**asdict(e), "rank": rank[m]} for m, e in est.items()},
            "pairs": [asdict(c) | ({"prefer_a": stats.preference(c.delta)} if v.name == JOD else {})
                      for c in comps.values()],
        })  # fmt: skip
    per_method = []
    for m in methods:
        win, note = worst_windows(m.get(JOD), k, limits.curve_noise_floor_jod)
        by, frames = worst_frames(m.get("fullref"), k)
        per_method.append({"name": m["name"], "worst_windows": win, "windows_note": note, "worst_frames_by": by,
                           "worst_frames": frames})
    return {"scene": scene, "metrics": metrics, "agreement": agreement(views), "failures": per_method}
