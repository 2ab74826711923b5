"""app.py at project scale: names that keep the user's meaning, no silent replacement, incremental and resumable
runs (interrupts, reruns, a full disk), shards that may be empty, and the same warnings in the API as in the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import app
from consts import ROOT
from models import journal
from models import results as res
from models.errors import InputError, ValidityWarning
from models.nvs_sqa import NVSSQA
from models.nvs_sqa.scorer import Score
from tests.sequences import make_seq, make_smooth, rows_of


def scenes(root: Path, methods=("nerfacto", "splatfacto"), frames_leaf: bool = False) -> Path:
    for i, scene in enumerate(("sceneA", "sceneB")):
        for j, m in enumerate(methods):
            make_smooth(root / scene / m / ("frames" if frames_leaf else ""), n=6, seed=10 * i + j)
    return root


# --------------------------------------------------------------------------------------------- names
def test_two_scenes_with_the_same_method_names_keep_every_row(tmp_path, released_dir, capsys):
    r = scenes(tmp_path / "r", frames_leaf=True)  # {scene}/{method}/frames/ is discovered too
    out = tmp_path / "all"
    assert app.main([str(r), "--out", str(out), "--quiet"]) == 0
    assert sorted(x["name"] for x in rows_of(out / "scores.csv")) == [
        "sceneA/nerfacto", "sceneA/splatfacto", "sceneB/nerfacto", "sceneB/splatfacto"]
    assert sorted(res.read_npz(out / "output_features.npz")) == sorted(x["name"] for x in rows_of(out / "scores.csv"))
    out2 = tmp_path / "two-inputs"  # the scenes as two inputs: the names say which scene
    assert app.main([str(r / "sceneA"), str(r / "sceneB"), "--out", str(out2), "--quiet"]) == 0
    assert sorted(x["name"] for x in rows_of(out2 / "scores.csv")) == sorted(x["name"] for x in
                                                                            rows_of(out / "scores.csv"))


def test_another_source_under_a_taken_name_is_refused_naming_both(tmp_path, released_dir, capsys):
    r = scenes(tmp_path / "r")
    out = tmp_path / "out"
    assert app.main([str(r / "sceneA"), "--out", str(out), "--quiet"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    capsys.readouterr()
    assert app.main([str(r / "sceneB"), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {out}: 'nerfacto' holds the results of {r / 'sceneA' / 'nerfacto'}, not of "
                   f"{r / 'sceneB' / 'nerfacto'}; score the folder above both (names become scene/method), give "
                   "--name, or use another --out\n")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # nothing touched
    assert app.main([str(r / "sceneB" / "nerfacto"), "--name", "B-nerfacto", "--out", str(out), "--quiet"]) == 0
    assert "B-nerfacto" in {x["name"] for x in rows_of(out / "scores.csv")}


def test_links_keep_their_own_names(tmp_path, released_dir):
    store = make_smooth(tmp_path / "store" / "test" / "ours_30000" / "renders", n=6)
    make_smooth(tmp_path / "store" / "test" / "ours_30000" / "gt", n=6, seed=3)  # 3DGS ground truth beside it
    (tmp_path / "in").mkdir()
    for link in ("gs-a", "gs-b"):
        os.symlink(store, tmp_path / "in" / link)
    out = tmp_path / "out"
    assert app.main([str(tmp_path / "in"), "--out", str(out), "--quiet"]) == 0
    assert [x["name"] for x in rows_of(out / "scores.csv")] == ["gs-a", "gs-b"]
    out3 = tmp_path / "out3"
    assert app.main([str(tmp_path / "store"), "--out", str(out3), "--quiet"]) == 0  # gt passed over, not an error
    assert [x["name"] for x in rows_of(out3 / "scores.csv")] == ["test/ours_30000"]


# --------------------------------------------------------------------------------------------- incremental
def test_rerun_skips_what_is_done_and_scores_what_changed(tmp_path, released_dir, capsys, monkeypatch):
    r = scenes(tmp_path / "r")
    out = tmp_path / "out"
    assert app.main([str(r), "--out", str(out), "--quiet"]) == 0
    calls = []
    real = NVSSQA.assess
    monkeypatch.setattr(NVSSQA, "assess", lambda self, src, *a, **k: calls.append(Path(src).name) or
                        real(self, src, *a, **k))  # fmt: skip
    capsys.readouterr()
    assert app.main([str(r), "--out", str(out), "--quiet"]) == 0 and calls == []
    assert "nothing new to score" in capsys.readouterr().out
    make_smooth(r / "sceneB" / "splatfacto", n=7, seed=99)  # its frames changed: scored again
    assert app.main([str(r), "--out", str(out), "--quiet"]) == 0 and calls == ["splatfacto"]
    assert app.main([str(r), "--out", str(out), "--quiet", "--stride", "0", "--window", "4"]) == 0
    assert len(calls) == 5  # other settings: all four again
    assert app.main([str(r), "--out", str(out), "--quiet", "--window", "4", "--redo"]) == 0 and len(calls) == 9
    assert app.main([str(r), "--out", str(out), "--quiet", "--window", "4", "--features-only"]) == 0
    assert len(calls) == 9  # features only: satisfied by the scored results


def test_an_interrupt_keeps_the_finished_sequences_and_the_rerun_does_the_rest(tmp_path, released_dir, capsys,
                                                                               monkeypatch):  # fmt: skip
    r = scenes(tmp_path / "r")
    out = tmp_path / "out"
    real, seen = NVSSQA.assess, []

    def stop_at_third(self, src, *a, **k):
        seen.append(Path(src).name)
        if len(seen) == 3:
            raise KeyboardInterrupt
        return real(self, src, *a, **k)

    monkeypatch.setattr(NVSSQA, "assess", stop_at_third)
    assert app.main([str(r), "--out", str(out), "--quiet"]) == 130
    err = capsys.readouterr().err
    assert f"interrupted after 2 of 4 sequence(s): their results are in {out}; run the same command again" in err
    assert [x["name"] for x in rows_of(out / "scores.csv")] == ["sceneA/nerfacto", "sceneA/splatfacto"]
    assert not (out / journal.STAGING).exists()
    monkeypatch.setattr(NVSSQA, "assess", real)
    assert app.main([str(r), "--out", str(out), "--quiet"]) == 0
    assert "2 already scored alike, skipped" in capsys.readouterr().out
    assert len(rows_of(out / "scores.csv")) == 4


def _sigterm_on_first_call(fn, after: bool):
    """``fn`` that sends this process a SIGTERM on its first call, before doing its work or (``after``) once it is
    done (Python handles the signal at the next bytecode: inside ``fn``, or just after it returned)."""
    calls = []

    def wrapped(*a, **k):
        first = not calls
        calls.append(1)
        if first and not after:
            os.kill(os.getpid(), signal.SIGTERM)
        out = fn(*a, **k)
        if first and after:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    return wrapped


@pytest.mark.parametrize("where", ["journal commit", "after the commit"])
def test_a_sigterm_while_a_sequence_is_written_counts_what_is_on_disk(tmp_path, released_dir, capsys, monkeypatch,
                                                                     where):  # fmt: skip
    """A SIGTERM landing while the journal puts the first sequence in place, or just after, before the run has
    counted it: the unit is finished, the folder is whole, and the message counts exactly what is written."""
    from models.nvs_sqa import run as app_run

    r = tmp_path / "r"
    for i in range(3):
        make_smooth(r / f"s{i}", n=6, seed=i)
    out = tmp_path / "out"
    if where == "journal commit":  # the files half renamed
        monkeypatch.setattr(journal, "_apply", _sigterm_on_first_call(journal._apply, after=False))
    else:  # the files in place, the run about to count them
        monkeypatch.setattr(app_run, "write_results", _sigterm_on_first_call(app_run.write_results, after=True))
    before = signal.getsignal(signal.SIGTERM)
    try:
        from models import cli

        cli.stop_on_sigterm()  # what app.py's process does first
        assert app.main([str(r), "--out", str(out), "--quiet"]) == 130
    finally:
        signal.signal(signal.SIGTERM, before)
    err = capsys.readouterr().err
    assert "interrupted after 1 of 3 sequence(s)" in err, err
    assert [x["name"] for x in rows_of(out / "scores.csv")] == ["s0"]
    assert sorted(res.read_npz(out / "output_features.npz")) == ["s0"]
    assert not (out / journal.STAGING).exists()


@pytest.mark.slow
def test_sigterm_after_a_finished_sequence_keeps_it(tmp_path, released_dir):
    r = tmp_path / "r"
    for i in range(6):
        make_smooth(r / f"s{i}", n=60, seed=i)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), str(r), "--out", str(out), "--quiet"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out / "scores.csv").is_file():
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    n = len(rows_of(out / "scores.csv"))
    assert 1 <= n < 6 and f"interrupted after {n} of 6 sequence(s)" in err
    assert sorted(res.read_npz(out / "output_features.npz")) == sorted(x["name"] for x in rows_of(out / "scores.csv"))


@pytest.fixture
def small_disk(tmpfs):
    """A real, nearly full file system: a 1 MiB tmpfs."""
    return tmpfs("1m")


@pytest.mark.slow
def test_a_full_disk_leaves_no_orphan_or_mixed_files(small_disk, tmp_path, released_dir, capsys):
    out = small_disk / "out"
    first = make_smooth(tmp_path / "in" / "a", n=6)
    assert app.main([str(first), "--out", str(out), "--quiet"]) == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    (small_disk / "filler").write_bytes(b"\0" * max(0, free - 4096))  # leave 4 KiB: not enough for a merge
    second = make_smooth(tmp_path / "in" / "b", n=6, seed=1)
    capsys.readouterr()
    assert app.main([str(second), "--out", str(out), "--quiet"]) == 2
    assert "cannot write results" in capsys.readouterr().err
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before and not (out / journal.STAGING).exists()  # the folder exactly as it was


def test_a_unit_killed_after_its_commit_is_completed_and_one_killed_before_is_rolled_back(tmp_path, monkeypatch):
    out = tmp_path / "o"
    with journal.unit(out) as u:
        u.write_bytes(out / "a.txt", b"old a")
        u.write_bytes(out / "b.txt", b"old b")
    replace = os.replace

    def killed_before_b(src, dst):
        if Path(dst).name == "b.txt":
            raise KeyboardInterrupt  # the process stops here: after the commit marker and the rename of a.txt
        replace(src, dst)

    u = journal.Unit(out)
    u.write_bytes(out / "a.txt", b"new a")
    u.write_bytes(out / "b.txt", b"new b")
    monkeypatch.setattr(os, "replace", killed_before_b)
    with pytest.raises(KeyboardInterrupt):
        u.commit()
    monkeypatch.undo()
    assert (out / "a.txt").read_bytes() == b"new a" and (out / "b.txt").read_bytes() == b"old b"
    with journal.unit(out):
        pass  # the next unit on the folder finishes the first
    assert (out / "a.txt").read_bytes() == b"new a" and (out / "b.txt").read_bytes() == b"new b"
    u = journal.Unit(out)
    u.write_bytes(out / "a.txt", b"half")  # killed before the commit marker
    with journal.unit(out):
        pass
    assert (out / "a.txt").read_bytes() == b"new a" and not (out / journal.STAGING).exists()
    with pytest.raises(RuntimeError), journal.unit(out) as u:
        u.write_bytes(out / "b.txt", b"never")
        raise RuntimeError("failed while staging")
    assert (out / "b.txt").read_bytes() == b"new b" and not (out / journal.STAGING).exists()


# --------------------------------------------------------------------------------------------- shards
def test_an_empty_shard_merges(tmp_path, released_dir):
    seq = make_smooth(tmp_path / "in" / "only", n=6)
    shards = [tmp_path / f"s{i}" for i in range(2)]
    for i, d in enumerate(shards):
        assert app.main([str(tmp_path / "in"), "--shard", f"{i}/2", "--out", str(d), "--quiet"]) == 0
    assert sorted(len(json.loads((d / "shard.json").read_text())["rows"]) for d in shards) == [0, 1]
    merged = tmp_path / "merged"
    assert app.main(["--merge", str(merged), *map(str, shards)]) == 0
    assert [x["name"] for x in rows_of(merged / "scores.csv")] == ["only"] and seq.is_dir()


# --------------------------------------------------------------------------------------------- the API
def test_the_api_warns_as_app_py_does(tmp_path, released_model):
    two = make_seq(tmp_path / "two", n=2, size=(600, 720))
    with pytest.warns(ValidityWarning, match=r"two: outside the validated range: 2 frames < 6"):
        s = released_model.score(two)
    assert isinstance(s, Score) and isinstance(s, float) and s.warnings[0].startswith("2 frames < 6") and s.mode == \
        "single"  # fmt: skip
    assessed = released_model.assess(two)
    assert assessed.warnings == s.warnings and assessed.score == pytest.approx(float(s))
    white = np.full((8, 600, 720, 3), 250, np.uint8)
    white[:, 200:400, 200:500] = 90
    with pytest.warns(ValidityWarning, match="flat black or white"):
        released_model.score(white)


def test_inside_the_validated_range_the_api_is_silent(released_model, shared_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = released_model.score(shared_dir / "examples" / "Giraffe+NeRF")
    assert s.warnings == [] and round(s, 4) == -2.0439


@pytest.mark.parametrize(("call", "message"), [
    (lambda m: m.score(np.full((6, 80, 96, 3), 200, np.uint16)), r"uint16 frames with values only up to 200 may be "
                                                                  r"8-, 10- or 12-bit pixels; pass max_value"),
    (lambda m: m.score(np.zeros((6, 80, 96, 3), np.uint8), window="long"), r"^window='long': use 'auto', 0"),
    (lambda m: m.score(np.zeros((6, 80, 96, 3), np.uint8), window=4, stride=5), r"^window=4, stride=5: a stride over"),
    (lambda m: m.windows(np.zeros((8, 80, 96, 3), np.uint8), 4, 9), r"^window=4, stride=9: a stride over"),
    (lambda m: m.predict(np.zeros((2, 100))), r"^feats: expected \(384,\) or \(N, 384\) numbers"),
    (lambda m: NVSSQA.from_checkpoint(None, device="gpu"), r"^device='gpu': not a device; use 'auto', 'cpu'"),
])  # fmt: skip
def test_bad_api_arguments_are_one_line_errors_naming_the_parameter(call, message, released_model):
    with pytest.raises(InputError, match=message) as e:
        call(released_model)
    assert "\n" not in str(e.value)


def test_uint16_with_an_explicit_scale_is_read_as_asked(released_model):
    eight = np.random.default_rng(0).integers(0, 256, (6, 80, 96, 3)).astype(np.uint16)
    got = released_model.features(eight, max_value=255)
    assert np.array_equal(got, released_model.features(eight.astype(np.uint8)))
