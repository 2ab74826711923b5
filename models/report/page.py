"""``index.html``: one static, self-contained page (inline CSS, images as data: URIs, no script, no server, no CDN).

Every number on the page is an element with ``data-scene``, ``data-method``, ``data-metric`` and ``data-field``
attributes and the exact value in ``data-value`` (the text shows it rounded): the tests read the page back and
check each number against report.csv.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from typing import Any

from models.report.records import Agreement, MetricSummary
from models.report.stats import LEVEL, Comparison

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
.top{background:#f3f0ff;border-left:4px solid #5a3fc0;padding:8px 12px;margin:8px 0;font-size:15px}
.flag{color:#b26a00;font-weight:700;cursor:help}
img{max-width:100%;height:auto;border:1px solid #eee;margin:4px 0}
.meta{color:#555;font-size:12px}code{background:#f4f4f4;padding:0 3px}
"""

SYMBOL = {"better": "▲", "worse": "▼", "tie": "≈"}


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


FLAG_MARK = "⚠"


def fmt(x: float | None, digits: int = 4) -> str:
    """A number as the page shows it (4 significant digits; ∞ for an infinite value; "–" for none)."""
    if x is None:
        return "–"
    if x in (math.inf, -math.inf):
        return "∞" if x > 0 else "−∞"
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


def flag(flags: Sequence[str]) -> str:
    """The mark of a value not to be trusted, its reasons on hover; "" when there are none."""
    return f' <span class=flag title="{esc("; ".join(flags))}">{FLAG_MARK}</span>' if flags else ""


def _metric_header(m: MetricSummary) -> str:
    arrow = "↑" if m.info.higher_is_better else "↓"
    preset = f"<br><span class=meta>{esc(m.info.preset)}</span>" if m.info.preset else ""
    return f"<th>{esc(m.info.key)} {arrow}{preset}</th>"


def _score_cell(scene: str, name: str, m: MetricSummary) -> str:
    e = m.entries.get(name)
    if e is None:
        return "<td>–</td>"
    key = m.info.key
    rank = (f"#{num(e.rank, scene, name, key, 'rank', str(e.rank))}" if e.rank is not None else
            f'<span title="{esc(e.unranked_why)}">{num(None, scene, name, key, "rank", "–")}</span>')
    est = e.estimate
    ci = (f"<br><span class=ci>mean {num(est.mean, scene, name, key, 'mean')} [{num(est.low, scene, name, key, 'low')}"
          f", {num(est.high, scene, name, key, 'high')}] of {est.units} {m.info.unit}</span>") if est.low is not None \
        else ""
    left = "".join(f"<br><span class=ci>{num(n, scene, name, key, 'excluded', str(n))} {m.info.unit} left out: "
                   f"{esc(why)}</span>" for why, n in e.excluded.items())  # fmt: skip
    return f"<td>{num(e.value, scene, name, key, 'value')}{flag(e.flags)} <span class=rank>{rank}</span>{ci}{left}</td>"


def scores_table(scene: str, metrics: Sequence[MetricSummary], methods: Sequence[str]) -> str:
    """Methods × metrics: value (flagged where it is not to be trusted), rank, the interval of its units' mean."""
    rows = ["<table><tr><th class=name>method</th>" + "".join(_metric_header(m) for m in metrics) + "</tr>"]
    for name in methods:
        rows.append(f"<tr><td class=name>{esc(name)}</td>{''.join(_score_cell(scene, name, m) for m in metrics)}</tr>")
    return "\n".join(rows) + "</table>"


def _pair_cell(scene: str, m: MetricSummary, c: Comparison) -> str:
    pref = ""
    share = m.prefer(c)
    if share is not None:
        shown = num(share, scene, c.a, m.info.key, "prefer", f"{share:.0%}", c.b)
        pref = f"<br><span class=ci>{shown} prefer A</span>"
    ci = "" if c.low is None else (f"<br><span class=ci>[{num(c.low, scene, c.a, m.info.key, 'delta_low', against=c.b)}"
                                   f", {num(c.high, scene, c.a, m.info.key, 'delta_high', against=c.b)}]</span>")
    return (f"<td class=\"{c.decision}\" title=\"{esc(c.why)}\">{SYMBOL[c.decision]} "
            f"{num(c.delta, scene, c.a, m.info.key, 'delta', against=c.b)}{ci}{pref}</td>")


def pairs_table(scene: str, m: MetricSummary, methods: Sequence[str]) -> str:
    """Row A, column B: the mean difference A − B over their shared units (> 0: A better), the decision with its
    reason on hover, and for JOD-unit metrics the share of observers expected to prefer A."""
    names = [n for n in methods if n in m.entries]
    head = "".join(f"<th>{esc(b)}{flag(m.entries[b].flags)}</th>" for b in names)
    rows = [f"<table><tr><th class=name>A \\ B</th>{head}</tr>"]
    for a in names:
        cells = "".join("<td></td>" if a == b else _pair_cell(scene, m, m.pairs[(a, b)]) for b in names)
        rows.append(f"<tr><td class=name>{esc(a)}{flag(m.entries[a].flags)}</td>{cells}</tr>")
    return "\n".join(rows) + "</table>"


