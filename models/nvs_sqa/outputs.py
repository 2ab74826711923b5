"""app.py's output files in one place: their names and columns, what the folder already holds (which model,
which sequence from which source, with which settings), and the merge of results into it.

Everything is merged by sequence name under the folder's lock, and all the files of one merge are replaced as one
unit (:func:`models.journal.unit`: staged in full, then renamed; a full disk or a kill leaves the folder as it was
or completes the merge, never a mixed or orphaned set). ``output_features.json`` keeps, per name, the sequence's
source, fingerprint and settings: a rerun skips what is already scored alike, and a name is never silently
replaced by another source's results.
"""

from __future__ import annotations

from collections.abc import Callable
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
from models import journal
from models import results as res
from models.errors import InputError
from models.nvs_sqa.validity import tie_ranks

FEATURES, FEATURES_META = APP_FEATURES, APP_FEATURES_META
SCORES_CSV, SCORES_JSON, WINDOWS_CSV, CURVES = APP_SCORES_CSV, APP_SCORES_JSON, APP_WINDOWS_CSV, APP_CURVES
CSV_COLUMNS = ("name", "score", "rank", "frames", "width", "height", "source", "seconds", "mode", "warnings")
WINDOW_COLUMNS = ("name", "kind", "start", "end", "score")  # kind: "score" (the score's windows) | "curve"


def own_output(p: Path) -> bool:
    """A file or folder that app.py itself writes (the default out folder is the input folder)."""
    return p.name in APP_OUTPUTS and (p.name != CURVES or (p.parent / WINDOWS_CSV).is_file())


def curve_file(out: Path, name: str) -> Path:
    """Where the quality curve of ``name`` goes (a name may hold ``/``: scene/method)."""
    return out / CURVES / f"{name}.png"


def check_same_model(out: Path, info: dict[str, Any], features_only: bool) -> None:
    """Refuse (one line) to merge into results made by another checkpoint or, for scores, another regressor."""
    checks = [(SCORES_JSON, "checkpoint_sha256"), (FEATURES_META, "checkpoint_sha256")]
    checks += [] if features_only else [(SCORES_JSON, "regressor_sha256")]
    for file, key in checks:
        meta = res.read_json(out / file)
        if isinstance(meta, dict) and meta.get(key) != info.get(key):
            raise InputError(f"{out / file}: holds results of another {key.split('_')[0]} ({key} "
                             f"{str(meta.get(key))[:12]}, this run {str(info.get(key))[:12]}); use another --out")


def recorded(out: Path) -> dict[str, dict[str, Any]]:
    """What ``out`` holds per sequence name: {name: {"source", "fingerprint", "settings", "scored"}} (from
    output_features.json; for folders written before it kept them, the sources of scores.json's rows)."""
    meta = res.read_json(out / FEATURES_META) or {}
    seqs = dict(meta.get("sequences", {}))
    for row in (res.read_json(out / SCORES_JSON) or {}).get("rows", []):
        seqs.setdefault(row["name"], {"source": row.get("source")})
    return seqs


def check_sources(out: Path, planned: dict[str, str]) -> None:
    """Refuse (one line naming both) to put a sequence under a name that ``out`` already holds for another source
    (``planned``: name -> this run's source)."""
    held = recorded(out)
    for name, source in planned.items():
        old = held.get(name, {}).get("source")
        if old is not None and str(Path(old).absolute()) != str(Path(source).absolute()):
            raise InputError(f"{out}: {name!r} holds the results of {old}, not of {source}; score the folder above "
                             "both (names become scene/method), give --name, or use another --out")


def _scores(u: journal.Unit, out: Path, rows: list[dict], names: list[str], meta: dict[str, Any],
            features_only: bool) -> None:  # fmt: skip
    scored = [] if features_only else rows
    csv_rows = res.merge_rows(res.read_csv(out / SCORES_CSV), [{**r, "warnings": "; ".join(r["warnings"])}
                                                               for r in scored], drop=names)  # fmt: skip
    previous = res.read_json(out / SCORES_JSON) or {}
    json_rows = res.merge_rows(previous.get("rows", []), scored, drop=names)
    floor = meta.get("validity_limits", {}).get("noise_floor_jod", 0.0)
    ranks = tie_ranks({r["name"]: float(r["score"]) for r in json_rows if r.get("score") is not None}, floor)
    for r in (*csv_rows, *json_rows):
        r["rank"] = ranks.get(r["name"], "")
    if csv_rows or json_rows:
        u.write_csv(out / SCORES_CSV, csv_rows, CSV_COLUMNS)
        head = {k: v for k, v in previous.items() if k != "rows"} if features_only else \
            {**meta, "jod_help": res.JOD_HELP}  # fmt: skip
        u.write_json(out / SCORES_JSON, {**head, "rows": json_rows})
    else:
        u.remove(out / SCORES_CSV)
        u.remove(out / SCORES_JSON)


def _windows(u: journal.Unit, out: Path, windows: list[dict], curves: dict[str, bytes], names: list[str]) -> None:
    win_rows = res.merge_rows(res.read_csv(out / WINDOWS_CSV), windows, drop=names)
    if win_rows:
        u.write_csv(out / WINDOWS_CSV, win_rows, WINDOW_COLUMNS)
    else:
        u.remove(out / WINDOWS_CSV)
    for name in names:
        if name in curves:
            u.write_bytes(curve_file(out, name), curves[name])
        else:
            u.remove(curve_file(out, name))


def write_results(out: Path, rows: list[dict], feats: dict[str, np.ndarray], windows: list[dict],
                  curves: dict[str, bytes], meta: dict[str, Any], info: dict[str, Any], features_only: bool,
                  sequences: dict[str, dict[str, Any]] | None = None,
                  on_written: Callable[[], None] | None = None) -> int:  # fmt: skip
    """Merge results into ``out`` as one unit under its lock (rows replaced by name, the others kept); returns how
    many earlier sequences were kept. A name featured without a score loses its stale score, windows and curve.
    ``sequences``: per name, the source/fingerprint/settings record a rerun compares with. ``on_written``: called
    as soon as the files are in place, before a Ctrl-C or SIGTERM that came meanwhile acts (:meth:`Unit.then`)."""
    names = [r["name"] for r in rows]
    with journal.unit(out) as u:
        if on_written is not None:
            u.then(on_written)
        check_same_model(out, info, features_only)  # again: a concurrent run may have written meanwhile
        old = res.read_npz(out / FEATURES)
        u.write_npz(out / FEATURES, {**old, **feats})
        previous = (res.read_json(out / FEATURES_META) or {}).get("sequences", {})
        u.write_json(out / FEATURES_META, {**meta, "sequences": {**previous, **(sequences or {})}})
        _scores(u, out, rows, names, meta, features_only)
        _windows(u, out, windows, curves, names)
    if (out / CURVES).is_dir() and not any((out / CURVES).rglob("*.png")):
        _remove_empty(out / CURVES)
    return len(set(old) - set(feats))


def _remove_empty(folder: Path) -> None:
    for d in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
        d.rmdir()
    folder.rmdir()
