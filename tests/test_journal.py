"""The journal of a results folder (models/journal.py), with a failure injected at each step: staging (fsync, a
full disk), the checks before the point of no return (a name too long, a parent that is a file, two names on one
file, a path outside the folder), the renames after it (first, middle, last), a replay that fails. After each,
the folder holds either the previous or the new set of files, whole, and the next unit on it succeeds.

Also :func:`models.journal.file_name`, the one way file names are made from user names.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from consts import ROOT
from models import journal
from models.cli import main
from models.errors import InputError

PREVIOUS = {"a.txt": b"old a", "sub/b.txt": b"old b", "c.txt": b"old c", "gone.txt": b"to be removed"}
NEW = {"a.txt": b"new a", "sub/b.txt": b"new b", "c.txt": b"new c", "new/deep/d.txt": b"new d"}
REMOVED = ("gone.txt",)
AFTER = NEW  # what the folder holds once the new unit is in place
FINALS = ["a.txt", "sub/b.txt", "c.txt", "new/deep/d.txt", "gone.txt"]  # the unit's moves, in order


def state(folder: Path) -> dict[str, bytes]:
    """Every result file of ``folder`` (not its lock, not a journal or one set aside)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".results.lock" and not p.relative_to(folder).parts[0].startswith(".staging")}



def write(folder: Path, files: dict[str, bytes], removed: tuple[str, ...] = ()) -> None:
    with journal.unit(folder) as u:
        for rel, data in files.items():
            u.write_bytes(folder / rel, data)
        for rel in removed:
            u.remove(folder / rel)


@pytest.fixture
def out(tmp_path) -> Path:
    """A results folder holding the previous set of files."""
    folder = tmp_path / "out"
    write(folder, PREVIOUS)
    assert state(folder) == PREVIOUS
    return folder


def clean(folder: Path) -> bool:
    """No journal left, none set aside."""
    return not any(p.name.startswith(".staging") for p in folder.iterdir())


def next_unit_succeeds(folder: Path) -> None:
    """Whatever happened before, a following unit on the folder puts the new set in place."""
    before = state(folder)
    write(folder, NEW, REMOVED)
    assert state(folder) == {k: v for k, v in before.items() if k not in REMOVED} | AFTER
    assert not (folder / journal.STAGING).exists()


# --------------------------------------------------------------------------------------------- renames
def failing_replace(fail_at: set[int], exc: BaseException | None = None):
    """``os.replace`` that raises on its calls number ``fail_at`` (1-based) made after the commit marker exists."""
    real, calls = os.replace, []

    def replace(src, dst):
        staging = Path(src).parent if Path(src).parent.name == journal.STAGING else Path(dst).parent
        if (staging / journal.MARKER).exists() or Path(dst).name == journal.MARKER:
            calls.append(dst)
            if len(calls) in fail_at:
                raise exc or OSError(errno.EIO, "Input/output error", str(dst))
        real(src, dst)

    return replace, calls


@pytest.mark.parametrize("which", [2, 4, 6], ids=["first", "middle", "last"])  # call 1 renames the marker into place
def test_a_rename_failing_after_the_commit_leaves_the_previous_files(out, monkeypatch, which):
    replace, calls = failing_replace({which})
    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError) as e:
        write(out, NEW, REMOVED)
    monkeypatch.undo()
    assert len(calls) >= which and e.value.filename == str(out / FINALS[which - 2])  # the final path, not the journal
    assert state(out) == PREVIOUS and clean(out)  # every rename before it undone
    assert not (out / "new").exists()  # the folders it made are gone with it
    next_unit_succeeds(out)


def test_a_rename_failure_is_one_error_line_naming_the_path(out, monkeypatch, capsys):
    replace, _ = failing_replace({3}, OSError(errno.ENOSPC, "No space left on device"))
    monkeypatch.setattr(os, "replace", replace)
    assert main(lambda a: None, lambda cfg: write(out, NEW, REMOVED), []) == 2
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert err == f"error: {out / 'sub/b.txt'}: No space left on device; free some space there or write elsewhere, " \
                  "and run again\n"  # fmt: skip
    assert state(out) == PREVIOUS
    next_unit_succeeds(out)


def killed_after_the_marker(folder: Path, monkeypatch, renames_done: int) -> None:
    """A unit stopped (as by a kill) after its marker and ``renames_done`` renames: the marker stays."""
    replace, _ = failing_replace({renames_done + 2}, KeyboardInterrupt())
    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        write(folder, NEW, REMOVED)
    monkeypatch.undo()
    assert (folder / journal.STAGING / journal.MARKER).is_file()


@pytest.mark.parametrize("renames_done", [0, 2, 4])
def test_ctrl_c_during_the_renames_acts_once_the_unit_is_in_place(out, monkeypatch, renames_done):
    """A real SIGINT (Ctrl-C) between the renames: held until the unit is whole and its ``then`` calls have run."""
    real, calls, seen = os.replace, [], []

    def replace(src, dst):
        real(src, dst)
        if (out / journal.STAGING / journal.MARKER).exists():
            calls.append(dst)
            if len(calls) == renames_done + 1:  # call 1 put the marker in place
                os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(os, "replace", replace)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt), journal.unit(out) as u:
            for rel, data in NEW.items():
                u.write_bytes(out / rel, data)
            u.remove(out / "gone.txt")
            u.then(lambda: seen.append(state(out)))
    finally:
        signal.signal(signal.SIGINT, before)
    assert len(calls) > renames_done
    assert seen == [AFTER] and state(out) == AFTER and clean(out)


