"""Output folders that cannot be wedged: several result files replaced as one unit, and the names they may have.

A unit keeps its journal in ``folder/.staging/`` and goes through four steps:

1. **staging** (the folder's files are untouched): each new file is written in full and fsync'd as
   ``.staging/NNNN``. Every final path is checked as it is staged: inside the folder, each name within the file
   system's limit (``PC_NAME_MAX``) and the whole path within ``PC_PATH_MAX``, no parent that is a file, no
   file of the unit that is another one's folder, no two files of the unit on one name (also ignoring case where
   the file system folds case). Then missing parent folders are made and every file that will be replaced is
   kept as ``.staging/old-NNNN`` (a hard link; a copy where links are refused). A failure here removes what was
   staged: the folder is as it was.
2. **the point of no return**: ``.staging/COMMIT`` (the list of moves) is written and fsync'd.
3. **applying**: each staged file is renamed over its final path; a removal moves the old file to
   ``.staging/old-NNNN``. A rename that fails puts back what the renames before it replaced (from the kept old
   files): the folder is as it was, and the error is raised, naming the final path.
4. the staging folder is removed.

Ctrl-C and SIGTERM (when handled in Python: ``cli.stop_on_sigterm``) are held from step 1's end to step 4's and
act once the unit is in place (:meth:`Unit.then`: what the caller counts as written is counted before they act). A
run killed otherwise during step 3 leaves the marker: the next :func:`unit` on the folder finishes it. A replay that
fails is undone the same way and its journal is set aside as ``.staging-failed-<time>`` (one warning line names
it), so no later run trips over it: the run goes on from the folder as it was before that unit. A journal
without the marker (a run killed before step 2) is removed.

:func:`file_name` is the one way a file name is made from user data (scene and method names).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import InputError
from models.results import csv_bytes, json_bytes, json_text, locked, npz_bytes
from models.runtime import interrupts_held

log = logging.getLogger(__name__)

STAGING = ".staging"  # a results folder's journal: the files of one unit, written in full before any is replaced
FAILED = ".staging-failed-"  # a journal that could not be replayed, set aside under this prefix + the time
MARKER = "COMMIT"
FILE_NAME_MAX = 80  # characters of a :func:`file_name` (ASCII: as many bytes), far below every file system's limit
_HASH_CHARS = 10


def file_name(*parts: str) -> str:
    """A file name made of user data (``parts``: e.g. a scene and a method name): a readable slug of the parts
    joined by ``-`` (only ``[A-Za-z0-9._-]``, never a leading dot) and ``-`` + the first 10 hex digits of the
    sha256 of the exact parts. At most :data:`FILE_NAME_MAX` characters; the same parts give the same name on
    every run and machine; different parts give different names (``file_name("a/b") != file_name("a_b")``,
    ``file_name("A") != file_name("a")``, ``file_name("a-b", "c") != file_name("a", "b-c")``)."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(parts)).strip("._-") or "x"
    digest = hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]
    return f"{readable[: FILE_NAME_MAX - _HASH_CHARS - 1]}-{digest}"


def _limits(folder: Path) -> tuple[int, int]:
    """(longest name in bytes, longest path in bytes) on the file system of ``folder``."""
    out = []
    for key, fallback in (("PC_NAME_MAX", 255), ("PC_PATH_MAX", 4096)):
        try:
            out.append(int(os.pathconf(folder, key)))
        except (OSError, ValueError):
            out.append(fallback)
    return out[0], out[1]


def _as_error(e: OSError, path: Path | str) -> OSError:
    """``e`` naming ``path`` (the file the user knows), its kind (ENOSPC, EACCES …) kept."""
    return OSError(e.errno, e.strerror or str(e), str(path))


