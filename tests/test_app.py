"""app.py end to end on tiny sequences: outputs, exit codes, one-line errors without tracebacks, validity warnings,
windowed scoring, and merging into an out folder that already holds results (also from concurrent runs)."""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import subprocess
import sys
import threading
from dataclasses import replace

import numpy as np
import pytest

import app
from consts import EXAMPLES_DIR, PROJECT_VERSION, RELEASED, ROOT
from models import discovery, results
from models.nvs_sqa import run as app_run
from models.nvs_sqa.validity import Limits
from tests.sequences import make_seq, make_smooth, rows_of


def small_side_warning(side=80):
    lim = Limits.load()
    return f"shorter side {side} px outside the validated {lim.min_side}-{lim.max_side} px"


@pytest.fixture
def bank(tmp_path, released_dir):
    make_seq(tmp_path / "bank" / "sceneA+m1", seed=1)
    make_seq(tmp_path / "bank" / "sceneA+m2", seed=2)
    return tmp_path / "bank"


def test_folder_of_sequences(bank, capsys, released_model):
    assert app.main([str(bank), "--quiet"]) == 0
    feats = np.load(bank / "output_features.npz")
    assert sorted(feats.files) == ["sceneA+m1", "sceneA+m2"]
    np.testing.assert_allclose(feats["sceneA+m1"], released_model.features(bank / "sceneA+m1"), atol=1e-6)
    rows = rows_of(bank / "scores.csv")
    assert [r["name"] for r in rows] == ["sceneA+m1", "sceneA+m2"]
    assert {"name", "score", "frames", "width", "height", "mode", "warnings"} <= set(rows[0])
    assert rows[0]["frames"] == "3" and rows[0]["width"] == "96" and rows[0]["height"] == "72"
    assert rows[0]["mode"] == "single"
    expected = float(released_model.predict(feats["sceneA+m1"])[0])
    assert abs(float(rows[0]["score"]) - expected) < 1e-6
    meta = json.loads((bank / "scores.json").read_text())
    assert meta["project_version"] == PROJECT_VERSION and meta["model_version"] == "v0.0.1"
    assert meta["checkpoint_sha256"] == RELEASED.state_dict.sha256
    assert [r["name"] for r in meta["rows"]] == ["sceneA+m1", "sceneA+m2"]
    assert json.loads((bank / "output_features.json").read_text())["checkpoint_sha256"] == RELEASED.state_dict.sha256
    out = capsys.readouterr().out
    assert "sceneA+m1" in out and "higher is better" in out


def test_examples_score_as_released_without_warnings(tmp_path, released_dir, caplog):
    out = tmp_path / "o"
    with caplog.at_level(logging.WARNING):
        assert app.main([str(EXAMPLES_DIR), "--out", str(out), "--quiet"]) == 0
    rows = {r["name"]: r for r in json.loads((out / "scores.json").read_text())["rows"]}
    assert round(rows["Giraffe+NeRF"]["score"], 4) == -2.0439 and round(rows["Giraffe+IBRNet-C"]["score"], 4) == -2.1063
    assert [(r["mode"], r["warnings"]) for r in rows.values()] == [("single", [])] * 2
    assert not caplog.records
    kinds = {(r["name"], r["kind"]) for r in csv.DictReader(open(out / "windows.csv"))}
    assert kinds == {(n, "curve") for n in rows}  # a 120-frame render gets its quality curve by default
    assert sorted(p.name for p in (out / "curves").iterdir()) == ["Giraffe+IBRNet-C.png", "Giraffe+NeRF.png"]
    assert [rows[n]["rank"] for n in sorted(rows)] == ["1=", "1="]  # 0.06 JOD apart: under the noise floor


