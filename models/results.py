"""Result files and tables: every file is written atomically and stamped with the versions that made it."""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import fcntl
import hashlib
import io
import json
import math
import os
import platform
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from consts import PROJECT_NAME, PROJECT_VERSION
from models.errors import InputError
from models.runtime import cpu_id, cpu_name


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
    """Strict JSON (:func:`json_text`), written atomically."""
    atomic_write_bytes(path, json_bytes(obj))


# Strict JSON has no NaN or infinity: every writer spells them as these strings and :func:`json_value` (so
# :func:`read_json`) reads them back as floats, so that a cached value round-trips. The price: a text value that is
# exactly "inf", "-inf" or "nan" also reads back as a number.
NONFINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float written as ``"inf"``, ``"-inf"`` or ``"nan"`` (:data:`NONFINITE`)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else "inf" if obj > 0 else "-inf"
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def json_value(obj: Any) -> Any:
    """The inverse of :func:`json_safe` on parsed JSON: the strings of :data:`NONFINITE` (values, not keys) as
    floats."""
    if isinstance(obj, str):
        return NONFINITE.get(obj, obj)
    if isinstance(obj, dict):
        return {k: json_value(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_value(v) for v in obj]
    return obj


def json_text(obj: Any, indent: int | None = 2, **kw: Any) -> str:
    """The one JSON encoder of every file we write: non-finite floats as strings (:func:`json_safe`) and
    ``allow_nan=False``, so that anything else non-finite (a numpy float32, say) fails loudly instead of writing
    ``NaN``/``Infinity``, which are not JSON. ``kw``: more :func:`json.dumps` options (``sort_keys``...)."""
    return json.dumps(json_safe(obj), indent=indent, allow_nan=False, **kw)


def json_parse(text: str) -> Any:
    """The one JSON decoder: :func:`json.loads`, then the non-finite strings back to floats (:func:`json_value`)."""
    return json_value(json.loads(text))


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
        "cpu": f"{cpu_name()} ({cpu_id()})", "cpus": os.cpu_count(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), **extra,
    }  # fmt: skip


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """``np.savez`` of ``arrays`` (upstream's ``output_features.npz`` format)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def npy_bytes(arr: np.ndarray) -> bytes:
    """One float32 array as the bytes of an ``.npy`` file."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(arr, np.float32))
    return buf.getvalue()


def csv_bytes(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue().encode()


def json_bytes(obj: Any) -> bytes:
    """Strict JSON (:func:`json_text`), indented, with a final newline."""
    return (json_text(obj) + "\n").encode()


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    atomic_write_bytes(path, npz_bytes(arrays))


def write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    atomic_write_bytes(path, csv_bytes(rows, columns))


def write_json(path: Path, obj: Any) -> None:
    """Strict JSON (:func:`json_text`), written atomically."""
    atomic_write_bytes(path, json_bytes(obj))


def write_report(folder: Path, stem: str, result: dict[str, Any], md: str) -> None:
    """A benchmark's two results files, each atomically: ``<stem>.json`` (strict JSON) and ``<stem>.md``; and the
    markdown on stdout."""
    write_json(Path(folder) / f"{stem}.json", result)
    atomic_write_bytes(Path(folder) / f"{stem}.md", md.encode())
    print(md)


def check_writable(folder: Path, flag: str = "--out") -> None:
    """Fail early (before any compute) when results cannot be written to ``folder`` (``flag``: the option to change)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{_dt.datetime.now().timestamp()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise InputError(f"{folder}: cannot write results here ({e.strerror}); choose another {flag}") from None


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], floatfmt: str = ".4f", fmt: str = "simple",
          text: Sequence[str] = ()) -> str:
    """A text table (tabulate) of ``rows`` restricted to ``columns``. Columns named in ``text`` print as given
    (no number parsing: a name ``1e3`` or ``007`` stays as typed)."""
    from tabulate import tabulate

    as_text = [i for i, c in enumerate(columns) if c in text] or False
    return tabulate([[r.get(c, "") for c in columns] for r in rows], headers=list(columns), floatfmt=floatfmt,
                    tablefmt=fmt, disable_numparse=as_text)


# --------------------------------------------------------------------------------------------- merging results
def check_creatable(folder: Path, flag: str = "--out") -> None:
    """Like :func:`check_writable`, but creates nothing: probes ``folder``, or its nearest existing parent when it
    does not exist yet (a temporary file, removed at once), so that a run that fails later leaves no folder."""
    probe_dir = folder.absolute()
    while not probe_dir.exists() and probe_dir != probe_dir.parent:
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise InputError(f"{folder}: {probe_dir} is a file, not a folder; choose another {flag}")
    try:
        fd, tmp = tempfile.mkstemp(dir=probe_dir, prefix=".write-test-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise InputError(f"{folder}: cannot write results here ({e.strerror}); choose another {flag}") from None


@contextlib.contextmanager
def locked(folder: Path, name: str = ".results.lock") -> Iterator[Path]:
    """An exclusive lock on ``folder`` (``fcntl.flock`` on ``folder/name``; the folder is created here) for one
    read-merge-write of its result files: concurrent runs take turns, each merging into what the other wrote."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / name, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield folder
    finally:
        os.close(fd)  # closing releases the lock


def _unreadable(path: Path, e: Exception) -> InputError:
    """One line for a results file that cannot be read: what the system said (a name too long, no permission), or
    the file's kind of damage."""
    if isinstance(e, OSError) and e.errno is not None:
        return InputError(f"{path}: cannot read it ({e.strerror}); check the path, or choose another --out")
    return InputError(f"{path}: cannot read it ({type(e).__name__}); repair or remove it, or choose another --out")


def read_json(path: Path) -> Any:
    """The JSON in ``path`` (non-finite numbers back as floats: :func:`json_parse`); None when the file does not
    exist; one-line :class:`InputError` when it is invalid."""
    try:
        return json_parse(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise _unreadable(path, e) from None


def read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file with a header (values as text); [] when the file does not exist."""
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise _unreadable(path, e) from None


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file; {} when the file does not exist."""
    if not path.exists():
        return {}
    try:
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as e:
        raise _unreadable(path, e) from None


def merge_rows(old: Iterable[dict[str, Any]], new: Sequence[dict[str, Any]], key: str = "name",
               drop: Iterable[str] = ()) -> list[dict[str, Any]]:
    """``old`` without the rows whose ``key`` is in ``new`` or ``drop``, then ``new`` (every row of a replaced key
    goes, so a key may have several rows: one per window)."""
    gone = {r[key] for r in new} | set(drop)
    return [r for r in old if r.get(key) not in gone] + list(new)
