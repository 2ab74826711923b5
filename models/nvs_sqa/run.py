"""The run behind app.py: its options, the scoring of each sequence (one pass or windows) with its validity
warnings, and the merge of the results into ``--out`` under a lock.

:func:`run` returns the process exit code: 0 all scored, 1 some input could not be scored (it failed, or discovery
skipped it; the others are written), 2 nothing scored. Every check that can refuse the run (inputs, --out, the
checkpoint, results of another checkpoint in --out) comes before any compute, and the out folder is created only
when results are written, so a run that exits 2 leaves nothing behind.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from consts import CHECKPOINTS_DIR, EXAMPLES_DIR, RUNS_DIR
from models import frames
from models import results as res
from models.cli import opt
from models.cluster import EXECUTORS, GROUP, SLURM_HELP, SlurmOptions
from models.errors import InputError
from models.frames import OWN_OUTPUTS
from models.runtime import DEVICES, locate

log = logging.getLogger("app")
FEATURES, FEATURES_META = "output_features.npz", "output_features.json"
SCORES_CSV, SCORES_JSON, WINDOWS_CSV, CURVES = "scores.csv", "scores.json", "windows.csv", "curves"
CSV_COLUMNS = ("name", "score", "frames", "width", "height", "source", "seconds", "mode", "warnings")
WINDOW_COLUMNS = ("name", "start", "end", "score")
SHOWN = 60  # characters of the warnings column in the printed table


@dataclass
class AppConfig:
    """Options of one scoring run (all flags of app.py)."""

    inputs: list[str] = opt([str(EXAMPLES_DIR)], "a folder of frames, a folder of such folders, or a video "
                            "(default: examples/)", positional=True, metavar="INPUT")
    out: str | None = opt(None, "output folder; results already there are kept and merged by name (default: the "
                          "input folder; with several inputs, the current one)")
    checkpoint: str | None = opt(None, "checkpoint folder with config.json + model.pth: a path, else a name under "
                                     "checkpoints/ or runs/ (default: released v0.0.1)")
    device: str = opt("auto", "auto (cuda if present) | cpu | cuda", choices=DEVICES)
    batch_size: int = opt(0, "frames per network call (0 = auto: 1 on CPU, one call in flight per core, measured "
                          "fastest; 16 on CUDA)", min=0)
    precision: str = opt("exact", "exact: float32 | mixed: bfloat16 trunk, float32 input conv and low-level "
                         "branches (within 1e-4 of exact) | bf16 | fp16 (CUDA); mixed and bf16 need native bfloat16 "
                         "(AVX512_BF16/AMX, or CUDA), else exact with a warning (docs/scoring.md)",
                         choices=("exact", "mixed", "bf16", "fp16"))  # = precision.PRECISIONS (no torch import here)
    window: str = opt("auto", "auto: one pass up to the validated length (as upstream), windows of the validated "
                      "size beyond it | 0: always one pass | N: windows of N frames; the score is the mean of the "
                      "window scores", metavar="auto|0|N")
    stride: int = opt(0, "frames between window starts (0 = default: the validated stride with --window auto, N/2 "
                      "with --window N)", min=0)
    features_only: bool = opt(False, "write features only, no JOD scores (checkpoints without regressor.json)")
    sort: str = opt("natural", "frame order within a folder: natural (frame2 before frame10) | plain (upstream's "
                    "sorted())", choices=("natural", "plain"))
    quiet: bool = opt(False, "no progress bars or info messages, the table and warnings only")
    # sharding and clusters (models/nvs_sqa/shard.py, docs/cluster.md)
    shard: str | None = opt(None, "score only shard I of N (a deterministic 1/N of the sequences) into --out; "
                            "merge the shards with --merge", metavar="I/N", group=GROUP)
    merge: list[str] | None = opt(None, "OUT_DIR SHARD_DIR…: merge shard folders into the files one unsharded run "
                                  "writes (a missing or duplicated shard is an error)", metavar="DIR", group=GROUP)
    executor: str = opt("none", "none: score here | local, slurm: --shards N jobs through submitit, then merged "
                        "into --out", choices=("none", *EXECUTORS), group=GROUP)
    shards: int = opt(0, "with --executor: the number of shard jobs", min=0, group=GROUP)
    slurm: SlurmOptions = opt(SlurmOptions(), SLURM_HELP)


def error(fmt: str, *args: Any) -> None:
    """One ``error: ...`` line on stderr, as every script prints bad input (models.cli.main)."""
    print("error: " + (fmt % args if args else fmt), file=sys.stderr)


def window_setting(cfg: AppConfig) -> int | None:
    """``--window`` as a number of frames (None = auto, 0 = one pass); one-line :class:`InputError` when unusable."""
    from models.nvs_sqa.validity import Limits

    w = None if cfg.window == "auto" else int(cfg.window) if cfg.window.isdigit() else -1
    if w is not None and w < 0:
        raise InputError(f"--window {cfg.window}: use auto, 0 (one pass) or a number of frames >= 1")
    if w == 0 and cfg.stride:
        raise InputError(f"--stride {cfg.stride}: strides are for windows; drop it, or use --window auto or N")
    span = Limits.load().window if w is None else w
    if cfg.stride > span:
        raise InputError(f"--stride {cfg.stride} > the window of {span} frames would leave frames unscored; use a "
                         "smaller stride")
    return w


def default_out(inputs: list[str]) -> Path:
    if len(inputs) == 1:
        p = Path(inputs[0])
        return p if p.is_dir() else p.parent
    return Path.cwd()


def own_output(p: Path) -> bool:
    """A file or folder that app.py itself writes (the default out folder is the input folder)."""
    return p.name in OWN_OUTPUTS and (p.name != CURVES or (p.parent / WINDOWS_CSV).is_file())


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


def check_same_model(out: Path, info: dict[str, Any], features_only: bool) -> None:
    """Refuse (one line) to merge into results made by another checkpoint or, for scores, another regressor."""
    checks = [(SCORES_JSON, "checkpoint_sha256"), (FEATURES_META, "checkpoint_sha256")]
    checks += [] if features_only else [(SCORES_JSON, "regressor_sha256")]
    for file, key in checks:
        meta = res.read_json(out / file)
        if isinstance(meta, dict) and meta.get(key) != info.get(key):
            raise InputError(f"{out / file}: holds results of another {key.split('_')[0]} ({key} "
                             f"{str(meta.get(key))[:12]}, this run {str(info.get(key))[:12]}); use another --out")


def score_sequence(model: Any, path: Path, cfg: AppConfig, setting: int | None, lim: Any, batch: int
                   ) -> tuple[Any, dict[str, Any], np.ndarray, tuple | None]:
    """(sequence, row, 384-d feature, (starts, ends, window scores, window, stride) or None for one pass)."""
    from models.nvs_sqa import MIN_FRAME_SIZE
    from models.nvs_sqa.scorer import plan_windows
    from models.nvs_sqa.validity import FrameStats, check

    t0 = time.perf_counter()
    seq = frames.open_sequence(path, MIN_FRAME_SIZE, cfg.sort)  # type: ignore[arg-type]
    stats = FrameStats()
    feats = model.frame_features(seq, batch, progress=not cfg.quiet, stats=stats)  # the encoder runs once a frame
    n = len(feats)
    w, s = plan_windows(n, setting, cfg.stride, lim)
    row: dict[str, Any] = {"name": seq.name, "frames": n, "width": seq.width, "height": seq.height,
                           "source": seq.source}
    spans, score, reasons = None, None, []
    if w:
        starts, ends, reps = model.window_representations(feats, w, s)  # representations kept for the npz
        feature = reps.mean(axis=0)  # the ridge is linear: predict(feature) = the mean window score (float32)
        row["mode"] = f"windows {w}/{s} ×{len(starts)}"
        if not cfg.features_only:
            wscores = model.predict(reps)
            spans, score = (starts, ends, wscores, w, s), float(wscores.mean())
        if n > w and not lim.min_frames <= w <= lim.max_frames:
            reasons.append(f"windows of {w} frames outside the validated {lim.min_frames}-{lim.max_frames}")
    else:
        feature = model.aggregate(feats)
        row["mode"] = "single"
        score = None if cfg.features_only else float(model.predict(feature)[0])
        if n > lim.max_frames:
            reasons.append(f"{n} frames in one pass > {lim.max_frames} (validated: up to {lim.max_frames}; use "
                           "--window auto)")
    if score is not None:
        row["score"] = score
    row["warnings"] = check(n, seq.width, seq.height, score, stats, lim) + reasons + list(seq.warnings)
    row["seconds"] = round(time.perf_counter() - t0, 2)
    return seq, row, feature, spans


def write_results(out: Path, rows: list[dict], feats: dict[str, np.ndarray], windows: list[dict],
                  curves: dict[str, bytes], meta: dict[str, Any], info: dict[str, Any], features_only: bool) -> int:
    """Merge this run into ``out`` under its lock (rows replaced by name, the others kept); returns how many earlier
    sequences were kept. A name featured without a score loses its stale score, window rows and curve."""
    names = [r["name"] for r in rows]
    with res.locked(out):
        check_same_model(out, info, features_only)  # again: a concurrent run may have written meanwhile
        old = res.read_npz(out / FEATURES)
        res.write_npz(out / FEATURES, {**old, **feats})
        res.write_json(out / FEATURES_META, meta)
        scored = [] if features_only else rows
        csv_rows = res.merge_rows(res.read_csv(out / SCORES_CSV), [{**r, "warnings": "; ".join(r["warnings"])}
                                                           for r in scored], drop=names)
        previous = res.read_json(out / SCORES_JSON) or {}
        json_rows = res.merge_rows(previous.get("rows", []), scored, drop=names)
        if csv_rows or json_rows:
            res.write_csv(out / SCORES_CSV, csv_rows, CSV_COLUMNS)
            head = {k: v for k, v in previous.items() if k != "rows"} if features_only else \
                {**meta, "jod_help": res.JOD_HELP}  # fmt: skip
            res.write_json(out / SCORES_JSON, {**head, "rows": json_rows})
        else:
            (out / SCORES_CSV).unlink(missing_ok=True)
            (out / SCORES_JSON).unlink(missing_ok=True)
        win_rows = res.merge_rows(res.read_csv(out / WINDOWS_CSV), windows, drop=names)
        if win_rows:
            res.write_csv(out / WINDOWS_CSV, win_rows, WINDOW_COLUMNS)
        else:
            (out / WINDOWS_CSV).unlink(missing_ok=True)
        for name in names:
            if name in curves:
                res.atomic_write_bytes(out / CURVES / f"{name}.png", curves[name])
            else:
                (out / CURVES / f"{name}.png").unlink(missing_ok=True)
        if (out / CURVES).is_dir() and not any((out / CURVES).iterdir()):
            (out / CURVES).rmdir()
    return len(set(old) - set(feats))


def run(cfg: AppConfig) -> int:
    """Score every sequence of ``cfg.inputs`` and merge the results into the out folder; returns the exit code."""
    from models.nvs_sqa import NVSSQA, shard
    from models.nvs_sqa.figures import quality_curve
    from models.nvs_sqa.validity import Limits

    if cfg.merge or cfg.executor != "none":  # --merge OUT SHARD…, or N shard jobs then their merge
        files = {"features": FEATURES, "meta": FEATURES_META, "scores": SCORES_JSON, "windows": WINDOWS_CSV,
                 "curves": CURVES}  # fmt: skip
        if cfg.merge:
            return shard.merge(Path(cfg.merge[0]), [Path(d) for d in cfg.merge[1:]], write_results, files)
        return shard.submit(cfg, Path(cfg.out) if cfg.out else default_out(cfg.inputs), run, write_results, files)
    setting = window_setting(cfg)
    paths, skipped, failures = discover_inputs(cfg.inputs)
    origin: dict[str, Path] = {}  # name -> the sequence scored under it (a shard's shard.json lists them)
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
        res.check_creatable(out)
        ckpt = locate(cfg.checkpoint, CHECKPOINTS_DIR, RUNS_DIR, what="--checkpoint") if cfg.checkpoint else None
        model = NVSSQA.from_checkpoint(ckpt, cfg.device, precision=cfg.precision)
        if model.regressor is None and not cfg.features_only:
            model.predict([])  # raises the one-line "no regressor" error
        check_same_model(out, model.info, cfg.features_only)
    except InputError as e:
        error("%s", e)
        return 2
    if (out / FEATURES).is_file() and not (out / FEATURES_META).is_file() and not (out / SCORES_JSON).is_file():
        log.warning("%s: no record of the checkpoint that made it; this run's features are merged into it",
                    out / FEATURES)
    batch = cfg.batch_size or (16 if model.device.type == "cuda" else 1)
    lim = Limits.load()

    rows, feats, windows, curves, sources = [], {}, [], {}, {}
    for path in paths:
        try:
            seq, row, feature, spans = score_sequence(model, path, cfg, setting, lim, batch)
        except InputError as e:
            failures.append(str(e))
            error("%s (skipped)", e)
            continue
        name, i = seq.name, 2
        while name in sources:
            name, i = f"{seq.name}-{i}", i + 1
        if name != seq.name:
            log.warning("%s: name %r is taken by %s; written as %r", seq.source, seq.name, sources[seq.name], name)
        row["name"], sources[name] = name, seq.source
        origin[name] = path
        if row["warnings"]:
            log.warning("%s (%s): outside the validated range: %s", name, seq.source, "; ".join(row["warnings"]))
        if spans is not None:
            starts, ends, wscores, w, s = spans
            windows += [{"name": name, "start": int(a), "end": int(b), "score": float(x)}
                        for a, b, x in zip(starts, ends, wscores, strict=True)]
            curves[name] = quality_curve(name, starts, ends, wscores, row["frames"], w, s)
        rows.append(row)
        feats[name] = feature
    if not rows:
        return 2  # nothing scored, nothing written; each failure was reported above
    info = model.info
    meta = res.stamp(model_version=info.get("model_version"), checkpoint=info.get("path"),
                     checkpoint_sha256=info.get("checkpoint_sha256"), regressor_sha256=info.get("regressor_sha256"),
                     device=str(model.device), precision=model.precision,
                     config=asdict(cfg), validity_limits=lim.to_dict(), failed=failures,
                     skipped=[{"path": str(p), "reason": why} for p, why in skipped])
    try:
        kept = write_results(out, rows, feats, windows, curves, meta, info, cfg.features_only)
        if cfg.shard:
            shard.write_manifest(out, cfg, origin, order, {**info, "precision": model.precision})
    except InputError as e:  # another checkpoint's results appeared in --out while this run was scoring
        error("%s", e)
        return 2
    except OSError as e:  # e.g. the disk filled up: each file is whole (old or new), the set may be mixed
        error("%s: cannot write results (%s); free space or choose another --out, and run again", out,
                  e.strerror or e)
        return 2

    cols = ["name", "frames", "width", "height"] + ([] if cfg.features_only else ["score"])
    shown = [{**r, "warnings": (w if len(w) <= SHOWN else w[:SHOWN - 1] + "…")}
             for r in rows for w in ["; ".join(r["warnings"])]]
    cols += ["mode", "warnings", "seconds"]
    print(res.table(shown, cols, floatfmt=[".2f" if c == "seconds" else ".4f" for c in cols],  # type: ignore[arg-type]
                    text=("name", "mode", "warnings")))
    if not cfg.features_only:
        print(res.JOD_HELP)
    written = [FEATURES, FEATURES_META] + ([] if cfg.features_only else [SCORES_CSV, SCORES_JSON]) + \
        ([WINDOWS_CSV, f"{CURVES}/"] if windows else [])  # fmt: skip
    print(f"wrote {', '.join(written)} to {out}" + (f" (kept {kept} earlier sequence(s))" if kept else ""))
    if failures or skipped:
        print(f"{len(failures) + len(skipped)} input(s) not scored; see the errors and warnings above",
              file=sys.stderr)
        return 1
    return 0