def test_validity_warnings_in_table_files_and_log(tmp_path, released_dir, capsys, caplog):
    lim = Limits.load()
    n = lim.min_frames - 1
    seq = make_smooth(tmp_path / "small", n=n)
    out = tmp_path / "o"
    assert app.main([str(seq), "--out", str(out), "--quiet"]) == 0
    reasons = [f"{n} frames < {lim.min_frames} (validated: {lim.min_frames}+ frames)", small_side_warning()]
    assert json.loads((out / "scores.json").read_text())["rows"][0]["warnings"] == reasons
    assert rows_of(out / "scores.csv")[0]["warnings"] == "; ".join(reasons)
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert logged == [f"small ({seq}): outside the validated range: {'; '.join(reasons)}"]
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("small "))
    assert "; ".join(reasons)[:app_run.SHOWN - 1] + "…" in line  # shortened in the table


def test_one_bad_sequence_others_still_scored(bank, tmp_path, capsys):
    bad = make_seq(bank / "sceneA+broken", n=2)
    (bad / "0001.png").write_bytes(b"truncated")
    out = tmp_path / "out"
    assert app.main([str(bank), "--out", str(out), "--quiet"]) == 1
    assert sorted(np.load(out / "output_features.npz").files) == ["sceneA+m1", "sceneA+m2"]
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "0001.png" in err[0]  # one line for the one bad sequence
    assert json.loads((out / "scores.json").read_text())["failed"][0].startswith(str(bad / "0001.png"))


def test_video_and_single_folder_inputs(tmp_path, released_dir):
    import cv2

    seq = make_seq(tmp_path / "s", n=2)
    vw = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 72))
    for f in sorted(seq.iterdir()):
        vw.write(cv2.imread(str(f)))
    vw.release()
    out = tmp_path / "o"
    assert app.main([str(seq), str(tmp_path / "clip.avi"), "--out", str(out), "--quiet"]) == 0
    assert sorted(np.load(out / "output_features.npz").files) == ["clip", "s"]
    assert app.main([str(seq), "--quiet"]) == 0  # single folder: outputs land in it
    assert (seq / "scores.csv").is_file()
    assert app.main([str(seq), "--quiet"]) == 0  # and a re-run does not treat them as frames
    assert [r["name"] for r in rows_of(seq / "scores.csv")] == ["s"]


def test_features_only_checkpoint_without_regressor(tmp_path, released_dir, capsys):
    import shutil

    ck = tmp_path / "ck"
    shutil.copytree(released_dir, ck)
    (ck / "regressor.json").unlink()
    seq = make_seq(tmp_path / "s", n=2)
    out = tmp_path / "o"
    assert app.main([str(seq), "--checkpoint", str(ck), "--out", str(out), "--quiet"]) == 2
    assert capsys.readouterr().err == f"error: {ck}: has no regressor.json, so no JOD score; use --features-only, " \
                                      "or fit one with evaluate.py --save-regressor\n"  # fmt: skip
    assert not out.exists()
    assert app.main([str(seq), "--checkpoint", str(ck), "--out", str(out), "--features-only", "--quiet"]) == 0
    assert (out / "output_features.npz").is_file() and not (out / "scores.csv").exists()


