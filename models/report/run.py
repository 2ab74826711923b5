"""report.py's run: scenes -> methods -> measured parts (cached) -> statistics -> pictures -> one report folder.

The report's files (index.html, report.csv, frames.csv, report.json, figures/) are replaced as one unit
(:func:`models.journal.unit`): an interrupted or failed run leaves the previous report whole, never a mix. The
cache (``OUT/cache/``) keeps every finished part, so the rerun does only what is left.
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
from pathlib import Path
from typing import Any

from models import cluster
from models.cli import as_flags, flags_of, to_argv
from models.errors import InputError
from models.journal import file_name, unit
from models.nvs_sqa.validity import Limits
from models.report import figures, outputs, page
from models.report.config import ReportConfig
from models.report.failures import worst_frame_metric
from models.report.measure import Models, measure
from models.report.panels import method_panels
from models.report.records import SceneSummary
from models.report.scene import Method, check_gt, group_inputs, load_scene
from models.report.series import CROSSSCORE, FULLREF, FVVDP, JOD, PARTS
from models.report.summary import scene_summary
from models.results import check_creatable, csv_bytes, json_bytes, json_safe, stamp, table

log = logging.getLogger(__name__)

FIGURES = "figures"
CACHE = "cache"
MAPS = "maps"


def parts_of(cfg: ReportConfig) -> tuple[set[str], tuple[str, ...] | None]:
    """The parts to compute and the full-reference metrics (None: the preset's) from ``--metrics``."""
    from models.fullref import protocols, scorer

    try:
        protocols.get(cfg.preset)
    except InputError as e:
        raise InputError(as_flags(str(e), {"preset": "--preset"})) from None
    if not cfg.metrics:
        parts = {JOD, FULLREF, FVVDP} | ({CROSSSCORE} if cfg.references else set())
        return parts, None
    parts = {p for p in cfg.metrics if p in (JOD, CROSSSCORE, FVVDP)}
    fr = tuple(m for m in cfg.metrics if m not in (JOD, CROSSSCORE, FVVDP))
    if CROSSSCORE in parts and not cfg.references:
        raise InputError("--metrics crossscore: needs --references (real photos of the scene from other viewpoints)")
    if fr:
        try:
            scorer.select(protocols.get(cfg.preset), fr)
        except InputError as e:
            raise InputError(as_flags(str(e), {"metrics": "--metrics", "preset": "--preset"})) from None
    return parts | ({FULLREF} if fr else set()), fr or None


def load_scenes(cfg: ReportConfig) -> tuple[list[tuple[str, list[Method]]], list[str]]:
    """Each scene's methods (SCENEs of one folder name are one scene; ``--method``s join theirs); an input that
    cannot be read is one line in the returned errors (the others go on), and so is every scene's passed-over
    entries. No usable scene at all is one InputError (its line, when there is one)."""
    from models.fullref.protocols import background_of

    flags = flags_of(ReportConfig)
    gt = Path(cfg.gt) if cfg.gt else None
    try:
        if cfg.background is not None:
            background_of(cfg.background)
        groups = group_inputs([Path(s) for s in cfg.scenes], cfg.method)
    except InputError as e:
        raise InputError(as_flags(str(e), flags)) from None
    if not groups:
        raise InputError("no SCENE and no --method: give a scene folder, or NAME=PATH per method; see --help")
    scenes, errors, passed_over = [], [], []
    for name, (inputs, named) in groups.items():
        scene = load_scene(name, inputs, gt, named)
        errors += scene.errors
        passed_over += [scene.passed_over] if scene.passed_over else []
        if scene.methods:
            scenes.append((name, scene.methods))
        elif not scene.errors:
            errors.append(f"{name}: no scene with renders to report on (a method is a folder of frames or a video)")
    if not scenes:
        if len(errors) == 1:
            raise InputError(errors[0])
        for e in errors:
            log.error("%s", e)
        raise InputError(f"{', '.join(groups)}: no scene with renders to report on; see `report.py --help`")
    if gt is not None:
        try:
            check_gt(gt, [m for _, ms in scenes for m in ms])
        except InputError as e:
            raise InputError(as_flags(str(e), flags)) from None
    for e in errors:
        log.error("%s", e)
    return scenes, errors + passed_over  # load_scene has warned about the entries it passed over


def submit_all(cfg: ReportConfig, methods: list[Method], models: Models, parts: set[str], cache: Path) -> None:
    """``--executor local|slurm``: one job per scene × method filling the cache (the report is made here after).
    A failed job is one warning; what it left undone is computed here."""
    refs = Path(cfg.references) if cfg.references else None
    res = cluster.Resources("report", cfg.slurm.time_min or 120, gpus_per_node=int(cfg.device == "cuda"),
                            cpus_per_task=cfg.slurm.cpus_per_task or None, array=len(methods))
    folder = Path(cfg.slurm.cluster_dir) if cfg.slurm.cluster_dir else Path(cfg.out) / "jobs"
    n = len(methods)
    fresh = dataclasses.replace(models, _loaded={})  # what a job gets: the settings, no loaded model
    jobs = cluster.submit(cfg.executor, folder, cfg.slurm, res, measure, methods, [fresh] * n, [parts] * n,
                          [cache] * n, [refs] * n, [cfg.redo] * n)  # fmt: skip
    print(f"submitted {n} job(s) ({cfg.executor}); logs in {folder}")
    try:
        cluster.wait(jobs, "report jobs", progress=not cfg.quiet)
    except InputError as e:
        log.warning("%s; its methods are computed here", e)


def measure_all(cfg: ReportConfig, scenes: list[tuple[str, list[Method]]], models: Models, parts: set[str],
                cache: Path) -> dict[str, dict[str, Any]]:
    from tqdm import tqdm

    methods = [m for _, ms in scenes for m in ms]
    if cfg.executor != "none":
        submit_all(cfg, methods, models, parts, cache)
    refs = Path(cfg.references) if cfg.references else None
    return {m.key: measure(m, models, parts, cache, refs, cfg.redo and cfg.executor == "none", not cfg.quiet)
            for m in tqdm(methods, desc="methods", unit="method", disable=cfg.quiet or len(methods) < 2)}


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


def build(cfg: ReportConfig, scenes: list[tuple[str, list[Method]]], measured: dict[str, dict[str, Any]],
          models: Models, errors: list[str]) -> tuple[dict[str, bytes], list[SceneSummary]]:
    """Every file of the report (relative path -> bytes) and the scenes' summaries."""
    limits = Limits.load()
    refs = Path(cfg.references) if cfg.references else None
    files: dict[str, bytes] = {}
    body, summaries, frames_rows, frame_cols, scenes_json = [], [], [], [], []
    for scene, methods in scenes:
        ms = [measured[m.key] for m in methods]
        s = scene_summary(scene, ms, limits, cfg.seed, cfg.bootstrap, cfg.worst)
        figs = scene_figures(scene, ms, s, limits)
        for key, png in figs.items():
            files[f"{FIGURES}/{file_name(scene)}-{key}.png"] = png
        best = best_by_jod(s, methods)
        panels = {m.name: method_panels(models, m, s.failures[m.name], refs, best) for m in methods}
        for name, ps in panels.items():
            for i, (_, png) in enumerate(ps):
                files[f"{FIGURES}/{file_name(scene, name)}-failure{i + 1}.png"] = png
        body.append(outputs.scene_section(s, ms, figs, panels))
        rows, cols = outputs.frame_rows(scene, ms)
        frames_rows += rows
        frame_cols += [c for c in cols if c not in frame_cols]
        summaries.append(s)
        scenes_json.append({"scene": scene, "summary": outputs.summary_dict(s), "methods": ms})
    if cfg.maps:
        files.update(map_files(scenes, models, not cfg.quiet))
    prov = provenance(cfg, models, measured)
    meta = (f"{page.esc(prov['created'])} · {page.esc(prov['project'])} {page.esc(prov['project_version'])} · "
            f"<code>{page.esc(prov['command'])}</code> · bootstrap {cfg.bootstrap}, seed {cfg.seed}")
    top = [page.notes(errors, "err")] if errors else []
    files["index.html"] = page.document("Scene report", meta, top + body + [page.how_to_read()]).encode()
    files["report.csv"] = csv_bytes(outputs.report_rows(summaries), outputs.REPORT_COLUMNS)
    files["frames.csv"] = csv_bytes(frames_rows, ["scene", "method", "frame", *frame_cols])
    files["report.json"] = json_bytes(json_safe({"provenance": prov, "errors": errors, "scenes": scenes_json}))
    return files, summaries


def map_files(scenes: list[tuple[str, list[Method]]], models: Models, progress: bool) -> dict[str, bytes]:
    """``--maps``: every paired frame's full-reference maps as float32 .npy (a pair that fails is skipped: its
    error is already in the report)."""
    from tqdm import tqdm

    from models.results import npy_bytes

    out = {}
    for scene, methods in scenes:
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


def provenance(cfg: ReportConfig, models: Models, measured: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Versions, the command, the checkpoints and presets of the cached parts, the bootstrap's settings."""
    idents = {part: m[part]["identity"] for m in measured.values() for part in PARTS if m.get(part)}
    return stamp(command="python report.py " + shlex.join(to_argv(cfg)), bootstrap=cfg.bootstrap, seed=cfg.seed,
                 limits=Limits.load().version, identities=idents,
                 inputs={m["key"]: {"path": m["path"], "fingerprint": m["fingerprint"]} for m in measured.values()})


def write(out: Path, files: dict[str, bytes]) -> None:
    """Replace the report's files as one unit, removing figures of an earlier report that are not in this one."""
    with unit(out) as u:
        for folder in (FIGURES, MAPS):
            for p in (out / folder).rglob("*") if (out / folder).is_dir() else ():
                if p.is_file() and p.relative_to(out).as_posix() not in files:
                    u.remove(p)
        for rel, data in files.items():
            u.write_bytes(out / rel, data)


def printed(summaries: list[SceneSummary]) -> str:
    """The terminal's table: per scene, metric and method the value (⚠: flagged), rank and the interval of the
    mean of its units; then each scene's top box."""
    rows = []
    for s in summaries:
        for m in s.metrics:
            for name in m.order():
                e = m.entries[name]
                ci = "" if e.estimate.low is None else f"[{page.fmt(e.estimate.low)}, {page.fmt(e.estimate.high)}]"
                rows.append({"scene": s.scene, "method": name, "metric": m.info.key,
                             "value": page.fmt(e.value) + (f" {page.FLAG_MARK}" if e.flags else ""),
                             "rank": "–" if e.rank is None else e.rank, "95% interval of the units' mean": ci})
    cols = ["scene", "metric", "method", "value", "rank", "95% interval of the units' mean"]
    text = table(rows, cols, text=["scene", "method", "value", "rank", cols[-1]])
    return text + "".join(f"\n\n{s.scene}:\n" + "\n".join(f"  {line}" for line in s.statements) for s in summaries)


def run(cfg: ReportConfig) -> int:
    """Make the report; exit code 0 (everything measured), 1 (some inputs or parts failed: the report of the rest
    is written, each failure one line in it), 2 (nothing to report)."""
    out = Path(cfg.out)
    check_creatable(out)
    for flag, folder, what in (("--gt", cfg.gt, "ground-truth frames named as the renders'"),
                               ("--references", cfg.references, "real photos of the scene")):
        if folder is not None and not Path(folder).is_dir():
            raise InputError(f"{flag} {folder}: no such folder; give the folder of {what}")
    parts, fr_metrics = parts_of(cfg)
    scenes, errors = load_scenes(cfg)
    models = Models(cfg.checkpoint, cfg.crossscore_checkpoint, cfg.preset, fr_metrics, cfg.device, cfg.background)
    measured = measure_all(cfg, scenes, models, parts, out / CACHE)
    failed = [e for m in measured.values() for e in m["errors"]]
    failed += [e for m in measured.values() for p in (FULLREF, FVVDP, CROSSSCORE) for e in (m.get(p) or {}).get(
        "errors", [])]  # fmt: skip
    if not any(m.get(p) for m in measured.values() for p in PARTS):
        raise InputError(f"{', '.join(cfg.scenes)}: no method could be measured ({failed[0] if failed else ''})")
    files, summaries = build(cfg, scenes, measured, models, errors)
    write(out, files)
    print(printed(summaries))
    print(f"report: {out / 'index.html'} (+ report.csv, frames.csv, report.json, {FIGURES}/)")
    return 1 if errors or failed else 0
