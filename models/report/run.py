"""report.py's run: scenes -> methods -> measured parts (cached) -> statistics -> pictures -> the report folder.

The report's files are merged into ``OUT/`` as one unit (:mod:`models.report.folder`): the scenes earlier runs
reported there stay on the page, a scene reported again is replaced; an interrupted or failed run leaves the
previous report whole, never a mix. The cache (``OUT/cache/``) keeps every finished part, so the rerun does only
what is left.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from models import cluster
from models.cli import as_flags, flags_of
from models.errors import InputError
from models.report import folder
from models.report.build import build, printed
from models.report.config import ReportConfig
from models.report.measure import Models, measure
from models.report.scene import Method, check_gt, group_inputs, load_scene
from models.report.series import CROSSSCORE, FULLREF, FVVDP, JOD, PARTS
from models.results import check_creatable

log = logging.getLogger(__name__)

CACHE = "cache"


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


def load_scenes(cfg: ReportConfig) -> tuple[list[tuple[str, list[Method]]], dict[str, list[str]]]:
    """Each scene's methods (SCENEs of one folder name are one scene; ``--method``s join theirs) and, per scene
    name, its lines: an input that cannot be read (the others go on), the entries passed over. No usable scene at
    all is one InputError (its line, when there is one)."""
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
    scenes, errors, notes = [], [], {}
    for name, (inputs, named) in groups.items():
        scene = load_scene(name, inputs, gt, named)
        lines = list(scene.errors)
        if scene.methods:
            scenes.append((name, scene.methods))
        elif not lines:
            lines.append(f"{name}: no scene with renders to report on (a method is a folder of frames or a video)")
        errors += lines
        notes[name] = lines + ([scene.passed_over] if scene.passed_over else [])  # load_scene warned about these
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
    return scenes, notes


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


def run(cfg: ReportConfig) -> int:
    """Make the report; exit code 0 (everything measured), 1 (some inputs or parts failed: the report of the rest
    is written, each failure one line in it), 2 (nothing to report)."""
    out = Path(cfg.out)
    check_creatable(out)
    for flag, path, what in (("--gt", cfg.gt, "ground-truth frames named as the renders'"),
                             ("--references", cfg.references, "real photos of the scene")):
        if path is not None and not Path(path).is_dir():
            raise InputError(f"{flag} {path}: no such folder; give the folder of {what}")
    parts, fr_metrics = parts_of(cfg)
    scenes, notes = load_scenes(cfg)
    models = Models(cfg.checkpoint, cfg.crossscore_checkpoint, cfg.preset, fr_metrics, cfg.device, cfg.background)
    measured = measure_all(cfg, scenes, models, parts, out / CACHE)
    failed = [e for m in measured.values() for e in m["errors"]]
    failed += [e for m in measured.values() for p in (FULLREF, FVVDP, CROSSSCORE) for e in (m.get(p) or {}).get(
        "errors", [])]  # fmt: skip
    if not any(m.get(p) for m in measured.values() for p in PARTS):
        raise InputError(f"{', '.join(cfg.scenes)}: no method could be measured ({failed[0] if failed else ''})")
    built = build(cfg, scenes, measured, models, notes)
    kept = folder.write(out, built.scenes, built.files, built.provenance, cfg.only)
    print(printed(built.summaries))
    also = f"; the page also holds {len(kept)} earlier scene(s): {', '.join(kept)}" if kept else ""
    print(f"report: {out / 'index.html'} (+ report.csv, frames.csv, report.json, {folder.FIGURES}/){also}")
    return 1 if any(notes.values()) or failed else 0
