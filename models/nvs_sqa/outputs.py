"""app.py's output files in one place: their names and columns, the check that an output folder holds results of
the same model, and the merge of a run's results into it (used by a run and by the merge of shards alike).

Everything is merged by sequence name under the folder's lock; each file is written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from consts import (
    APP_CURVES,
    APP_FEATURES,
    APP_FEATURES_META,
    APP_OUTPUTS,
    APP_SCORES_CSV,
    APP_SCORES_JSON,
    APP_WINDOWS_CSV,
)
from models import results as res
from models.errors import InputError

FEATURES, FEATURES_META = APP_FEATURES, APP_FEATURES_META
SCORES_CSV, SCORES_JSON, WINDOWS_CSV, CURVES = APP_SCORES_CSV, APP_SCORES_JSON, APP_WINDOWS_CSV, APP_CURVES
CSV_COLUMNS = ("name", "score", "frames", "width", "height", "source", "seconds", "mode", "warnings")
WINDOW_COLUMNS = ("name", "start", "end", "score")


def own_output(p: Path) -> bool:
    """A file or folder that app.py itself writes (the default out folder is the input folder)."""
    return p.name in APP_OUTPUTS and (p.name != CURVES or (p.parent / WINDOWS_CSV).is_file())


def check_same_model(out: Path, info: dict[str, Any], features_only: bool) -> None:
    """Refuse (one line) to merge into results made by another checkpoint or, for scores, another regressor."""
    checks = [(SCORES_JSON, "checkpoint_sha256"), (FEATURES_META, "checkpoint_sha256")]
    checks += [] if features_only else [(SCORES_JSON, "regressor_sha256")]
    for file, key in checks:
        meta = res.read_json(out / file)
        if isinstance(meta, dict) and meta.get(key) != info.get(key):
            raise InputError(f"{out / file}: holds results of another {key.split('_')[0]} ({key} "
                             f"{str(meta.get(key))[:12]}, this run {str(info.get(key))[:12]}); use another --out")


def _write_scores(out: Path, rows: list[dict], names: list[str], meta: dict[str, Any], features_only: bool) -> None:
    scored = [] if features_only else rows
    csv_rows = res.merge_rows(res.read_csv(out / SCORES_CSV), [{**r, "warnings": "; ".join(r["warnings"])}
                                                               for r in scored], drop=names)  # fmt: skip
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


def _write_windows(out: Path, windows: list[dict], curves: dict[str, bytes], names: list[str]) -> None:
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
        _write_scores(out, rows, names, meta, features_only)
        _write_windows(out, windows, curves, names)
    return len(set(old) - set(feats))
