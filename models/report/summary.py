"""The numbers of a scene report, from the measured methods to a :class:`~models.report.records.SceneSummary`: per
metric and method the value, its interval, rank and flags; every pairwise decision with its reason (guarded by
NVS-SQA's noise floor, flags and blind spots); how far the metrics agree; the top box; where each method fails."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from models.fullref.protocols import get as get_protocol
from models.nvs_sqa.validity import Limits, blind_spot_bias
from models.report import failures as fail
from models.report import stats
from models.report.records import Agreement, Entry, MetricSummary, SceneSummary
from models.report.series import FULLREF, JOD, MetricData, MetricInfo, Series, metric_data
from models.report.statements import statements
from models.report.stats import Comparison, Guard


# --------------------------------------------------------------------------------------------- comparisons
def _oriented(info: MetricInfo, values: Sequence[float]) -> np.ndarray:
    return np.asarray(values, np.float64) * (1.0 if info.higher_is_better else -1.0)


def guard(info: MetricInfo, sa: Series, sb: Series, limits: Limits) -> Guard:
    """What can withhold a decision between two series: the floor, a flagged value (CrossScore's demonstration
    model, an NVS-SQA score outside its validated range) and, for NVS-SQA, the bias its blind spots may give
    either render."""
    flagged = "; ".join(f"{s.method}'s score is flagged — {'; '.join(s.flags)}" for s in (sa, sb) if s.flags)
    if info.key != JOD:
        return Guard(floor=info.floor, flagged=flagged)
    b = blind_spot_bias(sa.blind, sb.blind, limits, (sa.method, sb.method))
    return Guard(floor=info.floor, flagged=flagged, bias_a=b.a, bias_b=b.b, bias_why=b.why)


def compare_pair(d: MetricData, a: str, b: str, limits: Limits, seed: int, n: int) -> Comparison:
    """A vs B on one metric: paired over their shared units, unpaired only where they share none."""
    sa, sb = d.series[a], d.series[b]
    shared = [u for u in sa.values if u in sb.values]
    rng = stats.rng_for(seed, d.info.key, a, b)
    g = guard(d.info, sa, sb, limits)
    if shared:
        xa = _oriented(d.info, [sa.values[u] for u in shared])
        xb = _oriented(d.info, [sb.values[u] for u in shared])
        return stats.compare(a, b, xa, xb, True, d.info.unit, rng, n, g)
    return stats.compare(a, b, _oriented(d.info, list(sa.values.values())),
                         _oriented(d.info, list(sb.values.values())), False, d.info.unit, rng, n, g)


def summarise_metric(d: MetricData, limits: Limits, seed: int, n: int) -> MetricSummary:
    names = list(d.series)
    pairs: dict[tuple[str, str], Comparison] = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            c = compare_pair(d, a, b, limits, seed, n)
            pairs[(a, b)], pairs[(b, a)] = c, c.mirror()
    rank = stats.ranks(names, pairs)
    entries = {}
    for name, s in d.series.items():
        est = stats.estimate(np.asarray(list(s.values.values())), stats.rng_for(seed, d.info.key, name), n)
        why = "" if rank[name] is not None else ("not ranked: its score is flagged" if s.flags
                                                 else unranked_why(name, pairs))
        entries[name] = Entry(s.value, est, rank[name], s.flags, s.excluded, why)
    return MetricSummary(d.info, entries, pairs)


def unranked_why(name: str, pairs: dict[tuple[str, str], Comparison]) -> str:
    """Why a method has no rank: the reasons of its comparisons, each once."""
    reasons = dict.fromkeys(c.why for (a, _), c in pairs.items() if a == name)
    return "not ranked: " + ("; ".join(reasons) if reasons else "the only method with this metric")


def agreement(metrics: Sequence[MetricSummary]) -> list[Agreement]:
    """Every two metrics: Kendall tau over the methods both have (oriented: 1 = same order), and their decisions."""
    out = []
    for i, a in enumerate(metrics):
        for b in metrics[i + 1:]:
            common = [m for m in a.entries if m in b.entries]
            tau = stats.kendall_tau(_oriented(a.info, [a.entries[m].value for m in common]),
                                    _oriented(b.info, [b.entries[m].value for m in common]))
            same = opposite = 0
            for (x, y), ca in a.pairs.items():
                cb = b.pairs.get((x, y))
                if x < y and cb is not None and ca.decision != stats.TIE and cb.decision != stats.TIE:
                    same += ca.decision == cb.decision
                    opposite += ca.decision != cb.decision
            out.append(Agreement(a.info.key, b.info.key, len(common), tau, same, opposite))
    return out


# --------------------------------------------------------------------------------------------- failures
def method_failures(m: dict[str, Any], limits: Limits, floors: fail.Floors, k: int) -> fail.Failures:
    """The worst windows (NVS-SQA's curve) and worst frames (a full-reference metric) that are failures."""
    windows, wnote = fail.worst_windows((m.get(JOD) or {}).get("curve"), k, limits.curve_noise_floor_jod)
    fr = m.get(FULLREF) or {}
    if not fr.get("rows") or k == 0:
        return fail.Failures(windows, wnote)
    key = fail.worst_frame_metric(list(fr["higher_is_better"]))
    protocol = get_protocol(fr["preset"])
    metric = protocol.metrics[key].metric if key in protocol.metrics else key
    values = {r["frame"]: float(r[key]) for r in fr["rows"] if not np.isnan(r[key])}
    frames, fnote = fail.worst_frames(values, metric, k, floors.floors.get(metric, 0.0))
    return fail.Failures(windows, wnote, key, frames, fnote)


# --------------------------------------------------------------------------------------------- the scene
def scene_summary(scene: str, methods: Sequence[dict[str, Any]], limits: Limits, seed: int, n: int, k: int,
                  floors: fail.Floors | None = None) -> SceneSummary:
    """Everything the page, report.csv and report.json show about one scene."""
    metrics = [summarise_metric(d, limits, seed, n) for d in metric_data(methods, limits)]
    agree = agreement(metrics)
    floors = floors or fail.Floors.load()
    fails = {m["name"]: method_failures(m, limits, floors, k) for m in methods}
    return SceneSummary(scene, metrics, agree, fails, statements(metrics, agree))
