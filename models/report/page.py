"""``index.html``: one static, self-contained page (inline CSS, images as data: URIs, no script, no server, no CDN).

Every number on the page is an element with ``data-scene``, ``data-method``, ``data-metric`` and ``data-field``
attributes and the exact value in ``data-value`` (the text shows it rounded): the tests read the page back and
check each number against report.csv.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from typing import Any

from models.report.stats import LEVEL

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1180px;color:#222;
padding:0 16px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:20px 0 6px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4}td.name,th.name{text-align:left}
.better{color:#176b2c;font-weight:600}.worse{color:#a11d1d}.tie{color:#777}
.ci{color:#666;font-size:12px}.rank{font-size:12px;color:#555}
.warn{background:#fff6e0;border-left:4px solid #e0a400;padding:4px 10px;margin:4px 0}
.err{background:#fde8e8;border-left:4px solid #c62828;padding:4px 10px;margin:4px 0}
.verdict{background:#eef5ff;border-left:4px solid #2b6cb0;padding:6px 12px;margin:8px 0}
img{max-width:100%;height:auto;border:1px solid #eee;margin:4px 0}
.meta{color:#555;font-size:12px}code{background:#f4f4f4;padding:0 3px}
"""

SYMBOL = {"better": "▲", "worse": "▼", "tie": "≈"}


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def fmt(x: float | None, digits: int = 4) -> str:
    """A number as the page shows it (4 significant digits; "–" for none)."""
    if x is None:
        return "–"
    return f"{x:.{digits}g}"


def num(value: float | None, scene: str, method: str, metric: str, field: str, text: str | None = None,
        against: str = "") -> str:
    """One number as a tagged element (see the module docstring); ``against``: the other method of a pair."""
    return (f'<span data-scene="{esc(scene)}" data-method="{esc(method)}" data-metric="{esc(metric)}" '
            f'data-field="{field}" data-against="{esc(against)}" '
            f'data-value="{esc("" if value is None else repr(float(value)))}">'
            f"{esc(fmt(value) if text is None else text)}</span>")


def img(png: bytes, alt: str) -> str:
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _metric_header(m: dict[str, Any]) -> str:
    arrow = "↑" if m["higher_is_better"] else "↓"
    preset = f"<br><span class=meta>{esc(m['preset'])}</span>" if m.get("preset") else ""
    return f"<th>{esc(m['metric'])} {arrow}{preset}</th>"


def scores_table(scene: str, metrics: Sequence[dict[str, Any]], methods: Sequence[str]) -> str:
    """Methods × metrics: value, its interval and its rank."""
    rows = ["<table><tr><th class=name>method</th>" + "".join(_metric_header(m) for m in metrics) + "</tr>"]
    for name in methods:
        cells = []
        for m in metrics:
            e = m["methods"].get(name)
            if e is None:
                cells.append("<td>–</td>")
                continue
            ci = (f"<br><span class=ci>[{num(e['low'], scene, name, m['metric'], 'low')}, "
                  f"{num(e['high'], scene, name, m['metric'], 'high')}]</span>") if e["low"] is not None else ""
            rank = f" <span class=rank>#{num(e['rank'], scene, name, m['metric'], 'rank', str(e['rank']))}</span>"
            cells.append(f"<td>{num(e['value'], scene, name, m['metric'], 'value')}{rank}{ci}</td>")
        rows.append(f"<tr><td class=name>{esc(name)}</td>{''.join(cells)}</tr>")
    return "\n".join(rows) + "</table>"


def pairs_table(scene: str, m: dict[str, Any], methods: Sequence[str]) -> str:
    """Row A, column B: A − B (oriented so that > 0 is better), the decision, and for JOD the share of observers
    expected to prefer A."""
    names = [n for n in methods if n in m["methods"]]
    by = {(p["a"], p["b"]): p for p in m["pairs"]}
    rows = ["<table><tr><th class=name>A \\ B</th>" + "".join(f"<th>{esc(b)}</th>" for b in names) + "</tr>"]
    for a in names:
        cells = []
        for b in names:
            p = by.get((a, b))
            if p is None:
                cells.append("<td></td>")
                continue
            pref = ""
            if "prefer_a" in p:
                share = f"{p['prefer_a']:.0%}"
                shown = num(p["prefer_a"], scene, a, m["metric"], "prefer", share, b)
                pref = f"<br><span class=ci>{shown} prefer A</span>"
            cells.append(f"<td class=\"{p['decision']}\" title=\"{esc(p['why'])}\">{SYMBOL[p['decision']]} "
                         f"{num(p['delta'], scene, a, m['metric'], 'delta', against=b)}{pref}</td>")
        rows.append(f"<tr><td class=name>{esc(a)}</td>{''.join(cells)}</tr>")
    return "\n".join(rows) + "</table>"