def agreement_table(agreement: Sequence[Agreement]) -> str:
    if not agreement:
        return "<p class=meta>One metric only: nothing to compare.</p>"
    rows = ["<table><tr><th class=name>metric</th><th class=name>metric</th><th>methods</th><th>Kendall τ</th>"
            "<th>pairs both decided: same way</th><th>opposite way</th></tr>"]
    for a in agreement:
        rows.append(f"<tr><td class=name>{esc(a.a)}</td><td class=name>{esc(a.b)}</td><td>{a.methods}</td>"
                    f"<td>{esc(fmt(a.tau, 3))}</td><td>{a.same}</td><td>{a.opposite}</td></tr>")
    return "\n".join(rows) + "</table>"


def verdict(m: MetricSummary) -> str:
    """The ranking of one metric in words: ties as ties, unranked methods apart with the reason, and what is sure
    about the last ranked method."""
    order = [n for n in m.order() if m.entries[n].rank is not None]
    unranked = [n for n in m.entries if m.entries[n].rank is None]
    if len(m.entries) < 2:
        return ""
    ranked = " · ".join(f"{m.entries[n].rank}. {esc(n)}{flag(m.entries[n].flags)}" for n in order) or "none"
    out = f"<div class=verdict><b>{esc(m.info.label)}</b>: {ranked}"
    if unranked:
        why = {n: m.entries[n].unranked_why.removeprefix("not ranked: ") for n in unranked}
        out += "<br>Not ranked: " + "; ".join(f"{esc(n)}{flag(m.entries[n].flags)} ({esc(why[n])})" for n in unranked)
    if len(order) >= 2:
        out += "<br>" + _about_last(m, order)
    return out + "</div>"


def _about_last(m: MetricSummary, order: Sequence[str]) -> str:
    last = order[-1]
    pairs = [m.pairs[(o, last)] for o in order[:-1]]
    above = [c for c in pairs if c.decision == "better"]
    floor = f" by more than the {m.info.floor:g} noise floor" if m.info.floor else ""
    if len(above) == len(pairs):
        sure = f"<b>{esc(last)}</b> is last with {LEVEL:.0%} confidence: every other ranked method is better{floor}."
    elif above:
        sure = (f"<b>{esc(last)}</b> is worse than {', '.join(esc(c.a) for c in above)} with {LEVEL:.0%} "
                "confidence; against the others the difference is not established.")
    else:
        return f"No method is decisively better than <b>{esc(last)}</b>: the order above may be noise."
    shares = [(m.prefer(c), c) for c in above if m.prefer(c) is not None]
    if shares:
        share, c = max(shares, key=lambda t: t[0])
        sure += f" {share:.0%} of observers would prefer {esc(c.a)} to {esc(last)} (Δ {c.delta:+.2f} JOD)."
    return sure


def top_box(statements: Sequence[str]) -> str:
    """The scene's top box: what the ranking rests on, the best, what is flagged, whether the metrics agree."""
    return "<div class=top>" + "<br>".join(esc(s) for s in statements) + "</div>" if statements else ""


def notes(lines: Sequence[str], cls: str) -> str:
    return "".join(f"<div class={cls}>{esc(line)}</div>" for line in lines)


def how_to_read() -> str:
    """The page's last section: what the numbers mean (docs/report.md has the long form)."""
    return (
        "<h2>How to read this page</h2><p class=meta>"
        "<b>JOD</b> (NVS-SQA, no reference): just-objectionable differences offset by the real capture; higher is "
        "better; 1 JOD = 75 % of observers prefer the better render. The value is the sequence's score; comparisons "
        "use short disjoint windows of the path (about ten per render), paired between methods; a difference must "
        "also reach the noise floor measured by <code>make validity</code>. NVS-SQA scores Gaussian noise higher "
        f"the stronger it is and does not see JPEG artefacts: a score past the measured limits is flagged "
        f"{FLAG_MARK} and neither compared nor ranked, and a difference in favour of the noisier or blockier render "
        "must exceed what that alone can add (measured against FovVideoVDP). "
        "<b>Full-reference metrics</b> compare each frame with its ground truth under the named preset "
        "(docs/fullref.md): the value is the preset's mean, infinite where a frame is an exact copy (as the tools "
        "report it); comparisons are paired over the frames both methods have. <b>FovVideoVDP</b>: a "
        "reference-based JOD, per window. <b>CrossScore</b>: the mean of the SSIM map predicted from real photos "
        f"of the scene. Intervals are {LEVEL:.0%} expanded percentile bootstrap intervals; fewer than 6 units decide "
        "nothing; no correction for multiple comparisons. Every number here is in report.csv (and every per-frame "
        "value in frames.csv).</p>"
    )


def document(title: str, meta: str, body: Sequence[str]) -> str:
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{esc(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{esc(title)}</h1><p class=meta>{meta}</p>\n"
            + "\n".join(body) + "\n</body></html>\n")
