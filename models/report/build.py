"""This run's scenes as the pieces of a report: per scene its summary, curves, failure panels, maps, page section,
report.csv and frames.csv rows and provenance (:class:`models.report.folder.Kept`); and the terminal's table."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.cli import to_argv
from models.errors import InputError
from models.journal import file_name
from models.nvs_sqa.validity import Limits
from models.report import figures, outputs, page
from models.report.config import ReportConfig
from models.report.failures import worst_frame_metric
from models.report.folder import FIGURES, MAPS, Kept
from models.report.measure import Models
from models.report.panels import method_panels
from models.report.records import SceneSummary
from models.report.scene import Method
from models.report.series import CROSSSCORE, FULLREF, JOD, PARTS
from models.report.summary import scene_summary
from models.results import stamp, table


@dataclass
class Built:
    """This run's scenes as kept pieces, their figures and maps (relative path -> bytes), summaries, provenance."""

    provenance: dict[str, Any]
    scenes: list[Kept] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    summaries: list[SceneSummary] = field(default_factory=list)


def scene_figures(scene: str, measured: list[dict[str, Any]], summary: SceneSummary,
                  limits: Limits) -> dict[str, bytes]:
    """The scene's curves: NVS-SQA along the path (flagged scores marked), the full-reference metric that picks
    worst frames, CrossScore."""
    out = {}
    curves = {m["name"]: m[JOD]["curve"] for m in measured if (m.get(JOD) or {}).get("curve")}
    if curves:
        worst = {name: f.windows for name, f in summary.failures.items()}
        out["curves"] = figures.curves_png(scene, curves, worst, limits.curve_noise_floor_jod,
                                           outputs.flagged_names(summary))
    frs = [m for m in measured if (m.get(FULLREF) or {}).get("rows")]
    if frs:
        higher = frs[0][FULLREF]["higher_is_better"]
        key = worst_frame_metric(list(higher))
        out[key] = figures.frames_png(scene, key, higher[key],
                                      {m["name"]: [r[key] for r in m[FULLREF]["rows"]] for m in frs})
    css = [m for m in measured if (m.get(CROSSSCORE) or {}).get("scores")]
    if css:
        out[CROSSSCORE] = figures.frames_png(scene, CROSSSCORE, True, {m["name"]: m[CROSSSCORE]["scores"]
                                                                        for m in css})
    return out


def map_files(scene: str, methods: list[Method], models: Models, progress: bool) -> dict[str, bytes]:
    """``--maps``: every paired frame's full-reference maps as float32 .npy (a pair that fails is skipped: its
    error is already in the report)."""
    from tqdm import tqdm

    from models.results import npy_bytes

    out = {}
    for m in methods:
        pairs = [(f, m.gt[f.name]) for f in m.frames if f.name in m.gt]
        for render, gt in tqdm(pairs, desc=f"{m.name}: maps", unit="img", disable=not progress):
            try:
                maps = models.fullref().maps(render, gt)
            except InputError:
                continue
            for key, arr in maps.items():
                out[f"{MAPS}/{file_name(scene)}/{file_name(m.name)}/{render.stem}-{key}.npy"] = npy_bytes(arr)
    return out


def best_by_jod(summary: SceneSummary, methods: list[Method]) -> Method | None:
    """The first-ranked method on JOD (its score not flagged): its frame is shown beside another method's failing
    frame when there is no ground truth to show."""
    jod = summary.metric(JOD)
    order = [n for n in jod.order() if jod.entries[n].rank is not None] if jod else []
    return next((m for m in methods if m.name == order[0]), None) if order else None


def inputs_of(measured: list[dict[str, Any]]) -> dict[str, Any]:
    """The provenance of measured methods: the checkpoints and presets of their parts, each input's fingerprint."""
    return {"identities": {part: m[part]["identity"] for m in measured for part in PARTS if m.get(part)},
            "inputs": {m["key"]: {"path": m["path"], "fingerprint": m["fingerprint"]} for m in measured}}


def provenance(cfg: ReportConfig, measured: list[dict[str, Any]]) -> dict[str, Any]:
    """Versions, the command, the bootstrap's settings, and :func:`inputs_of` the measured methods."""
    return stamp(command="python report.py " + shlex.join(to_argv(cfg)), bootstrap=cfg.bootstrap, seed=cfg.seed,
                 limits=Limits.load().version, **inputs_of(measured))


def build_scene(cfg: ReportConfig, scene: str, methods: list[Method], measured: list[dict[str, Any]],
                models: Models, built: Built, errors: list[str]) -> None:
    """One scene's summary, figures, panels (and maps) and kept pieces, added to ``built``."""
    limits = Limits.load()
    refs = Path(cfg.references) if cfg.references else None
    s = scene_summary(scene, measured, limits, cfg.seed, cfg.bootstrap, cfg.worst)
    figs = scene_figures(scene, measured, s, limits)
    files = {f"{FIGURES}/{file_name(scene)}-{key}.png": png for key, png in figs.items()}
    best = best_by_jod(s, methods)
    panels = {m.name: method_panels(models, m, s.failures[m.name], refs, best) for m in methods}
    for name, ps in panels.items():
        files.update({f"{FIGURES}/{file_name(scene, name)}-failure{i + 1}.png": png for i, (_, png) in enumerate(ps)})
    if cfg.maps:
        files.update(map_files(scene, methods, models, not cfg.quiet))
    rows, cols = outputs.frame_rows(scene, measured)
    built.scenes.append(Kept(
        scene, {**built.provenance, **inputs_of(measured)}, errors, outputs.summary_dict(s), measured,
        outputs.scene_section(s, measured, figs, panels), outputs.report_rows([s]), rows, cols, sorted(files)))
    built.files.update(files)
    built.summaries.append(s)


def build(cfg: ReportConfig, scenes: list[tuple[str, list[Method]]], measured: dict[str, dict[str, Any]],
          models: Models, notes: dict[str, list[str]]) -> Built:
    """This run's scenes as kept pieces. ``notes``: per input name its error lines; a scene keeps its own, and
    those of inputs that gave no scene are kept with every scene of this run."""
    built = Built(provenance(cfg, list(measured.values())))
    orphans = [e for name, lines in notes.items() if name not in dict(scenes) for e in lines]
    for scene, methods in scenes:
        build_scene(cfg, scene, methods, [measured[m.key] for m in methods], models, built,
                    notes.get(scene, []) + orphans)
    return built


def printed(summaries: list[SceneSummary]) -> str:
    """The terminal's table: per scene, metric and method the value (⚠: flagged), rank and the interval of the
    mean of its units; then each scene's top box."""
    rows = []
    for s in summaries:
        for m in s.metrics:
            for name in m.order():
                e = m.entries[name]
                est = e.estimate
                ci = "" if est.low is None else (f"{page.fmt(est.mean)} [{page.fmt(est.low)}, {page.fmt(est.high)}] "
                                                 f"of {est.units} {m.info.unit}")
                rows.append({"scene": s.scene, "method": name, "metric": m.info.key,
                             "value": page.fmt(e.value) + (f" {page.FLAG_MARK}" if e.flags else ""),
                             "rank": "–" if e.rank is None else e.rank, "units: mean [95% interval]": ci})
    cols = ["scene", "metric", "method", "value", "rank", "units: mean [95% interval]"]
    text = table(rows, cols, text=["scene", "method", "value", "rank", cols[-1]])
    return text + "".join(f"\n\n{s.scene}:\n" + "\n".join(f"  {line}" for line in s.statements) for s in summaries)
