"""The report's files from its numbers: report.csv (every number of the page, one per row), frames.csv (every
per-frame value), report.json (all of it with provenance) and the body of index.html."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from models.report import page
from models.report.stats import LEVEL

REPORT_COLUMNS = ("scene", "method", "metric", "field", "against", "value", "decision", "unit", "units", "preset",
                  "higher_is_better")  # fmt: skip
FIELDS = ("value", "low", "high", "rank")


def report_rows(summaries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every number the page shows: per method and metric its value, interval and rank; per pair the difference
    (``against`` the other method) and, for JOD, the share of observers preferring ``method``."""
    rows = []
    for s in summaries:
        for m in s["metrics"]:
            base = {"scene": s["scene"], "metric": m["metric"], "preset": m["preset"] or "",
                    "higher_is_better": m["higher_is_better"]}
            for name, e in m["methods"].items():
                for f in FIELDS:
                    if e[f] is not None:
                        rows.append({**base, "method": name, "field": f, "against": "", "value": e[f],
                                     "unit": e["unit"], "units": e["units"]})
            for p in m["pairs"]:
                pair = {**base, "method": p["a"], "against": p["b"], "decision": p["decision"], "unit": m["unit"],
                        "units": p["units"]}
                rows.append({**pair, "field": "delta", "value": p["delta"]})
                if "prefer_a" in p:
                    rows.append({**pair, "field": "prefer", "value": p["prefer_a"]})
    return rows


def frame_rows(scene: str, measured: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per method and frame with every per-frame value (full-reference metrics, CrossScore)."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    columns: list[str] = []
    for m in measured:
        fr = m.get("fullref") or {"rows": []}
        for r in fr["rows"]:
            rows.setdefault((m["name"], r["frame"]), {"scene": scene, "method": m["name"], "frame": r["frame"]}) \
                .update({k: v for k, v in r.items() if k != "frame"})  # fmt: skip
            columns += [k for k in r if k != "frame" and k not in columns]
        cs = m.get("crossscore") or {"frames": [], "scores": []}
        for f, v in zip(cs["frames"], cs["scores"], strict=True):
            rows.setdefault((m["name"], f), {"scene": scene, "method": m["name"], "frame": f})["crossscore"] = v
        if cs["frames"] and "crossscore" not in columns:
            columns.append("crossscore")
    return list(rows.values()), columns


def method_notes(measured: Sequence[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(warnings, errors) of a scene's methods, one line each, prefixed by the method."""
    warns, errs = [], []
    for m in measured:
        j = m.get("jod") or {}
        warns += [f"{m['name']}: NVS-SQA score outside the validated range: {w}" for w in j.get("warnings", [])]
        fr = m.get("fullref") or {}
        if fr.get("unmatched"):
            warns.append(f"{m['name']}: {len(fr['unmatched'])} frame(s) without ground truth, left out of the "
                         f"full-reference metrics ({', '.join(fr['unmatched'][:3])}"
                         f"{', …' if len(fr['unmatched']) > 3 else ''})")
        for part in ("fullref", "crossscore"):
            errs += [f"{m['name']}: {e}" for e in (m.get(part) or {}).get("errors", [])]
        cs = m.get("crossscore") or {}
        if cs.get("warning"):
            warns.append(f"{m['name']}: {cs['warning']}")
        errs += [f"{m['name']}: {e}" for e in m["errors"]]
    return list(dict.fromkeys(warns)), errs


def scene_section(s: dict[str, Any], measured: Sequence[dict[str, Any]], figures: dict[str, bytes],
                  panels: dict[str, list[tuple[str, bytes]]]) -> str:
    """The HTML of one scene: verdicts, scores, pairwise decisions, agreement, curves, failures, warnings."""
    scene, names = s["scene"], [m["name"] for m in measured]
    warns, errs = method_notes(measured)
    out = [f"<h2>{page.esc(scene)}: {len(names)} method(s)</h2>", page.notes(errs, "err")]
    out += [page.verdict(m, names) for m in s["metrics"]]
    out += ["<h3>Scores</h3>", f"<p class=meta>Value, its {LEVEL:.0%} interval [low, high] and rank #: 1 + the number "
            "of methods decisively better (ties share a rank). ↑ higher is better, ↓ lower.</p>",
            page.scores_table(scene, s["metrics"], names)]  # fmt: skip
    for m in s["metrics"]:
        floor = f"; and at least the {m['floor']:g} noise floor" if m["floor"] else ""
        out += [f"<h3>{page.esc(m['metric'])}: A vs B</h3><p class=meta>A − B, oriented so that &gt; 0 means A "
                f"is better; ▲ A better, ▼ A worse, ≈ tie: the {LEVEL:.0%} interval of the difference (bootstrap "
                f"over {m['unit']}) must exclude 0{floor}. Hover a cell for the reason.</p>",
                page.pairs_table(scene, m, names)]
    out += ["<h3>Do the metrics agree?</h3>", page.agreement_table(s["agreement"])]
    for key, png in figures.items():
        out.append(page.img(png, key))
    fails = {f["name"]: f for f in s["failures"]}
    out.append("<h3>Where each method fails</h3>")
    for name in names:
        f = fails[name]
        out.append(f"<h4>{page.esc(name)}</h4>")
        if f["windows_note"]:
            out.append(f"<p class=meta>{page.esc(f['windows_note'])}</p>")
        out += [f"<p class=meta>{page.esc(c)}</p>{page.img(png, c)}" for c, png in panels.get(name, [])]
    if warns:
        out += ["<h3>Warnings</h3>", page.notes(warns, "warn")]
    return "\n".join(out)
