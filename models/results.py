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
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
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
    """Strict JSON (NaN -> null), indented."""
    return (json.dumps(json_safe(obj), indent=2) + "\n").encode()


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    atomic_write_bytes(path, npz_bytes(arrays))


def write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    atomic_write_bytes(path, csv_bytes(rows, columns))


def write_json(path: Path, obj: Any) -> None:
    """Strict JSON (NaN -> null), written atomically."""
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


STAGING = ".staging"  # a results folder's journal: the files of one unit, written in full before any is replaced


class Unit:
    """Several result files replaced as one: every new file is first written in full into ``folder/.staging/``
    (a full disk fails here, and the folder is left exactly as it was); then a ``COMMIT`` marker is written and
    the files are renamed into place. A run killed between the marker and the last rename is completed by the next
    :func:`unit` on that folder, one killed before the marker is rolled back: never a mixed or orphaned set."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.staging = folder / STAGING
        self.moves: list[tuple[str, str | None]] = []  # (staged file name or None for a removal, final path)

    def write_bytes(self, path: Path, data: bytes) -> None:
        """Stage ``data`` as the new content of ``path`` (inside the folder)."""
        self.staging.mkdir(exist_ok=True)
        staged = f"{len(self.moves):04d}"
        with open(self.staging / staged, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        self.moves.append((staged, str(Path(path).relative_to(self.folder))))

    def write_json(self, path: Path, obj: Any) -> None:
        self.write_bytes(path, json_bytes(obj))

    def write_csv(self, path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
        self.write_bytes(path, csv_bytes(rows, columns))

    def write_npz(self, path: Path, arrays: dict[str, np.ndarray]) -> None:
        self.write_bytes(path, npz_bytes(arrays))

    def remove(self, path: Path) -> None:
        """Remove ``path`` (if it exists) when the unit commits."""
        self.moves.append(("", str(Path(path).relative_to(self.folder))))

    def commit(self) -> None:
        if not self.moves:
            return
        self.staging.mkdir(exist_ok=True)
        atomic_write_json(self.staging / "COMMIT", self.moves)
        _apply(self.folder)


def _apply(folder: Path) -> None:
    """Finish a committed unit (rename every staged file into place, do the removals) or roll back one that was
    not committed; then remove the staging folder."""
    staging = folder / STAGING
    marker = staging / "COMMIT"
    if marker.is_file():
        for staged, final in json.loads(marker.read_text()):
            target = folder / final
            if not staged:
                if target.is_dir():
                    shutil.rmtree(target)
                else:
                    target.unlink(missing_ok=True)
            elif (staging / staged).exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / staged, target)
    shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def unit(folder: Path) -> Iterator[Unit]:
    """Under the folder's lock: finish or roll back a unit an earlier run left, then stage this one's files and
    commit them on a normal exit (on an exception nothing is replaced and the staged files are removed)."""
    with locked(folder):
        _apply(folder)
        u = Unit(folder)
        try:
            yield u
        except BaseException:
            shutil.rmtree(u.staging, ignore_errors=True)
            raise
        u.commit()


def read_json(path: Path) -> Any:
    """The JSON in ``path``; None when the file does not exist; one-line :class:`InputError` when it is invalid."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: cannot read it ({type(e).__name__}); repair or remove it, or choose another "
                         "--out") from None


def read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file with a header (values as text); [] when the file does not exist."""
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"{path}: cannot read it ({type(e).__name__}); repair or remove it, or choose another "
                         "--out") from None


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file; {} when the file does not exist."""
    if not path.exists():
        return {}
    try:
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as e:
        raise InputError(f"{path}: cannot read it ({type(e).__name__}); repair or remove it, or choose another "
                         "--out") from None


def merge_rows(old: Iterable[dict[str, Any]], new: Sequence[dict[str, Any]], key: str = "name",
               drop: Iterable[str] = ()) -> list[dict[str, Any]]:
    """``old`` without the rows whose ``key`` is in ``new`` or ``drop``, then ``new`` (every row of a replaced key
    goes, so a key may have several rows: one per window)."""
    gone = {r[key] for r in new} | set(drop)
    return [r for r in old if r.get(key) not in gone] + list(new)