@pytest.mark.parametrize("renames_done", [0, 2, 4])
def test_a_unit_killed_after_its_marker_is_finished_by_the_next(out, monkeypatch, renames_done):
    killed_after_the_marker(out, monkeypatch, renames_done)
    write(out, {"e.txt": b"the next run's own file"})
    assert state(out) == {**AFTER, "e.txt": b"the next run's own file"} and clean(out)


def test_a_replay_that_fails_is_set_aside_once_and_the_run_goes_on(out, monkeypatch, caplog):
    killed_after_the_marker(out, monkeypatch, renames_done=2)  # a.txt and sub/b.txt new, the rest old
    replace, _ = failing_replace({2})  # the replay's second rename (c.txt) fails
    monkeypatch.setattr(os, "replace", replace)
    with caplog.at_level(logging.WARNING, logger="models.journal"):
        write(out, {"e.txt": b"the next run's own file"})
    monkeypatch.undo()
    aside = [p for p in out.iterdir() if p.name.startswith(journal.FAILED)]
    assert len(aside) == 1 and not (out / journal.STAGING).exists()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and str(aside[0]) in lines[0] and "holds the files from before that run" in lines[0]
    assert state(out) == {**PREVIOUS, "e.txt": b"the next run's own file"}  # from the last whole state
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="models.journal"):
        next_unit_succeeds(out)
    assert not caplog.records  # the set-aside journal is not replayed again
    assert {p.name for p in out.iterdir() if p.name.startswith(".staging")} == {aside[0].name}


def test_an_unreadable_marker_is_set_aside(out, caplog):
    (out / journal.STAGING).mkdir()
    (out / journal.STAGING / journal.MARKER).write_text("[[\"0000\", ")  # cut off mid-write by a broken disk
    with caplog.at_level(logging.WARNING, logger="models.journal"):
        next_unit_succeeds(out)
    assert len(caplog.records) == 1 and "unreadable" in caplog.records[0].getMessage()


def test_when_putting_back_fails_too_the_journal_is_set_aside_and_said_so(out, monkeypatch, caplog):
    real = os.replace

    def replace(src, dst):  # after the marker only the first rename (and moving the journal aside) succeeds
        if (out / journal.STAGING / journal.MARKER).exists() and Path(src).name not in ("0000", journal.STAGING):
            raise OSError(errno.EIO, "Input/output error", str(dst))
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with caplog.at_level(logging.WARNING, logger="models.journal"), pytest.raises(OSError):
        write(out, NEW, REMOVED)
    monkeypatch.undo()
    assert len(caplog.records) == 1 and "may hold part of that run's files" in caplog.records[0].getMessage()
    assert not (out / journal.STAGING).exists()
    next_unit_succeeds(out)


# --------------------------------------------------------------------------------------------- staging
def failing_fsync(fail_from: int):
    real, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) >= fail_from:
            raise OSError(errno.EIO, "Input/output error")
        real(fd)

    return fsync


@pytest.mark.parametrize("fail_from", [1, 3, 5], ids=["first file", "third file", "commit marker"])
def test_fsync_failing_before_the_commit_leaves_the_previous_files(out, monkeypatch, fail_from):
    monkeypatch.setattr(os, "fsync", failing_fsync(fail_from))
    with pytest.raises(OSError) as e:
        write(out, NEW, REMOVED)
    monkeypatch.undo()
    assert e.value.errno == errno.EIO and e.value.filename in {str(out / f) for f in FINALS} | {str(out)}
    assert state(out) == PREVIOUS and clean(out) and not (out / "new").exists()
    next_unit_succeeds(out)


def test_fsync_of_the_journal_folder_failing_after_the_marker_keeps_the_new_files(out, monkeypatch, caplog):
    monkeypatch.setattr(os, "fsync", failing_fsync(6))  # 4 files + the marker synced; the folder's sync fails
    with caplog.at_level(logging.WARNING, logger="models.journal"):
        write(out, NEW, REMOVED)
    monkeypatch.undo()
    assert state(out) == AFTER and clean(out)
    assert caplog.records and all("cannot sync the folder" in r.getMessage() for r in caplog.records)


def test_a_full_disk_while_staging_leaves_the_previous_files(out, monkeypatch):
    real, calls = journal._write_synced, []

    def full_disk(path, data):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(journal, "_write_synced", full_disk)
    with pytest.raises(OSError) as e:
        write(out, NEW, REMOVED)
    monkeypatch.undo()
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(out / "sub/b.txt")
    assert state(out) == PREVIOUS and clean(out)
    next_unit_succeeds(out)


