"""Result files and tables: every file is written atomically and stamped with the versions that made it."""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import io
import json
import math
import os
import platform
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from consts import PROJECT_NAME, PROJECT_VERSION
from models.errors import InputError


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and rename: readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would make results unreadable to others
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def json_safe(obj: Any) -> Any:
    """``obj`` with every float NaN replaced by None, so that results files are strict JSON."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


JOD_HELP = (
    "JOD = just-objectionable differences, offset by the reference: 0 is as good as the real capture, "
    "scores are mostly negative, higher is better; compare scores within one scene."
)


def stamp(**extra: Any) -> dict[str, Any]:
    """Provenance for a results file: project version, library versions, machine, time."""
    import torch

    return {
        "project": PROJECT_NAME, "project_version": PROJECT_VERSION, "torch": torch.__version__,
        "python": platform.python_version(), "machine": f"{platform.machine()} {platform.processor()}".strip(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), **extra,
    }  # fmt: skip


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` to a temporary file, then rename (upstream's ``output_features.npz`` format)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode())


def write_json(path: Path, obj: Any) -> None:
    """Strict JSON (NaN -> null), written atomically."""
    atomic_write_json(path, json_safe(obj))


def check_writable(folder: Path) -> None:
    """Fail early (before any compute) when results cannot be written to ``folder``."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{_dt.datetime.now().timestamp()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise InputError(f"{folder}: cannot write results here ({e.strerror}); choose another --out") from None


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], floatfmt: str = ".4f", fmt: str = "simple") -> str:
    """A text table (tabulate) of ``rows`` restricted to ``columns``."""
    from tabulate import tabulate

    return tabulate([[r.get(c, "") for c in columns] for r in rows], headers=list(columns), floatfmt=floatfmt,
                    tablefmt=fmt)
