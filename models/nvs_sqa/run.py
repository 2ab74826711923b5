"""One app.py run in this process: discover the sequences, score each (one pass or windows, by the one window
rule), merge the results into the out folder under its lock, print the table.

:func:`run` returns the process exit code: 0 all scored, 1 some input could not be scored (it failed, or discovery
skipped it; the others are written), 2 nothing scored. Every check that can refuse the run (inputs, --out, the
checkpoint, results of another checkpoint in --out) comes before any compute, and the out folder is created only
when results are written, so a run that exits 2 leaves nothing behind.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from consts import CHECKPOINTS_DIR, RUNS_DIR
from models import frames
from models import results as res
from models.errors import InputError
from models.nvs_sqa import MIN_FRAME_SIZE, NVSSQA, shard
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
    own_output,
    write_results,
)
from models.nvs_sqa.validity import FrameStats, Limits, check
from models.nvs_sqa.windows import WindowedScore, plan_windows
from models.runtime import locate

log = logging.getLogger("app")
SHOWN = 60  # characters of the warnings column in the printed table


def error(fmt: str, *args: Any) -> None:
    """One ``error: ...`` line on stderr, as every script prints bad input (models.cli.main)."""
    print("error: " + (fmt % args if args else fmt), file=sys.stderr)


# --------------------------------------------------------------------------------------------- discover
def discover_inputs(inputs: list[str]) -> tuple[list[Path], list[tuple[Path, str]], list[str]]:
    """(sequence paths, what discovery passed over with why, one-line errors of inputs that failed). Discovery
    warns about what it passes over (``frames.discover_all``); app.py's own outputs are neither scored nor listed."""
    paths: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    failures: list[str] = []
    for item in inputs:
        try:
            found = frames.discover_all(Path(item))
        except InputError as e:
            failures.append(str(e))
            error("%s", e)
            continue
        paths += [p for p in found.paths if not own_output(p)]
        skipped += [(p, why) for p, why in found.skipped if not own_output(p)]
    return paths, skipped, failures


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


# --------------------------------------------------------------------------------------------- score
@dataclass
class Scored:
    """One sequence's results: its table row, its 384-d feature (the mean window representation when windowed)
    and its window scores (None with --features-only)."""

    row: dict[str, Any]
    feature: np.ndarray
    windowed: WindowedScore | None


def score_sequence(model: NVSSQA, path: Path, cfg: AppConfig, setting: int | None, lim: Limits, batch: int
                   ) -> Scored:  # fmt: skip
    """Score one sequence: the encoder once per frame, then the plan's spans (one pass or windows)."""
    t0 = time.perf_counter()
    seq = frames.open_sequence(path, MIN_FRAME_SIZE, cfg.sort)  # type: ignore[arg-type]
    stats = FrameStats()
    feats = model.frame_features(seq, batch, progress=not cfg.quiet, stats=stats)
    plan = plan_windows(len(feats), setting, cfg.stride, lim)
    reps = model.window_representations(feats, plan)
    feature = reps[0] if plan.single else reps.mean(axis=0)  # the ridge is linear: predict(mean) = mean of scores
    windowed = None if cfg.features_only else WindowedScore(seq.name, plan, model.predict(reps))
    row: dict[str, Any] = {"name": seq.name, "frames": plan.n_frames, "width": seq.width, "height": seq.height,
                           "source": seq.source, "mode": plan.mode}  # fmt: skip
    if windowed is not None:
        row["score"] = windowed.score
    reasons = []
    if plan.single and plan.n_frames > lim.max_frames:
        reasons.append(f"{plan.n_frames} frames in one pass > {lim.max_frames} (validated: up to {lim.max_frames}; "
                       "use --window auto)")
    if not plan.single and not lim.min_frames <= plan.window <= lim.max_frames:
        reasons.append(f"windows of {plan.window} frames outside the validated {lim.min_frames}-{lim.max_frames}")
    row["warnings"] = check(plan.n_frames, seq.width, seq.height, row.get("score"), stats, lim) + reasons + \
        list(seq.warnings)  # fmt: skip
    row["seconds"] = round(time.perf_counter() - t0, 2)
    return Scored(row, feature, windowed)


@dataclass
class Batch:
    """What a run scored, by the name each sequence is written under."""

    rows: list[dict] = field(default_factory=list)
    feats: dict[str, np.ndarray] = field(default_factory=dict)
    windows: list[dict] = field(default_factory=list)
    curves: dict[str, bytes] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    origin: dict[str, Path] = field(default_factory=dict)  # name -> the path scored under it (shard.json)

    def add(self, path: Path, scored: Scored) -> None:
        """Keep one sequence's results, renamed ``name-2``, ``name-3``… when its name is taken in this run."""
        row = scored.row
        base = name = row["name"]
        i = 2
        while name in self.sources:
            name, i = f"{base}-{i}", i + 1
        if name != base:
            log.warning("%s: name %r is taken by %s; written as %r", row["source"], base, self.sources[base], name)
        row["name"], self.sources[name], self.origin[name] = name, row["source"], path
        if row["warnings"]:
            log.warning("%s (%s): outside the validated range: %s", name, row["source"], "; ".join(row["warnings"]))
        w = scored.windowed
        if w is not None and not w.plan.single:
            self.windows += [{"name": name, "start": int(a), "end": int(b), "score": float(x)}
                             for a, b, x in zip(w.starts, w.ends, w.scores, strict=True)]  # fmt: skip
            self.curves[name] = quality_curve(name, w.starts, w.ends, w.scores, w.plan.n_frames, w.plan.window,
                                              w.plan.stride)  # fmt: skip
        self.rows.append(row)
        self.feats[name] = scored.feature


