"""The report's files from its records: report.csv (every number of the page, one per row), frames.csv (every
per-frame value), the summary as report.json's dict, and the body of index.html. Records become dicts here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from models.report import page
from models.report.records import MetricSummary, SceneSummary
from models.report.series import CROSSSCORE, FULLREF, JOD
from models.report.stats import LEVEL

REPORT_COLUMNS = ("scene", "method", "metric", "field", "against", "value", "decision", "why", "unit", "units",
                  "preset", "higher_is_better", "flags")  # fmt: skip


def _method_rows(base: dict[str, Any], m: MetricSummary, name: str) -> list[dict[str, Any]]:
    e = m.entries[name]
    row = {**base, "method": name, "against": "", "unit": m.info.unit, "units": e.estimate.units,
           "flags": "; ".join(e.flags)}  # fmt: skip
    rows = [{**row, "field": "value", "value": e.value},
            {**row, "field": "rank", "value": "" if e.rank is None else e.rank, "why": e.unranked_why}]
    if e.estimate.low is not None:  # the page shows the mean of the units with its interval
        rows += [{**row, "field": f, "value": v} for f, v in (("mean", e.estimate.mean), ("low", e.estimate.low),
                                                              ("high", e.estimate.high))]
    rows += [{**row, "field": "excluded", "value": n, "why": why} for why, n in e.excluded.items()]
    return rows


def report_rows(summaries: Sequence[SceneSummary]) -> list[dict[str, Any]]:
    """Every number the page shows: per method and metric its value, the mean of its units with their interval,
    its rank (empty: not ranked, ``why`` says why), the units left out; per ordered pair the difference (``against``
    the other method), its interval, the decision and its reason, and for JOD-unit metrics the share of observers
    preferring ``method``."""
    rows = []
    for s in summaries:
        for m in s.metrics:
            base = {"scene": s.scene, "metric": m.info.key, "preset": m.info.preset or "",
                    "higher_is_better": m.info.higher_is_better}
            for name in m.entries:
                rows += _method_rows(base, m, name)
            for (a, b), c in m.pairs.items():
                pair = {**base, "method": a, "against": b, "decision": c.decision, "why": c.why, "unit": c.unit,
                        "units": c.units}
                rows.append({**pair, "field": "delta", "value": c.delta})
                rows += [{**pair, "field": f, "value": v} for f, v in (("delta_low", c.low), ("delta_high", c.high))
                         if v is not None]  # fmt: skip
                prefer = m.prefer(c)
                if prefer is not None:
                    rows.append({**pair, "field": "prefer", "value": prefer})
    return rows


def summary_dict(s: SceneSummary) -> dict[str, Any]:
    """report.json's view of a scene summary (pairs as a list, each with its reason in words)."""
    metrics = []
    for m in s.metrics:
        pairs = [asdict(c) | {"why": c.why, "prefer_a": m.prefer(c)} for c in m.pairs.values()]
        metrics.append({"info": asdict(m.info), "entries": {n: asdict(e) for n, e in m.entries.items()},
                        "pairs": pairs})
    return {"scene": s.scene, "statements": s.statements, "metrics": metrics,
            "agreement": [asdict(a) for a in s.agreement],
            "failures": {n: asdict(f) for n, f in s.failures.items()}}  # fmt: skip


def frame_rows(scene: str, measured: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per method and frame with every per-frame value (full-reference metrics, CrossScore)."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    columns: list[str] = []
    for m in measured:
        fr = m.get(FULLREF) or {"rows": []}
        for r in fr["rows"]:
            rows.setdefault((m["name"], r["frame"]), {"scene": scene, "method": m["name"], "frame": r["frame"]}) \
                .update({k: v for k, v in r.items() if k != "frame"})  # fmt: skip
            columns += [k for k in r if k != "frame" and k not in columns]
        cs = m.get(CROSSSCORE) or {"frames": [], "scores": []}
        for f, v in zip(cs["frames"], cs["scores"], strict=True):
            rows.setdefault((m["name"], f), {"scene": scene, "method": m["name"], "frame": f})[CROSSSCORE] = v
        if cs["frames"] and CROSSSCORE not in columns:
            columns.append(CROSSSCORE)
    return list(rows.values()), columns


def method_notes(measured: Sequence[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(warnings, errors) of a scene's methods that are not a flag beside a number, one line each, prefixed by the
    method: frames without ground truth, frames or parts that could not be measured."""
    warns, errs = [], []
    for m in measured:
        fr = m.get(FULLREF) or {}
        if fr.get("unmatched"):
            n = len(fr["unmatched"])
            warns.append(f"{m['name']}: {n} frame(s) without ground truth, left out of the full-reference metrics "
                         f"({', '.join(fr['unmatched'][:3])}{', …' if n > 3 else ''})")
        for part in (FULLREF, CROSSSCORE, "fvvdp"):
            errs += [f"{m['name']}: {e}" for e in (m.get(part) or {}).get("errors", [])]
        errs += [f"{m['name']}: {e}" for e in m["errors"]]
    return list(dict.fromkeys(warns)), errs


def scene_section(s: SceneSummary, measured: Sequence[dict[str, Any]], figures: dict[str, bytes],
                  panels: dict[str, list[tuple[str, bytes]]]) -> str:
    """The HTML of one scene: the top box, problems, verdicts, scores, pairwise decisions, agreement, curves,
    failures."""
    names = [m["name"] for m in measured]
    warns, errs = method_notes(measured)
    out = [f"<h2>{page.esc(s.scene)}: {len(names)} method(s)</h2>", page.top_box(s.statements),
           page.notes(errs, "err"), page.notes(warns, "warn")]
    out += [page.verdict(m) for m in s.metrics]
    out += ["<h3>Scores</h3>", f"<p class=meta>Value (the metric's own: a preset's mean, the sequence's NVS-SQA "
            f"score), rank # (1 + the number of methods decisively better; ties share a rank; – not ranked, hover for "
            f"why), and the {LEVEL:.0%} interval of the mean of its units (frames or windows). {page.FLAG_MARK} "
            "marks a value not to be trusted (hover for why). ↑ higher is better, ↓ lower.</p>",
            page.scores_table(s.scene, s.metrics, names)]  # fmt: skip
    for m in s.metrics:
        floor = f" and reach the {m.info.floor:g} noise floor" if m.info.floor else ""
        out += [f"<h3>{page.esc(m.info.label)}: A vs B</h3><p class=meta>Mean difference A − B over the {m.info.unit} "
                f"both have, oriented so that &gt; 0 means A is better; ▲ A better, ▼ A worse, ≈ not decided: the "
                f"{LEVEL:.0%} interval must exclude 0{floor}. Hover a cell for the reason.</p>",
                page.pairs_table(s.scene, m, names)]  # fmt: skip
    out += ["<h3>Do the metrics agree?</h3>", page.agreement_table(s.agreement)]
    out += [page.img(png, key) for key, png in figures.items()]
    out.append("<h3>Where each method fails</h3>")
    for name in names:
        f = s.failures[name]
        out.append(f"<h4>{page.esc(name)}</h4>")
        out += [f"<p class=meta>{page.esc(note)}</p>" for note in (f.windows_note, f.frames_note) if note]
        out += [f"<p class=meta>{page.esc(c)}</p>{page.img(png, c)}" for c, png in panels.get(name, [])]
    return "\n".join(o for o in out if o)


def flagged_names(s: SceneSummary) -> set[str]:
    """The methods whose NVS-SQA score is flagged (marked in every figure that shows it)."""
    jod = s.metric(JOD)
    return {n for n, e in jod.entries.items() if e.flags} if jod else set()