def test_exit_2_creates_nothing(tmp_path, released_dir):
    seq = make_seq(tmp_path / "s", n=2)
    bad = make_seq(tmp_path / "bad", n=2)
    (bad / "0000.png").write_bytes(b"truncated")
    assert app.main([str(seq), "--out", str(tmp_path / "a" / "b"), "--checkpoint", str(tmp_path / "nope")]) == 2
    assert app.main([str(bad), "--out", str(tmp_path / "c"), "--quiet"]) == 2  # every sequence failed
    assert app.main([str(seq), "--out", str(tmp_path / "d"), "--window", "x"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "s"]


def test_runs_merge_by_name(tmp_path, released_model):
    s1, s2 = make_smooth(tmp_path / "in1" / "s1", seed=1), make_smooth(tmp_path / "in2" / "s2", seed=2)
    out = tmp_path / "out"
    assert app.main([str(s1), "--out", str(out), "--quiet"]) == 0
    first = rows_of(out / "scores.csv")[0]
    assert app.main([str(s2), "--out", str(out), "--quiet"]) == 0
    make_smooth(s1, seed=3)  # s1 re-rendered: its row is replaced, s2's kept
    assert app.main([str(s1), "--out", str(out), "--quiet"]) == 0
    feats = dict(np.load(out / "output_features.npz"))
    assert sorted(feats) == ["s1", "s2"]
    rows = {r["name"]: r for r in rows_of(out / "scores.csv")}
    assert list(rows) == ["s2", "s1"] and rows["s1"]["score"] != first["score"]
    for name, folder in (("s1", s1), ("s2", s2)):
        want = released_model.features(folder)
        np.testing.assert_allclose(feats[name], want, atol=1e-6)
        assert abs(float(rows[name]["score"]) - float(released_model.predict(want)[0])) < 1e-5
    assert [r["name"] for r in json.loads((out / "scores.json").read_text())["rows"]] == ["s2", "s1"]


def test_concurrent_runs_both_end_up_in_the_files(tmp_path, released_dir, monkeypatch):
    s1, s2 = make_smooth(tmp_path / "in1" / "s1", seed=1), make_smooth(tmp_path / "in2" / "s2", seed=2)
    out = tmp_path / "out"
    both_scored, real_write, real_read = threading.Barrier(2, timeout=120), app_run.write_results, results.read_npz
    both_read = threading.Barrier(2, timeout=3)

    def write_together(*a, **k):  # both runs reach the read-merge-write at the same moment ...
        both_scored.wait()
        return real_write(*a, **k)

    def read_and_wait(path):  # ... and without the lock, both would read the old files before either writes
        old = real_read(path)
        with contextlib.suppress(threading.BrokenBarrierError):
            both_read.wait()  # under the lock the other run cannot get here: this times out, the run goes on
        return old

    monkeypatch.setattr(app_run, "write_results", write_together)
    monkeypatch.setattr(results, "read_npz", read_and_wait)
    codes = {}
    threads = [threading.Thread(target=lambda s=s: codes.__setitem__(s.name, app.run(app.parse_args(
        [str(s), "--out", str(out), "--window", "4", "--stride", "4", "--quiet", "--batch-size", "8"]))))
        for s in (s1, s2)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == {"s1": 0, "s2": 0}
    assert sorted(np.load(out / "output_features.npz").files) == ["s1", "s2"]
    assert sorted(r["name"] for r in rows_of(out / "scores.csv")) == ["s1", "s2"]
    assert sorted(r["name"] for r in json.loads((out / "scores.json").read_text())["rows"]) == ["s1", "s2"]
    assert sorted((r["name"], r["start"], r["end"]) for r in rows_of(out / "windows.csv")) == [
        ("s1", "0", "4"), ("s1", "4", "8"), ("s2", "0", "4"), ("s2", "4", "8")]
    assert sorted(p.name for p in (out / "curves").iterdir()) == ["s1.png", "s2.png"]


def test_results_of_another_checkpoint_are_refused(tmp_path, released_dir, capsys):
    from models.nvs_sqa.checkpoint import random_init

    ck = random_init(tmp_path / "random", seed=0)
    seq = make_smooth(tmp_path / "s")
    out = tmp_path / "out"
    assert app.main([str(seq), "--out", str(out), "--quiet"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert app.main([str(seq), "--out", str(out), "--checkpoint", str(ck), "--features-only", "--quiet"]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 1
    assert errors[0].startswith(f"error: {out / 'scores.json'}: holds results of another checkpoint")
    assert errors[0].endswith("use another --out")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_features_only_leaves_no_stale_scores(tmp_path, released_dir):
    s1, s2 = make_smooth(tmp_path / "in" / "s1", seed=1), make_smooth(tmp_path / "in" / "s2", seed=2)
    out = tmp_path / "out"
    assert app.main([str(tmp_path / "in"), "--out", str(out), "--window", "4", "--quiet"]) == 0
    assert sorted({r["name"] for r in rows_of(out / "windows.csv")}) == ["s1", "s2"]
    assert app.main([str(s1), "--out", str(out), "--features-only", "--quiet"]) == 0
    assert [r["name"] for r in rows_of(out / "scores.csv")] == ["s2"]
    assert [r["name"] for r in json.loads((out / "scores.json").read_text())["rows"]] == ["s2"]
    assert sorted({r["name"] for r in rows_of(out / "windows.csv")}) == ["s2"]
    assert sorted(p.name for p in (out / "curves").iterdir()) == ["s2.png"]
    assert app.main([str(s2), "--out", str(out), "--features-only", "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [".results.lock", "output_features.json", "output_features.npz"]
    assert sorted(np.load(out / "output_features.npz").files) == ["s1", "s2"]


def test_names_print_as_typed_and_same_names_are_told_apart_by_their_folder(tmp_path, released_dir, capsys):
    a, b = make_smooth(tmp_path / "a" / "1e3"), make_smooth(tmp_path / "b" / "1e3", seed=1)
    c = make_smooth(tmp_path / "c" / "007", seed=2)
    out = tmp_path / "out"
    assert app.main([str(a), str(b), str(c), "--out", str(out), "--quiet"]) == 0
    first_words = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert first_words[2:5] == ["a/1e3", "b/1e3", "007"]  # never numbered: each says where it came from
    assert [r["name"] for r in rows_of(out / "scores.csv")] == ["a/1e3", "b/1e3", "007"]


def test_skipped_inputs_are_reported(tmp_path, released_dir, caplog):
    make_smooth(tmp_path / "in" / "s")
    (tmp_path / "in" / "empty").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("x")
    assert app.main([str(tmp_path / "in"), "--window", "4", "--quiet"]) == 1  # out: the input folder
    skipped = json.loads((tmp_path / "in" / "scores.json").read_text())["skipped"]
    assert [(s["path"], s["reason"]) for s in skipped] == [
        (str(tmp_path / "in" / "empty"), discovery.NO_FRAMES),
        (str(tmp_path / "in" / "notes.txt"), discovery.NOT_A_SEQUENCE)]
    assert "empty/" in caplog.text and "notes.txt" in caplog.text
    assert (tmp_path / "in" / "curves" / "s.png").is_file()
    assert app.main([str(tmp_path / "in"), "--window", "4", "--quiet"]) == 1  # its own outputs: not scored, not listed
    meta = json.loads((tmp_path / "in" / "scores.json").read_text())
    assert [r["name"] for r in meta["rows"]] == ["s"] and len(meta["skipped"]) == 2


@pytest.fixture(scope="module")
def long_seq(tmp_path_factory):
    return make_smooth(tmp_path_factory.mktemp("long") / "path300", n=300)


def test_windows_of_a_300_frame_sequence(long_seq, tmp_path, released_model):
    out = tmp_path / "out"
    assert app.main([str(long_seq), "--out", str(out), "--window", "120", "--stride", "60", "--batch-size", "16",
                     "--quiet"]) == 0
    win = [r for r in rows_of(out / "windows.csv") if r["kind"] == "score"]
    assert [(r["name"], int(r["start"]), int(r["end"])) for r in win] == [
        ("path300", 0, 120), ("path300", 60, 180), ("path300", 120, 240), ("path300", 180, 300)]
    feats = released_model.frame_features(long_seq, 16)
    reps = np.stack([released_model.aggregate(feats[a:a + 120]) for a in (0, 60, 120, 180)])
    want = released_model.predict(reps)
    np.testing.assert_allclose([float(r["score"]) for r in win], want, atol=1e-5)
    row = json.loads((out / "scores.json").read_text())["rows"][0]
    assert row["mode"] == "windows 120/60 ×4" and abs(row["score"] - want.mean()) < 1e-5
    np.testing.assert_allclose(np.load(out / "output_features.npz")["path300"], reps.mean(axis=0), atol=1e-6)
    assert (out / "curves" / "path300.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_auto_windows_beyond_the_validated_length_and_forced_single_pass(tmp_path, released_dir, monkeypatch):
    lim = replace(Limits.load(), max_frames=30, window=20, stride=10, min_side=80)
    monkeypatch.setattr(Limits, "load", classmethod(lambda cls, path=None: lim))
    short, long = make_smooth(tmp_path / "in" / "short", n=30), make_smooth(tmp_path / "in" / "long", n=41, seed=1)
    out = tmp_path / "out"
    assert app.main([str(tmp_path / "in"), "--out", str(out), "--batch-size", "16", "--quiet"]) == 0
    rows = {r["name"]: r for r in rows_of(out / "scores.csv")}
    assert (rows["short"]["mode"], rows["long"]["mode"]) == ("single", "windows 20/10 ×4")
    assert [(r["start"], r["end"]) for r in rows_of(out / "windows.csv")] == [
        ("0", "20"), ("10", "30"), ("20", "40"), ("21", "41")]
    assert rows["long"]["warnings"] == ""
    assert app.main([str(long), "--out", str(out), "--window", "0", "--batch-size", "16", "--quiet"]) == 0
    rows = {r["name"]: r for r in rows_of(out / "scores.csv")}
    assert rows["long"]["mode"] == "single" and not (out / "windows.csv").exists() and not (out / "curves").exists()
    assert rows["long"]["warnings"] == "41 frames in one pass > 30 (validated: up to 30; the default, window auto, " \
        "scores longer sequences in windows)"
    assert short.is_dir()


@pytest.mark.parametrize(("flags", "message"), [
    (["--window", "x"], "--window x: use auto, 0 (one pass) or a number of frames >= 1"),
    (["--window", "0", "--stride", "5"], "--window 0 --stride 5: a stride is for windows"),
    (["--window", "10", "--stride", "20"], "--window 10 --stride 20: a stride over the window of 10 frames would "
                                           "leave frames unscored"),
])  # fmt: skip
def test_bad_window_flags_are_one_line(flags, message, capsys):
    assert app.main(["--quiet", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and len(err.splitlines()) == 1


def _cli(*args, cwd=ROOT):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "app.py"), *args, "--quiet"], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


@pytest.mark.parametrize("case", ["missing", "empty", "unwritable", "bad_checkpoint", "small"])
def test_errors_are_one_line_without_traceback(case, tmp_path, released_dir):
    seq = make_seq(tmp_path / "s", n=2)
    args = {
        "missing": [str(tmp_path / "nope")],
        "empty": [str((tmp_path / "e").mkdir() or tmp_path / "e")],
        "unwritable": [str(seq), "--out", "/proc/forbidden"],
        "bad_checkpoint": [str(seq), "--checkpoint", str(tmp_path / "s")],
        "small": [str(make_seq(tmp_path / "tiny", n=2, size=(40, 40)))],
    }[case]
    r = _cli(*args)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, r.stderr
    hint = {"missing": "no such file", "empty": "no frames", "unwritable": "cannot write results",
            "bad_checkpoint": "config.json: missing", "small": "smaller than the 69x69"}[case]
    assert hint in errors[0]
    assert not (seq / "scores.csv").exists()


def test_help_mentions_jod():
    r = subprocess.run([sys.executable, str(ROOT / "app.py"), "--help"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and "--features-only" in r.stdout and "higher is better" in r.stdout
    assert "--window auto|0|N" in r.stdout


def test_a_window_longer_than_the_sequence_reads_the_same_in_app_and_api(tmp_path, released_model):
    """One window plan for every path: --window 60 on 24 frames is one pass in app.py and in the API alike."""
    seq = make_smooth(tmp_path / "in" / "short24", n=24)
    out = tmp_path / "out"
    assert app.main([str(seq), "--out", str(out), "--window", "60", "--batch-size", "16", "--quiet"]) == 0
    row = rows_of(out / "scores.csv")[0]
    assert row["mode"] == "single" and not (out / "windows.csv").exists()
    api = released_model.windows(seq, 60)
    assert api.mode == "single" and len(api.scores) == 1
    assert float(row["score"]) == pytest.approx(api.score, abs=1e-5)
    assert released_model.score(seq, window=60) == pytest.approx(api.score, abs=1e-6)
    assert released_model.score(seq) == pytest.approx(api.score, abs=1e-6)  # auto: the same one pass
