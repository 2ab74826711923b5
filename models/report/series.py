"""Every metric of a scene's methods as typed records, read once from the measured parts (the cache's JSON is the
edge; from here to the page numbers travel as :class:`MetricData` / :class:`Series`).

A series is one method's values of one metric per *unit* — a frame (full-reference metrics, CrossScore) or a
window of the camera path (NVS-SQA, FovVideoVDP) — with the units left out and why, and the headline value made
by the metric's own reduction: the preset's mean of per-frame values for the full-reference metrics
(:meth:`models.fullref.protocols.Protocol.reduce`, the one :meth:`FullReference.mean` uses: an exact copy's
infinite PSNR stays infinite), the sequence's own score for NVS-SQA, the mean of the windows for FovVideoVDP, the
mean of the frames for CrossScore.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from models.nvs_sqa.validity import Limits

JOD, FULLREF, CROSSSCORE, FVVDP = "jod", "fullref", "crossscore", "fvvdp"
PARTS = (JOD, FULLREF, FVVDP, CROSSSCORE)
NO_REFERENCE, FULL_REFERENCE, PHOTOS = "no reference", "full reference", "reference photos"
JOD_UNITS = (JOD, FVVDP)  # metrics in JOD: their differences read as shares of observers


@dataclass(frozen=True)
class MetricInfo:
    """What a metric is: its key (report.csv's ``metric``), family, direction, units, the smallest difference that
    counts, the preset it was computed under and how its headline value is made."""

    key: str
    label: str
    family: str
    higher_is_better: bool
    unit: str  # "frames" | "windows"
    floor: float = 0.0
    preset: str | None = None
    reduction: str = ""


@dataclass(frozen=True)
class Series:
    """One method's values of one metric: per unit (frame or window name) as measured (an exact copy's PSNR is
    +inf), the units left out (why -> how many), the headline value, why it may not be trusted (``flags``) and,
    for NVS-SQA, the frame statistics of its blind spots (``blind``: noise_sigma, blockiness)."""

    method: str
    values: dict[str, float]
    value: float
    excluded: dict[str, int] = field(default_factory=dict)
    flags: tuple[str, ...] = ()
    blind: dict[str, float] = field(default_factory=dict)


@dataclass
class MetricData:
    """One metric as the methods of a scene have it (method -> series, in the scene's order)."""

    info: MetricInfo
    series: dict[str, Series] = field(default_factory=dict)


def window_names(starts: Sequence[int], ends: Sequence[int]) -> list[str]:
    """A window's unit name: ``start-end`` (frames, end exclusive), the same for every method of a scene."""
    return [f"{s}-{e}" for s, e in zip(starts, ends, strict=True)]


def jod_series(m: dict[str, Any]) -> Series | None:
    """NVS-SQA: the sequence's score; units: its disjoint unit windows; flags: the validity warnings."""
    j = m.get(JOD)
    if not j or j.get("score") is None:
        return None
    u = j.get("units") or {"starts": [], "ends": [], "scores": []}
    values = dict(zip(window_names(u["starts"], u["ends"]), map(float, u["scores"]), strict=True))
    blind = {k: float(j[k]) for k in ("noise_sigma", "blockiness") if j.get(k) is not None}
    return Series(m["name"], values, float(j["score"]), flags=tuple(j.get("warnings", ())), blind=blind)


def fullref_series(m: dict[str, Any]) -> dict[str, Series]:
    """The preset's metrics: every paired frame's value; frames without ground truth or not scored are counted."""
    from models.fullref.protocols import get

    fr = m.get(FULLREF)
    if not fr or not fr.get("rows"):
        return {}
    protocol = get(fr["preset"])
    excluded = {}
    if fr.get("unmatched"):
        excluded["no ground truth"] = len(fr["unmatched"])
    failed = int(fr.get("n_paired", len(fr["rows"]))) - len(fr["rows"])
    if failed > 0:
        excluded["could not be scored"] = failed
    out = {}
    for key in fr["higher_is_better"]:
        values = {r["frame"]: float(r[key]) for r in fr["rows"]}
        reduced = protocol.reduce(list(values.values()))
        ex = dict(excluded)
        if reduced.undefined:
            ex["undefined value"] = len(reduced.undefined)
        out[key] = Series(m["name"], {k: v for k, v in values.items() if not math.isnan(v)}, reduced.value, ex)
    return out


def windows_series(m: dict[str, Any], part: str) -> Series | None:
    """FovVideoVDP: one JOD per window; the headline is their mean."""
    p = m.get(part)
    if not p or not p.get("scores"):
        return None
    values = dict(zip(window_names(p["starts"], p["ends"]), map(float, p["scores"]), strict=True))
    ex = {"not scored": len(p["errors"])} if p.get("errors") else {}
    return Series(m["name"], values, sum(values.values()) / len(values), ex)


def crossscore_series(m: dict[str, Any]) -> Series | None:
    """CrossScore: the mean of the predicted SSIM map per frame; the headline is their mean."""
    cs = m.get(CROSSSCORE)
    if not cs or not cs.get("scores"):
        return None
    values = dict(zip(cs["frames"], map(float, cs["scores"]), strict=True))
    ex = {"not scored": len(cs["errors"])} if cs.get("errors") else {}
    flags = (cs["warning"],) if cs.get("warning") else ()
    return Series(m["name"], values, sum(values.values()) / len(values), ex, flags)


def metric_data(methods: Sequence[dict[str, Any]], limits: Limits) -> list[MetricData]:
    """The metrics the measured ``methods`` of one scene have, each with every method's series, in the order
    NVS-SQA, the preset's metrics, FovVideoVDP, CrossScore."""
    out: dict[str, MetricData] = {}

    def add(info: MetricInfo, s: Series | None) -> None:
        if s is not None:
            out.setdefault(info.key, MetricData(info)).series[s.method] = s

    for m in methods:
        add(MetricInfo(JOD, "NVS-SQA (JOD)", NO_REFERENCE, True, "windows", limits.noise_floor_jod,
                       reduction="the sequence's NVS-SQA score"), jod_series(m))
        fr = m.get(FULLREF) or {}
        for key, s in fullref_series(m).items():
            add(MetricInfo(key, key, FULL_REFERENCE, fr["higher_is_better"][key], "frames", preset=fr["preset"],
                           reduction="mean of per-frame values (the preset's)"), s)
        add(MetricInfo(FVVDP, "FovVideoVDP (JOD)", FULL_REFERENCE, True, "windows",
                       reduction="mean of per-window FovVideoVDP JODs"), windows_series(m, FVVDP))
        add(MetricInfo(CROSSSCORE, "CrossScore", PHOTOS, True, "frames", reduction="mean of per-frame mean SSIM maps"),
            crossscore_series(m))
    order = {JOD: 0, FVVDP: 2, CROSSSCORE: 3}
    return sorted(out.values(), key=lambda d: order.get(d.info.key, 1))