def _fsync_dir(folder: Path) -> None:
    """Make a folder's renames durable; file systems that cannot sync a folder are skipped."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            log.warning("%s: cannot sync the folder (%s); its files are in place", folder, e.strerror)
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


class Unit:
    """Several result files of ``folder`` replaced as one (see the module docstring): stage them with the
    ``write_*`` methods and :meth:`remove`, then :meth:`commit`. Use it through :func:`unit`, which holds the
    folder's lock and finishes or sets aside what an earlier run left."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.staging = self.folder / STAGING
        self.moves: list[tuple[str, str]] = []  # (staged file name, or "" for a removal; final path, relative)
        self._finals: set[str] = set()  # the final paths, relative
        self._folded: set[str] = set()  # the same, case-folded
        self._dirs: set[str] = set()  # the parent folders of the finals, relative
        self._made: list[Path] = []  # parent folders this unit created (removed again if it does not commit)
        self._then: list[Callable[[], None]] = []  # called when the files are in place (:meth:`then`)
        self._limits = _limits(self.folder) if self.folder.is_dir() else (255, 4096)

    # ----------------------------------------------------------------------------------------- staging
    def write_bytes(self, path: Path, data: bytes) -> None:
        """Stage ``data`` as the new content of ``path`` (inside the folder)."""
        rel = self._check(Path(path), removal=False)
        staged = f"{len(self.moves):04d}"
        try:
            self.staging.mkdir(exist_ok=True)
            _write_synced(self.staging / staged, data)
        except OSError as e:
            raise _as_error(e, path) from e
        self._add(staged, rel)

    def write_json(self, path: Path, obj: Any) -> None:
        self.write_bytes(path, json_bytes(obj))

    def write_csv(self, path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
        self.write_bytes(path, csv_bytes(rows, columns))

    def write_npz(self, path: Path, arrays: dict[str, np.ndarray]) -> None:
        self.write_bytes(path, npz_bytes(arrays))

    def remove(self, path: Path) -> None:
        """Remove ``path`` (a file or a folder, if it exists) when the unit commits."""
        self._add("", self._check(Path(path), removal=True))

    def _add(self, staged: str, rel: str) -> None:
        self.moves.append((staged, rel))
        self._finals.add(rel)
        self._folded.add(rel.casefold())
        self._dirs.update(p.as_posix() for p in Path(rel).parents if p != Path("."))

    # ----------------------------------------------------------------------------------------- checks
    def _check(self, path: Path, removal: bool) -> str:
        """``path`` relative to the folder, once it is known that the unit can put it in place: the checks of the
        module docstring, each failure one :class:`InputError` naming the path and what to do."""
        full = Path(os.path.normpath(os.path.abspath(path)))
        root = Path(os.path.normpath(os.path.abspath(self.folder)))
        if full == root or root not in full.parents:
            raise InputError(f"{path}: outside the results folder {self.folder}; results are written inside it")
        rel = full.relative_to(root)
        if rel.parts[0] == STAGING or rel.parts[0].startswith(FAILED):
            raise InputError(f"{path}: the results folder's journal; not a name a result file may have")
        name_max, path_max = self._limits
        too_long = next((p for p in rel.parts if len(os.fsencode(p)) > name_max), None)
        if too_long is not None:
            raise InputError(f"{path}: a name of {len(os.fsencode(too_long))} bytes ({too_long[:40]}…), longer than "
                             f"this file system allows ({name_max}); shorten the names it is made of")
        if len(os.fsencode(str(full))) >= path_max:
            raise InputError(f"{path}: a path longer than this file system allows ({path_max} bytes); choose a "
                             "shorter results folder or shorter names")
        key = rel.as_posix()
        self._check_parents(path, root, rel, removal)
        if key in self._finals or (key.casefold() in self._folded and self._folds_case()):
            raise InputError(f"{path}: two files of one result set would be written to this name; give the inputs "
                             "names that differ by more than case or punctuation")
        if key in self._dirs or any(p.as_posix() in self._finals for p in rel.parents):
            raise InputError(f"{path}: one result file would be another one's folder; rename one of the inputs")
        return key

    def _check_parents(self, path: Path, root: Path, rel: Path, removal: bool) -> None:
        cur = root
        for part in rel.parts[:-1]:
            cur = cur / part
            if cur.exists() and not cur.is_dir():
                raise InputError(f"{path}: {cur} is a file, not a folder; move it away or choose another results "
                                 "folder")
        if not removal and (root / rel).is_dir() and not (root / rel).is_symlink():
            raise InputError(f"{path}: is a folder, where a result file goes; move it away or choose another "
                             "results folder")

    def _folds_case(self) -> bool:
        """Whether the folder's file system ignores case (a probe file in the journal, made only when two names
        of the unit differ by case alone)."""
        self.staging.mkdir(exist_ok=True)
        probe = self.staging / "case-Probe"
        probe.touch()
        try:
            return (self.staging / "CASE-pROBE").exists()
        finally:
            probe.unlink()

    # ----------------------------------------------------------------------------------------- commit
    def commit(self) -> None:
        """Put every staged file in place and do the removals, as one (module docstring, steps 1-4)."""
        with interrupts_held():  # Ctrl-C or SIGTERM now would leave the folder half replaced until the next run
            if self.moves:
                self._commit()
            else:
                self.discard()
            for fn in self._then:
                fn()

    def then(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` once the unit's files are in place, before a Ctrl-C or SIGTERM that came during the commit acts:
        e.g. the caller's count of what it has written, which an interrupt then reports truly."""
        self._then.append(fn)

    def _commit(self) -> None:
        try:
            self._prepare()
            _write_marker(self.staging, self.moves)
        except BaseException:
            self.discard()
            raise
        try:
            _apply(self.folder, self.moves)
        except OSError as e:
            failed = _put_back(self.folder, self.moves)
            if failed is None:
                self.discard()  # the folder as it was before this unit
            else:
                set_aside(self.folder, f"{e.filename}: {e.strerror}; {failed}", whole=False)
            raise
        shutil.rmtree(self.staging, ignore_errors=True)

    def _prepare(self) -> None:
        """Before the point of no return: the final paths' folders, and a kept copy of every file replaced."""
        for i, (staged, rel) in enumerate(self.moves):
            target = self.folder / rel
            if not staged:
                continue
            for parent in reversed([p for p in target.parents if self.folder in p.parents or p == self.folder]):
                if not parent.exists():
                    try:
                        parent.mkdir()
                    except OSError as e:
                        raise _as_error(e, parent) from e
                    self._made.append(parent)
            if target.exists():
                _keep(target, self.staging / f"old-{i:04d}")

    def discard(self) -> None:
        """Remove what this unit staged and the folders it made: the folder as it was."""
        shutil.rmtree(self.staging, ignore_errors=True)
        for d in reversed(self._made):
            with contextlib.suppress(OSError):
                d.rmdir()
        self._made = []


def _keep(target: Path, backup: Path) -> None:
    """``backup``: the current content of ``target`` (a hard link; a copy where the file system refuses links)."""
    try:
        os.link(target, backup)
    except OSError:
        try:
            shutil.copy2(target, backup)
        except OSError as e:
            raise _as_error(e, target) from e


def _write_marker(staging: Path, moves: list[tuple[str, str]]) -> None:
    """The point of no return: the list of moves, written whole (a temporary name, fsync, rename, folder fsync)."""
    tmp = staging / f"{MARKER}.tmp"
    try:
        staging.mkdir(exist_ok=True)  # a unit of removals only has staged nothing
        _write_synced(tmp, json_text(moves, indent=None).encode())
        os.replace(tmp, staging / MARKER)
    except OSError as e:
        raise _as_error(e, staging.parent) from e
    _fsync_dir(staging)


# --------------------------------------------------------------------------------------------- applying
def _apply(folder: Path, moves: Sequence[Sequence[str]]) -> None:
    """Step 3: every move not done yet (a staged file still in the journal, a file still to remove)."""
    staging = folder / STAGING
    for i, (staged, rel) in enumerate(moves):
        target = folder / rel
        try:
            if staged:
                if (staging / staged).exists():
                    os.replace(staging / staged, target)
            elif os.path.lexists(target):
                os.replace(target, staging / f"old-{i:04d}")
        except OSError as e:
            raise _as_error(e, target) from e


def _undo(folder: Path, moves: Sequence[Sequence[str]]) -> None:
    """Put back what the done moves replaced, last first: the folder as it was before the unit."""
    staging = folder / STAGING
    for i, (staged, rel) in reversed(list(enumerate(moves))):
        target, backup = folder / rel, staging / f"old-{i:04d}"
        done = not (staging / staged).exists() if staged else os.path.lexists(backup)
        if not done:
            continue
        if os.path.lexists(backup):
            os.replace(backup, target)
        elif staged:
            target.unlink(missing_ok=True)


def _put_back(folder: Path, moves: Sequence[Sequence[str]]) -> str | None:
    """:func:`_undo`; None when it worked, else what went wrong."""
    try:
        _undo(folder, moves)
    except OSError as e:
        return f"putting the earlier files back failed too ({e.filename}: {e.strerror})"
    return None


def set_aside(folder: Path, why: str, whole: bool = True) -> Path:
    """Move a journal that cannot be finished out of the way (``.staging-failed-<time>``), with one warning line
    naming it, so that the next units on the folder start clean. ``whole``: the folder holds the files from
    before that unit (else it may hold part of them)."""
    stamp = _dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    aside = folder / f"{FAILED}{stamp}"
    n = 1
    while os.path.lexists(aside):
        n += 1
        aside = folder / f"{FAILED}{stamp}-{n}"
    os.replace(folder / STAGING, aside)
    state = "holds the files from before that run" if whole else "may hold part of that run's files"
    log.warning("%s: an earlier run's results could not be put in place (%s); the folder %s, and that run's journal "
                "was moved to %s (look inside, then delete it)", folder, why, state, aside)
    return aside


def recover(folder: Path) -> None:
    """Finish the unit an earlier run left in ``folder`` (its marker is there), roll back one without a marker,
    or set aside a journal that cannot be finished (module docstring). Call it under the folder's lock."""
    staging = folder / STAGING
    if not os.path.lexists(staging):
        return
    marker = staging / MARKER
    if not marker.is_file():
        shutil.rmtree(staging, ignore_errors=True)
        if os.path.lexists(staging):
            set_aside(folder, "its staged files could not be removed")
        return
    try:
        moves = json.loads(marker.read_text())
        if not all(isinstance(m, list) and len(m) == 2 and all(isinstance(x, str) for x in m) for m in moves):
            raise ValueError("not a list of moves")
    except (OSError, ValueError) as e:
        set_aside(folder, f"{marker}: unreadable ({type(e).__name__})", whole=False)
        return
    try:
        _apply(folder, moves)
    except OSError as e:
        failed = _put_back(folder, moves)
        set_aside(folder, f"{e.filename}: {e.strerror}" + (f"; {failed}" if failed else ""), whole=failed is None)
        return
    shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def unit(folder: Path) -> Iterator[Unit]:
    """Under the folder's lock: finish, roll back or set aside what an earlier run left (:func:`recover`), then
    stage this unit's files and commit them on a normal exit (on an exception nothing is replaced and the
    staged files are removed). An :class:`OSError` names the final path the user knows."""
    folder = Path(folder)
    with locked(folder):
        recover(folder)
        u = Unit(folder)
        try:
            yield u
        except BaseException:
            u.discard()
            raise
        u.commit()