def test_a_really_full_disk_leaves_the_previous_files_and_says_so_in_one_line(tmpfs, capsys):
    out = tmpfs("64k") / "out"
    write(out, PREVIOUS)
    big = {"a.txt": b"a" * 40_000, "sub/b.txt": b"b" * 40_000}  # 80 KB: more than the disk holds
    assert main(lambda a: None, lambda cfg: write(out, big), []) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {out / 'sub/b.txt'}: No space left on device; free some space") and \
        err.count("\n") == 1  # fmt: skip
    assert state(out) == PREVIOUS and clean(out)
    next_unit_succeeds(out)


# --------------------------------------------------------------------------------------------- checks before the commit
def refused(out: Path, files: dict[str, bytes], match: str) -> None:
    """The unit is refused before its point of no return: one InputError, the folder as it was, then fine."""
    before = state(out)
    with pytest.raises(InputError, match=match):
        write(out, files)
    assert state(out) == before and clean(out)
    next_unit_succeeds(out)


def test_a_name_longer_than_the_file_system_allows_is_refused_before_anything_moves(out):
    name_max = os.pathconf(out, "PC_NAME_MAX")
    refused(out, {**NEW, f"figures/{'m' * (name_max + 1)}.png": b"x"},
            rf"{'m' * 40}…\), longer than this file system allows \({name_max}\); shorten the names")
    deep = "/".join(["d" * 200] * (os.pathconf(out, "PC_PATH_MAX") // 200 + 1))
    refused(out, {**NEW, f"{deep}/x.png": b"x"}, r"a path longer than this file system allows")


def test_a_parent_that_is_a_file_is_refused(out):
    refused(out, {**NEW, "c.txt/x.png": b"x"}, rf"{re.escape(str(out / 'c.txt'))} is a file, not a folder")
    refused(out, {"sub": b"x"}, r"sub: is a folder, where a result file goes")
    refused(out, {"x": b"file", "x/y": b"and folder"}, "one result file would be another one's folder")
    refused(out, {"x/y": b"folder", "x": b"and file"}, "one result file would be another one's folder")


def test_two_files_on_one_name_are_refused(out, monkeypatch):
    refused(out, {"a.txt": b"one"} | {"./sub/../a.txt": b"two"}, "two files of one result set would be written")
    write(out, {"Case.txt": b"upper", "case.txt": b"lower"})  # this file system tells case apart
    assert state(out)["Case.txt"] == b"upper" and state(out)["case.txt"] == b"lower"
    monkeypatch.setattr(journal.Unit, "_folds_case", lambda self: True)  # as on macOS and Windows
    refused(out, {"Figure.png": b"upper", "figure.png": b"lower"}, "two files of one result set would be written")


def test_paths_outside_the_folder_are_refused(out, tmp_path):
    refused(out, {"../escaped.txt": b"x"}, "outside the results folder")
    with pytest.raises(InputError, match="outside the results folder"), journal.unit(out) as u:
        u.write_bytes(tmp_path / "elsewhere.txt", b"x")
    with pytest.raises(InputError, match="the results folder's journal"), journal.unit(out) as u:
        u.write_bytes(out / journal.STAGING / "0000", b"x")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "elsewhere.txt").exists()
    assert state(out) == AFTER and clean(out)  # as refused() left it


def test_the_case_probe_sees_this_file_system_tell_case_apart(tmp_path):
    u = journal.Unit(tmp_path)
    assert u._folds_case() is False and not any((tmp_path / journal.STAGING).iterdir())


def test_removals_take_folders_too_and_an_empty_unit_changes_nothing(out):
    with journal.unit(out) as u:
        u.remove(out / "sub")
        u.remove(out / "never-there.txt")
    assert state(out) == {k: v for k, v in PREVIOUS.items() if not k.startswith("sub/")} and clean(out)
    with journal.unit(out):
        pass
    assert clean(out)


# --------------------------------------------------------------------------------------------- file names
def test_file_names_are_bounded_distinct_readable_and_stable():
    f = journal.file_name
    assert f("a/b") != f("a_b") != f("a b") and f("A") != f("a") and f("a-b", "c") != f("a", "b-c")
    assert f("garden").startswith("garden-") and f("garden", "3dgs").startswith("garden-3dgs-")
    digest = hashlib.sha256(b"garden").hexdigest()[:10]
    assert f("garden") == f"garden-{digest}"  # the documented rule: slug, "-", 10 hex digits of the sha256
    for name in ("m" * 245, "é" * 300, "../../etc/passwd", ".hidden", "", "a\0b", "\udcff", "/".join("x" * 100)):
        got = f(name, name)
        assert len(got) <= journal.FILE_NAME_MAX and set(got) <= set(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") and not got.startswith((".", "-"))
    code = "from models.journal import file_name; print(file_name('scène/méthode', 'x' * 300))"
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert runs == {f("scène/méthode", "x" * 300) + "\n"}  # the same in every process


def test_a_245_character_method_name_gets_its_own_files(out):
    names = ["m" * 245, "m" * 244 + "/", "m" * 244 + "_"]
    files = {f"figures/{journal.file_name('garden', n)}-failure1.png": n.encode() for n in names}
    write(out, files)
    assert len({k for k in state(out) if k.startswith("figures/")}) == 3