def agreement_table(agreement: Sequence[dict[str, Any]]) -> str:
    if not agreement:
        return "<p class=meta>One metric only: nothing to compare.</p>"
    rows = ["<table><tr><th class=name>metric</th><th class=name>metric</th><th>methods</th><th>Kendall τ</th></tr>"]
    for a in agreement:
        rows.append(f"<tr><td class=name>{esc(a['a'])}</td><td class=name>{esc(a['b'])}</td><td>{a['methods']}</td>"
                    f"<td>{esc(fmt(a['tau'], 3))}</td></tr>")
    return "\n".join(rows) + "</table>"


def verdict(metric: dict[str, Any], methods: Sequence[str]) -> str:
    """The ranking in words, ties as ties, and what is sure about the last method."""
    order = sorted((n for n in methods if n in metric["methods"]),
                   key=lambda n: (metric["methods"][n]["rank"], -_oriented(metric, n)))
    if len(order) < 2:
        return ""
    ranked = " · ".join(f"{metric['methods'][n]['rank']}. {esc(n)}" for n in order)
    last = order[-1]
    pairs = [p for p in metric["pairs"] if p["b"] == last]
    above = [p for p in pairs if p["decision"] == "better"]  # the methods decisively better than the last
    if len(above) == len(pairs):
        sure = (f"<b>{esc(last)}</b> is last with {LEVEL:.0%} confidence: every other method is better"
                + (f" by more than the {metric['floor']:g} noise floor" if metric["floor"] else "") + ".")
    elif above:
        sure = (f"<b>{esc(last)}</b> is worse than {', '.join(esc(p['a']) for p in above)} with {LEVEL:.0%} "
                f"confidence; against the others the difference is not established.")
    else:
        sure = f"No method is decisively better than <b>{esc(last)}</b>: the order above may be noise."
    if metric["metric"] == "jod":
        best = max(pairs, key=lambda p: p["delta"])
        sure += (f" {best['prefer_a']:.0%} of observers would prefer {esc(best['a'])} to {esc(last)} "
                 f"(ΔJOD {best['delta']:+.2f}).")
    return f"<div class=verdict><b>{esc(metric['metric'])}</b>: {ranked}<br>{sure}</div>"


def _oriented(metric: dict[str, Any], name: str) -> float:
    v = metric["methods"][name]["value"]
    return v if metric["higher_is_better"] else -v


def notes(lines: Sequence[str], cls: str) -> str:
    return "".join(f"<div class={cls}>{esc(line)}</div>" for line in lines)


def how_to_read() -> str:
    """The page's last section: what the numbers mean (docs/report.md has the long form)."""
    return (
        "<h2>How to read this page</h2><p class=meta>"
        "<b>JOD</b> (NVS-SQA, no reference): just-objectionable differences offset by the real capture; higher is "
        "better; 1 JOD = 75 % of observers prefer the better render. Its interval resamples non-overlapping "
        "windows of the quality curve (how much the score depends on which stretch of the path was rendered); a "
        "difference also has to exceed the noise floor measured by <code>make validity</code> (what invisible "
        "changes such as a ±1 code-value shift or a high-quality re-encode move a score by). "
        "<b>Full-reference metrics</b> compare each frame with its ground truth under the named preset "
        "(docs/fullref.md); their intervals resample frames, and comparisons are paired over the frames both "
        "methods have. <b>CrossScore</b>: the mean of the SSIM map predicted from real photos of the scene. "
        f"Intervals are {LEVEL:.0%} percentile bootstrap intervals; no correction for multiple comparisons. "
        "Every number here is in report.csv (and every per-frame value in frames.csv).</p>"
    )


def document(title: str, meta: str, body: Sequence[str]) -> str:
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{esc(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{esc(title)}</h1><p class=meta>{meta}</p>\n"
            + "\n".join(body) + "\n</body></html>\n")