def score_all(model: NVSSQA, paths: list[Path], cfg: AppConfig, failures: list[str]) -> Batch:
    """Every path scored (a sequence that cannot be read is one error line, added to ``failures``)."""
    setting, lim = window_setting(cfg), Limits.load()
    batch_size = cfg.batch_size or (16 if model.device.type == "cuda" else 1)
    done = Batch()
    for path in paths:
        try:
            done.add(path, score_sequence(model, path, cfg, setting, lim, batch_size))
        except InputError as e:
            failures.append(str(e))
            error("%s (skipped)", e)
    return done


# --------------------------------------------------------------------------------------------- write, report
def run_meta(model: NVSSQA, cfg: AppConfig, failures: list[str], skipped: list[tuple[Path, str]]) -> dict[str, Any]:
    """The provenance written beside the results."""
    info = model.info
    return res.stamp(model_version=info.get("model_version"), checkpoint=info.get("path"),
                     checkpoint_sha256=info.get("checkpoint_sha256"), regressor_sha256=info.get("regressor_sha256"),
                     device=str(model.device), precision=model.precision, config=asdict(cfg),
                     validity_limits=Limits.load().to_dict(), failed=failures,
                     skipped=[{"path": str(p), "reason": why} for p, why in skipped])  # fmt: skip


def report(done: Batch, cfg: AppConfig, out: Path, kept: int) -> None:
    """The table of this run, the JOD note, and what was written where."""
    cols = ["name", "frames", "width", "height"] + ([] if cfg.features_only else ["score"])
    shown = [{**r, "warnings": (w if len(w) <= SHOWN else w[:SHOWN - 1] + "…")}
             for r in done.rows for w in ["; ".join(r["warnings"])]]  # fmt: skip
    cols += ["mode", "warnings", "seconds"]
    print(res.table(shown, cols, floatfmt=[".2f" if c == "seconds" else ".4f" for c in cols],  # type: ignore[arg-type]
                    text=("name", "mode", "warnings")))
    if not cfg.features_only:
        print(res.JOD_HELP)
    written = [FEATURES, FEATURES_META] + ([] if cfg.features_only else [SCORES_CSV, SCORES_JSON]) + \
        ([WINDOWS_CSV, f"{CURVES}/"] if done.windows else [])  # fmt: skip
    print(f"wrote {', '.join(written)} to {out}" + (f" (kept {kept} earlier sequence(s))" if kept else ""))


def run(cfg: AppConfig) -> int:
    """Score every sequence of ``cfg.inputs`` here and merge the results into the out folder; the exit code."""
    paths, skipped, failures = discover_inputs(cfg.inputs)
    order: dict[str, tuple[int, str]] = {}
    if cfg.shard:  # only this shard's sequences; an empty shard still writes its shard.json
        paths, order = shard.select(paths, cfg.inputs, cfg.shard, cfg.out)
        if not paths and not failures and cfg.out:
            shard.write_manifest(Path(cfg.out), cfg, {}, order, {})
            return 0
    out = Path(cfg.out) if cfg.out else default_out(cfg.inputs)
    if not paths:
        if not failures:
            error("%s: nothing to score (everything was skipped, see above)", ", ".join(cfg.inputs))
        return 2  # every input failed; each already said why in one line
    try:
        model = load_model(cfg, out)
    except InputError as e:
        error("%s", e)
        return 2
    done = score_all(model, paths, cfg, failures)
    if not done.rows:
        return 2  # nothing scored, nothing written; each failure was reported above
    try:
        kept = write_results(out, done.rows, done.feats, done.windows, done.curves,
                             run_meta(model, cfg, failures, skipped), model.info, cfg.features_only)  # fmt: skip
        if cfg.shard:
            shard.write_manifest(out, cfg, done.origin, order, {**model.info, "precision": model.precision})
    except InputError as e:  # another checkpoint's results appeared in --out while this run was scoring
        error("%s", e)
        return 2
    except OSError as e:  # e.g. the disk filled up: each file is whole (old or new), the set may be mixed
        error("%s: cannot write results (%s); free space or choose another --out, and run again", out,
              e.strerror or e)
        return 2
    report(done, cfg, out, kept)
    if failures or skipped:
        print(f"{len(failures) + len(skipped)} input(s) not scored; see the errors and warnings above",
              file=sys.stderr)
        return 1
    return 0
