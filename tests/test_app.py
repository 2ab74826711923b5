"""app.py end to end on tiny sequences: outputs, exit codes, and one-line errors without tracebacks."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import app
from consts import PROJECT_VERSION, RELEASED, ROOT


def make_seq(folder, n=3, size=(72, 96), seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"{i:04d}.png")
    return folder


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
    rows = list(csv.DictReader(open(bank / "scores.csv")))
    assert [r["name"] for r in rows] == ["sceneA+m1", "sceneA+m2"]
    assert {"name", "score", "frames", "width", "height"} <= set(rows[0])
    assert rows[0]["frames"] == "3" and rows[0]["width"] == "96" and rows[0]["height"] == "72"
    expected = float(released_model.predict(feats["sceneA+m1"])[0])
    assert abs(float(rows[0]["score"]) - expected) < 1e-6
    meta = json.loads((bank / "scores.json").read_text())
    assert meta["project_version"] == PROJECT_VERSION and meta["model_version"] == "v0.0.1"
    assert meta["checkpoint_sha256"] == RELEASED.state_dict.sha256
    assert [r["name"] for r in meta["rows"]] == ["sceneA+m1", "sceneA+m2"]
    out = capsys.readouterr().out
    assert "sceneA+m1" in out and "higher is better" in out


def test_one_bad_sequence_others_still_scored(bank, tmp_path, caplog):
    bad = make_seq(bank / "sceneA+broken", n=2)
    (bad / "0001.png").write_bytes(b"truncated")
    out = tmp_path / "out"
    assert app.main([str(bank), "--out", str(out), "--quiet"]) == 1
    assert sorted(np.load(out / "output_features.npz").files) == ["sceneA+m1", "sceneA+m2"]
    assert "0001.png" in caplog.text
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


def test_features_only_checkpoint_without_regressor(tmp_path, released_dir):
    import shutil

    ck = tmp_path / "ck"
    shutil.copytree(released_dir, ck)
    (ck / "regressor.json").unlink()
    seq = make_seq(tmp_path / "s", n=2)
    out = tmp_path / "o"
    assert app.main([str(seq), "--checkpoint", str(ck), "--out", str(out), "--quiet"]) == 2
    assert not out.exists() or not any(out.iterdir())
    assert app.main([str(seq), "--checkpoint", str(ck), "--out", str(out), "--features-only", "--quiet"]) == 0
    assert (out / "output_features.npz").is_file() and not (out / "scores.csv").exists()


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
    errors = [line for line in r.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1, r.stderr
    hint = {"missing": "no such file", "empty": "no frames", "unwritable": "cannot write results",
            "bad_checkpoint": "config.json: missing", "small": "smaller than the 69x69"}[case]
    assert hint in errors[0]
    assert not (seq / "scores.csv").exists()


def test_help_mentions_jod():
    r = subprocess.run([sys.executable, str(ROOT / "app.py"), "--help"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and "--features-only" in r.stdout and "higher is better" in r.stdout
