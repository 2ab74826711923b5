"""One app.py run in this process: discover the sequences and name them, skip what --out already holds, score the
rest one by one — each merged into --out as soon as it is scored — and print the table.

:func:`run` returns the process exit code: 0 all scored (or already there), 1 some input could not be scored (it
failed, or discovery skipped it; the others are written), 2 nothing scored. Every check that can refuse the run
(inputs, names, --out, the checkpoint, results of another checkpoint or another source under a name) comes before
any compute, and the out folder is created only when results are written. An interrupt (Ctrl-C, SIGTERM) keeps
every sequence finished so far, and says how many; the next run scores the rest.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from consts import CHECKPOINTS_DIR, RUNS_DIR
from models import cli
from models import results as res
from models.discovery import Found, discover_all, fingerprint, name_inputs
from models.errors import InputError
from models.nvs_sqa import NVSSQA, shard
from models.nvs_sqa.app_config import AppConfig, default_out, window_setting
from models.nvs_sqa.figures import quality_curve
from models.nvs_sqa.outputs import (
    CURVES,
    FEATURES,
    FEATURES_META,
    SCORES_CSV,
    SCORES_JSON,
    WINDOWS_CSV,
    check_same_model,
    check_sources,
    own_output,
    recorded,
    write_results,
)
from models.nvs_sqa.scorer import Assessment
from models.nvs_sqa.validity import Limits
from models.runtime import locate

log = logging.getLogger("app")
SHOWN = 60  # characters of the warnings column in the printed table
FLAGS = cli.flags_of(AppConfig)


def error(fmt: str, *args: Any) -> None:
    """One ``error: ...`` line on stderr (library errors in app.py's flags), as every script prints bad input."""
    print("error: " + cli.as_flags(fmt % args if args else fmt, FLAGS), file=sys.stderr)


# --------------------------------------------------------------------------------------------- discover
def discover_inputs(inputs: list[str], name: str | None = None
                    ) -> tuple[list[Found], list[tuple[Path, str]], list[str]]:  # fmt: skip
    """(the renders, named; what discovery passed over with why; one-line errors of inputs that failed). Names
    are unique across the inputs (models.discovery.name_inputs); ``name`` renames a run's only sequence."""
    found: list[tuple[str, Found]] = []
    skipped: list[tuple[Path, str]] = []
    failures: list[str] = []
    for item in inputs:
        try:
            d = discover_all(Path(item))
        except InputError as e:
            failures.append(str(e))
            error("%s", e)
            continue
        found += [(item, f) for f in d.found if f.role == "render" and not own_output(f.path)]
        gt = [str(f.path) for f in d.found if f.role == "gt"]
        if gt:
            log.info("%s: passed over %d ground-truth folder(s) beside the renders: %s", item, len(gt), ", ".join(gt))
        skipped += [(p, why) for p, why in d.skipped if not own_output(p)]
    renders = name_inputs(found)
    if name is not None:
        if len(renders) != 1:
            raise InputError(f"--name {name}: names one sequence, but the inputs hold {len(renders)}; give one "
                             "sequence, or no --name")
        renders = [Found(renders[0].path, name)]
    return renders, skipped, failures


# --------------------------------------------------------------------------------------------- plan
def settings_of(cfg: AppConfig, precision: str) -> dict[str, Any]:
    """What makes two results of one sequence and one checkpoint the same result."""
    return {"window": cfg.window, "stride": cfg.stride, "sort": cfg.sort, "precision": precision,
            "scored": not cfg.features_only}  # fmt: skip


def already_done(out: Path, todo: list[Found], settings: dict[str, Any]) -> tuple[list[Found], list[Found]]:
    """(to score, already in ``out`` from the same source and content with the same settings: skipped). A
    features-only run is satisfied by scored results of the same settings."""
    held = recorded(out)
    rest, done = [], []
    for f in todo:
        rec = held.get(f.name, {})
        same = rec.get("source") == str(f.path) and rec.get("fingerprint") == fingerprint(f.path)
        want = dict(settings)
        have = dict(rec.get("settings") or {})
        if not want["scored"]:
            want.pop("scored"), have.pop("scored", None)
        (done if same and have == want else rest).append(f)
    return rest, done


def load_model(cfg: AppConfig, out: Path) -> NVSSQA:
    """The scorer of ``cfg``, checked against what ``out`` already holds (one-line InputError otherwise)."""
    res.check_creatable(out)
    ckpt = locate(cfg.checkpoint, CHECKPOINTS_DIR, RUNS_DIR, what="--checkpoint") if cfg.checkpoint else None
    model = NVSSQA.from_checkpoint(ckpt, cfg.device, precision=cfg.precision)
    if model.regressor is None and not cfg.features_only:
        raise InputError(f"{model.info.get('path', 'checkpoint')}: has no regressor.json, so no JOD score; use "
                         "--features-only, or fit one with evaluate.py --save-regressor")
    check_same_model(out, model.info, cfg.features_only)
    if (out / FEATURES).is_file() and not (out / FEATURES_META).is_file() and not (out / SCORES_JSON).is_file():
        log.warning("%s: no record of the checkpoint that made it; this run's features are merged into it",
                    out / FEATURES)
    return model


# --------------------------------------------------------------------------------------------- score, write
def results_of(a: Assessment, name: str, lim: Limits, seconds: float) -> dict[str, Any]:
    """One sequence's results as ``write_results`` takes them: its row, feature, windows and curve."""
    row = {"name": name, "frames": a.n_frames, "width": a.width, "height": a.height, "source": a.source,
           "mode": a.mode, "warnings": a.warnings, "seconds": round(seconds, 2)}  # fmt: skip
    if a.score is not None:
        row["score"] = a.score
    windows, curves = [], {}
    for kind, w in (("score", a.windowed), ("curve", a.curve)):
        if w is not None and not w.plan.single:
            windows += [{"name": name, "kind": kind, "start": int(s), "end": int(e), "score": float(x)}
                        for s, e, x in zip(w.starts, w.ends, w.scores, strict=True)]  # fmt: skip
    shown = a.curve if a.curve is not None else a.windowed if a.windowed and not a.windowed.plan.single else None
    if shown is not None:
        floor = lim.curve_noise_floor_jod if shown is a.curve else lim.noise_floor_jod
        curves[name] = quality_curve(name, shown.starts, shown.ends, shown.scores, a.n_frames, shown.plan.window,
                                     shown.plan.stride, floor)  # fmt: skip
    return {"rows": [row], "feats": {name: a.feature}, "windows": windows, "curves": curves}


@dataclass
class Progress:
    """What this run has done so far (an interrupt reports it)."""

    rows: list[dict] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    before: set[str] = field(default_factory=set)  # the names --out held before this run, not in this run
    windows: bool = False

    def add(self, results: dict[str, Any]) -> None:
        """Count one sequence's results as written (called as they are put in place: an interrupt counts them)."""
        self.rows += results["rows"]
        self.windows |= bool(results["windows"])

    @property
    def kept(self) -> int:
        return len(self.before - {r["name"] for r in self.rows})


def score_all(model: NVSSQA, todo: list[Found], cfg: AppConfig, out: Path, meta: dict[str, Any],
              progress: Progress) -> None:  # fmt: skip
    """Score each sequence and merge it into ``out`` at once (a sequence that cannot be read is one error line)."""
    setting, lim = window_setting(cfg), Limits.load()
    batch_size = cfg.batch_size or (16 if model.device.type == "cuda" else 1)
    settings = settings_of(cfg, model.precision)
    for f in todo:
        t0 = time.perf_counter()
        try:
            a = model.assess(f.path, setting if setting is not None else "auto", cfg.stride, batch_size,
                             progress=not cfg.quiet, sort=cfg.sort, features_only=cfg.features_only, limits=lim)  # type: ignore[arg-type]
        except InputError as e:
            progress.failures.append(str(e))
            error("%s (skipped)", e)
            continue
        if a.warnings:
            log.warning("%s (%s): outside the validated range: %s", f.name, a.source, "; ".join(a.warnings))
        r = results_of(a, f.name, lim, time.perf_counter() - t0)
        record = {f.name: {"source": str(f.path), "fingerprint": fingerprint(f.path), "settings": settings}}
        write_results(out, r["rows"], r["feats"], r["windows"], r["curves"], {**meta, "failed": progress.failures},
                      model.info, cfg.features_only, record, on_written=lambda r=r: progress.add(r))


# --------------------------------------------------------------------------------------------- report
def run_meta(model: NVSSQA, cfg: AppConfig, skipped: list[tuple[Path, str]]) -> dict[str, Any]:
    """The provenance written beside the results."""
    info = model.info
    return res.stamp(model_version=info.get("model_version"), checkpoint=info.get("path"),
                     checkpoint_sha256=info.get("checkpoint_sha256"), regressor_sha256=info.get("regressor_sha256"),
                     device=str(model.device), precision=model.precision, config=asdict(cfg),
                     validity_limits=Limits.load().to_dict(),
                     skipped=[{"path": str(p), "reason": why} for p, why in skipped])  # fmt: skip


def report(done: Progress, cfg: AppConfig, out: Path, already: int) -> None:
    """The table of this run (ranks within each scene from the whole folder, ties under the noise floor marked
    ``=``), the JOD note, and what was written where."""
    ranks = {r["name"]: r.get("rank", "") for r in (res.read_json(out / SCORES_JSON) or {}).get("rows", [])}
    cols = ["name", "frames", "width", "height"] + ([] if cfg.features_only else ["score", "rank"])
    shown = [{**r, "rank": ranks.get(r["name"], ""), "warnings": (w if len(w) <= SHOWN else w[:SHOWN - 1] + "…")}
             for r in done.rows for w in ["; ".join(r["warnings"])]]  # fmt: skip
    cols += ["mode", "warnings", "seconds"]
    if shown:
        print(res.table(shown, cols, floatfmt=[".2f" if c == "seconds" else ".4f" for c in cols],  # type: ignore[arg-type]
                        text=("name", "rank", "mode", "warnings")))
    if not cfg.features_only and shown:
        print(f"{res.JOD_HELP} Differences under {Limits.load().noise_floor_jod:g} JOD are within the noise "
              "floor (docs/validity.md): same rank, marked =.")
    written = [FEATURES, FEATURES_META] + ([] if cfg.features_only else [SCORES_CSV, SCORES_JSON]) + \
        ([WINDOWS_CSV, f"{CURVES}/"] if done.windows else [])  # fmt: skip
    notes = [f"kept {done.kept} earlier sequence(s)"] * bool(done.kept) + \
        [f"{already} already scored alike, skipped (--redo scores them again)"] * bool(already)  # fmt: skip
    print(f"wrote {', '.join(written)} to {out}" + (f" ({'; '.join(notes)})" if notes else "") if done.rows else
          f"nothing new to score in {out}" + (f" ({'; '.join(notes)})" if notes else ""))


# --------------------------------------------------------------------------------------------- the run
def prepare(cfg: AppConfig) -> tuple[list[Found], list[tuple[Path, str]], list[str], dict, Path]:
    """Discovery, this shard's share, the out folder and the refusal of names held by another source."""
    todo, skipped, failures = discover_inputs(cfg.inputs, cfg.name)
    order: dict[str, tuple[int, str]] = {}
    if cfg.shard:
        paths, order = shard.select([f.path for f in todo], cfg.inputs, cfg.shard, cfg.out)
        todo = [f for f in todo if f.path in set(paths)]
    out = Path(cfg.out) if cfg.out else default_out(cfg.inputs)
    check_sources(out, {f.name: str(f.path) for f in todo})
    return todo, skipped, failures, order, out


def run(cfg: AppConfig) -> int:
    """Score every sequence of ``cfg.inputs`` here, each merged into the out folder as it is done; the exit code."""
    try:
        todo, skipped, failures, order, out = prepare(cfg)
    except InputError as e:
        error("%s", e)
        return 2
    if not todo and not cfg.shard:
        if not failures:
            error("%s: nothing to score (everything was skipped, see above)", ", ".join(cfg.inputs))
        return 2  # every input failed; each already said why in one line
    try:
        model = load_model(cfg, out)
    except InputError as e:
        error("%s", e)
        return 2
    todo, done_before = already_done(out, todo, settings_of(cfg, model.precision)) if not cfg.redo else (todo, [])
    progress = Progress(failures=failures, before=set(res.read_npz(out / FEATURES)) - {f.name for f in done_before})
    try:
        score_all(model, todo, cfg, out, run_meta(model, cfg, skipped), progress)
    except KeyboardInterrupt:
        print(f"interrupted after {len(progress.rows)} of {len(todo)} sequence(s): their results are in {out}; "
              "run the same command again to score the rest", file=sys.stderr)
        raise
    except InputError as e:  # another checkpoint's results appeared in --out while this run was scoring
        error("%s", e)
        return 2
    except OSError as e:  # e.g. a full disk: the folder holds every sequence written before, whole
        error("%s: cannot write results (%s); free space or choose another --out, and run again (what was written "
              "stays)", out, e.strerror or e)
        return 2
    if cfg.shard and cfg.out:
        scored = {r["name"] for r in progress.rows}
        origin = {f.name: f.path for f in [*todo, *done_before] if f.name in scored or f in done_before}
        shard.write_manifest(out, cfg, origin, order, {**model.info, "precision": model.precision})
    if not progress.rows and not done_before and todo:
        return 2  # nothing scored, nothing written; each failure was reported above
    report(progress, cfg, out, len(done_before))
    if progress.failures or skipped:
        print(f"{len(progress.failures) + len(skipped)} input(s) not scored; see the errors and warnings above",
              file=sys.stderr)
        return 1
    return 0
