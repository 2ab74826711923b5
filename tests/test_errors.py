"""Every script answers bad flags and bad files with one error line and a non-zero exit, never a traceback.

One table of cases per script, run in-process through the script's ``main(argv)`` (fast; stderr captured as
the user would see it, logging included), plus a few real subprocesses that prove no traceback reaches a user.
A case passes when: the exit code is 2, stderr holds exactly one line containing ``error:``, that line starts
with ``error: `` (``cli.main``) or ``<prog>: error: `` (a flag refused by argparse) and contains the expected
text, every other stderr line is an ``INFO:``/``WARNING:`` message, and there is no traceback.

Cases are made on tiny fixtures in tmp: a text file, an empty folder, a truncated ``.npz``, a ``.npy``, label
files that are not UTF-8 or not JSON, a corrupt checkpoint folder, a path under a regular file (unwritable).
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import app
import consts
import crossscore
import evaluate
import preprocess
import report
import train
from consts import EXAMPLES_DIR, ROOT

SCRIPTS = {"app": app, "evaluate": evaluate, "train": train, "preprocess": preprocess, "crossscore": crossscore,
           "report": report}
EX = str(EXAMPLES_DIR / "Giraffe+NeRF")
LONG = "x" * 300  # a folder name longer than any file system allows


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> Path:
    """The bad (and a few good) files the cases point at."""
    t = tmp_path_factory.mktemp("bad")
    (t / "file.txt").write_text("not a folder, an image, a video or a checkpoint\n")
    (t / "empty").mkdir()
    np.savez(t / "ok.npz", **{"lab+s+m": np.zeros(4, np.float32)})
    data = (t / "ok.npz").read_bytes()
    (t / "trunc.npz").write_bytes(data[: len(data) // 2])
    np.save(t / "one.npy", np.zeros(4, np.float32))
    (t / "labels.json").write_text(json.dumps({"labels": {"lab+s+m": -1.0}, "tr_keys": ["lab+s+m"], "tt_keys": []}))
    (t / "latin1.json").write_bytes('{"labels": {"caf\u00e9+s+m": 1}}'.encode("latin-1"))
    (t / "invalid.json").write_text('{"labels": ')
    (t / "badck").mkdir()
    (t / "badck" / "config.json").write_text('{"view_enc_size": ')
    (t / "badck" / "model.pth").write_bytes(b"\x00" * 64)
    for split in ("refs", "query"):
        (t / split).mkdir()
        Image.fromarray(np.full((28, 42, 3), 128, np.uint8)).save(t / split / "a.png")
    for m in ("m0", "m1"):  # a minimal training set: one scene, two methods, two frames
        (t / "renders" / f"scene__{m}").mkdir(parents=True)
        for i in range(2):
            frame = Image.fromarray(np.full((80, 80, 3), 60 * i + 10, np.uint8))
            frame.save(t / "renders" / f"scene__{m}" / f"{i}.png")
    return t


def _row(script: str, argv: list[str], expect: str) -> pytest.param:
    return pytest.param(script, argv, expect, id=f"{script} {' '.join(argv)}")


# {t}: the folder of the `bad` fixture. Expected text: a part of the one error line.
CASES = [
    # --------------------------------------------------------------------------- app.py
    _row("app", ["{t}/missing", "--out", "{t}/out"], "{t}/missing"),
    _row("app", ["--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    _row("app", ["--batch-size", "-1"], "--batch-size -1: must be >= 0"),
    _row("app", ["{t}/file.txt", "--out", "{t}/out"], "{t}/file.txt"),
    _row("app", ["{t}/empty", "--out", "{t}/out"], "{t}/empty"),
    _row("app", [EX, "--out", "{t}/file.txt/out"], "{t}/file.txt"),
    _row("app", [EX, "--checkpoint", "{t}/missing", "--out", "{t}/out"], "{t}/missing"),
    # --------------------------------------------------------------------------- evaluate.py
    _row("evaluate", ["--features", "{t}/trunc.npz", "--labels", "{t}/labels.json"],
         "{t}/trunc.npz: not a readable .npz of features (BadZipFile; truncated or not an .npz?)"),
    _row("evaluate", ["--features", "{t}/one.npy", "--labels", "{t}/labels.json"],
         "{t}/one.npy: one array (.npy), not an .npz of named features"),
    _row("evaluate", ["--features", "{t}/empty", "--labels", "{t}/labels.json"], "{t}/empty: is a folder"),
    _row("evaluate", ["--features", "{t}/missing.npz", "--labels", "{t}/labels.json"],
         "{t}/missing.npz: features file not found"),
    _row("evaluate", ["--features", "{t}/ok.npz", "--labels", "{t}/latin1.json"],
         "{t}/latin1.json: not a readable JSON label file (UnicodeDecodeError)"),
    _row("evaluate", ["--features", "{t}/ok.npz", "--labels", "{t}/invalid.json"],
         "{t}/invalid.json: not a readable JSON label file (JSONDecodeError)"),
    _row("evaluate", ["--features", "{t}/ok.npz", "--labels", "{t}/empty"], "{t}/empty: is a folder; --labels"),
    _row("evaluate", ["--bank", "{t}/file.txt", "--labels", "{t}/labels.json"],
         "{t}/file.txt: benchmark bank folder not found"),
    _row("evaluate", ["--features", "{t}/ok.npz", "--labels", "{t}/labels.json", "--name", "file.txt/run"],
         "{t}/file.txt/run: {t}/file.txt is a file, not a folder"),
    _row("evaluate", ["--checkpoint", "no-such-model"], "--checkpoint no-such-model: not found (looked in: "),
    _row("evaluate", ["--degrade", EX, "--checkpoint", "{t}/badck"], "{t}/badck"),
    _row("evaluate", ["--degrade", "--regressor", "{t}/missing.json"], "--regressor {t}/missing.json: no such file"),
    _row("evaluate", ["--threads", "-1"], "--threads -1: must be >= 0"),
    _row("evaluate", ["--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    _row("evaluate", ["--frames", "0"], "--frames 0: must be >= 1"),
    # --------------------------------------------------------------------------- train.py
    _row("train", ["--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    _row("train", ["--workers", "-1"], "--workers -1: must be >= 0"),
    _row("train", ["--lr", "-1"], "--lr -1.0: must be a finite number >= 0"),
    _row("train", ["--threads", "-1"], "--threads -1: must be >= 0"),
    _row("train", ["--resume", "no-such-run"], "--resume no-such-run: not found (looked in: "),
    _row("train", ["--resume", "{t}/empty"], "{t}/empty/config.json: cannot read the run's config"),
    _row("train", ["--resume", "{t}/invalid.json"], "{t}/invalid.json/config.json: cannot read the run's config"),
    _row("train", ["--preset", "cpu-smoke", "--renders", "{t}/missing", "--runs-dir", "{t}/runs"],
         "--renders {t}/missing: not found"),
    _row("train", ["--preset", "cpu-smoke", "--renders", "{t}/file.txt", "--runs-dir", "{t}/runs"],
         "{t}/file.txt: a file, not a folder"),
    _row("train", ["--preset", "cpu-smoke", "--renders", "{t}/empty", "--runs-dir", "{t}/runs"],
         "{t}/empty: no <scene>__<method> folders with frames"),
    _row("train", ["--preset", "cpu-smoke", "--renders", "{t}/renders", "--runs-dir", "{t}/file.txt/runs"],
         "{t}/file.txt/runs/cpu-smoke-seed0: {t}/file.txt is a file, not a folder"),
    _row("train", ["--preset", "cpu-smoke", "--renders", "{t}/renders", "--runs-dir", "{t}/runs", "--init",
                   "{t}/badck"], "{t}/badck"),
    _row("train", ["--preset", "cpu-smoke", "--renders", "{t}/renders", "--runs-dir", "{t}/runs", "--init",
                   "no-such-model"], "--init no-such-model: not found (looked in: "),
    # --------------------------------------------------------------------------- preprocess.py
    _row("preprocess", ["--dry-run", "--plan-json", "{t}/file.txt/plan.json"],
         "--plan-json {t}/file.txt/plan.json: cannot write this file ({t}/file.txt is not a folder)"),
    _row("preprocess", ["--dry-run", "--plan-json", "{t}/empty"], "--plan-json {t}/empty: cannot write this file"),
    _row("preprocess", ["--dry-run", "--plan-json", "/proc/plan.json"], "--plan-json /proc/plan.json: cannot write"),
    _row("preprocess", ["--dry-run", "--scenes", "no-such-scene"], "--scenes: unknown scene(s) no-such-scene"),
    _row("preprocess", ["--methods", "mipnerf"], "unknown method(s) mipnerf"),
    _row("preprocess", ["--max-iters", "-1"], "--max-iters -1: must be >= 0"),
    _row("preprocess", ["--ns-bin", "{t}/missing"], "--ns-bin {t}/missing: no such folder"),
    _row("preprocess", ["--scenes", "poster", "--datasets", "{t}/empty", "--renders", "{t}/out", "--ns-bin",
                        "{t}/empty"], "2 problems stop the run: (1) ns-train and ns-render not found"),
    # --------------------------------------------------------------------------- crossscore.py
    _row("crossscore", ["predict", "{t}/query/a.png", "--references", "{t}/refs", "--checkpoint", "{t}/badck",
                        "--out", "{t}/out"], "{t}/badck/config.json: unreadable"),
    _row("crossscore", ["predict", "{t}/query/a.png", "--references", "{t}/refs", "--checkpoint", "no-such-model"],
         "--checkpoint no-such-model: not found (looked in: "),
    _row("crossscore", ["predict", "{t}/missing.png", "--references", "{t}/refs", "--checkpoint", "{t}/badck"],
         "{t}/missing.png: no such image or folder"),
    _row("crossscore", ["predict", "{t}/empty", "--references", "{t}/refs", "--checkpoint", "{t}/badck"],
         "{t}/empty: no .png/.jpg/.jpeg image to score"),
    _row("crossscore", ["predict", "{t}/file.txt", "--references", "{t}/refs", "--checkpoint", "{t}/badck"],
         "{t}/file.txt: no .png/.jpg/.jpeg image to score"),
    _row("crossscore", ["predict", "{t}/query/a.png", "--references", "{t}/file.txt", "--checkpoint", "{t}/badck"],
         "{t}/file.txt: reference folder not found"),
    _row("crossscore", ["predict", "{t}/query/a.png", "--references", "{t}/refs", "--checkpoint", "{t}/badck",
                        "--out", "{t}/file.txt/out"], "{t}/file.txt/out: {t}/file.txt is a file, not a folder"),
    _row("crossscore", ["predict", "{t}/query/a.png", "--references", "{t}/refs", "--threads", "-1"],
         "--threads -1: must be >= 0"),
    _row("crossscore", ["predict", "{t}/query/a.png", "--references", "{t}/refs", "--device", "tpu"],
         "argument --device: invalid choice: 'tpu'"),
    _row("crossscore", ["test", "--data", "{t}/file.txt", "--checkpoint", "{t}/badck"],
         "{t}/file.txt: no such dataset folder"),
    _row("crossscore", ["test", "--data", "{t}/empty", "--checkpoint", "{t}/badck"], "{t}/empty: no renders found"),
    _row("crossscore", ["train", "--data", "{t}/empty", "--runs-dir", "{t}/runs"], "{t}/empty: no renders found"),
    _row("crossscore", ["train", "--data", "{t}/empty", "--init", "no-such-model"], "--init no-such-model: not found"),
    _row("crossscore", ["demo-data", "--out", "{t}/file.txt/demo"],
         "{t}/file.txt/demo: {t}/file.txt is a file, not a folder"),
    _row("crossscore", ["demo-data", "--out", "/proc/demo"], "/proc/demo: cannot write results here ("),
    _row("crossscore", ["demo-data", "--sources", "{t}/empty", "--out", "{t}/out"],
         "{t}/empty: needs a folder of at least 4 frames"),
    _row("crossscore", ["nope"], "argument COMMAND: invalid choice: 'nope'"),
    # --------------------------------------------------------------------------- report.py
    _row("report", ["{t}/missing", "--out", "{t}/rep"], "{t}/missing: no such file or folder"),
    _row("report", ["{t}/file.txt", "--out", "{t}/rep"], "{t}/file.txt: not a frame folder or a video"),
    _row("report", ["{t}/empty", "--out", "{t}/rep"], "{t}/empty: no frames (.png/.jpg/.jpeg), videos or sequence"),
    _row("report", ["{t}/renders", "--out", "{t}/file.txt/rep"], "{t}/file.txt"),
    _row("report", ["{t}/renders", "--gt", "{t}/missing", "--out", "{t}/rep"], "--gt {t}/missing: no such folder"),
    _row("report", ["{t}/renders", "--bootstrap", "10"], "--bootstrap 10: must be >= 100"),
    _row("report", ["{t}/renders", "--preset", "nope"], "--preset 'nope': unknown"),
    _row("report", ["{t}/renders", "--metrics", "crossscore"], "--metrics crossscore: needs --references"),
    # --------------------------------------------------------------------------- file system errors (any script)
    _row("app", ["{t}/renders/scene__m0", "--out", f"{{t}}/{LONG}/out"], f"{{t}}/{LONG}/out"),
    _row("report", ["{t}/renders", "--out", f"{{t}}/{LONG}/rep"],
         f"{{t}}/{LONG}/rep: File name too long; shorten the path or the names it is made of"),
    _row("crossscore", ["demo-data", "--out", f"{{t}}/{LONG}/demo"], "File name too long; shorten the path"),
    _row("crossscore", ["predict", "{t}/query/a.png", "--references", "{t}/refs", "--checkpoint", "{t}/badck",
                        "--out", f"{{t}}/{LONG}/out"], "File name too long; shorten the path"),
    _row("preprocess", ["--dry-run", "--plan-json", f"{{t}}/{LONG}/plan.json"], "File name too long"),
]


def check_one_error_line(rc: int, err: str, expect: str) -> None:
    """The contract of every case (module docstring)."""
    assert "Traceback" not in err, err
    assert rc == 2, (rc, err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error:" in ln.lower()]
    assert len(errors) == 1, err
    line = errors[0]
    assert line.startswith("error: ") or line.split(": ", 1)[1].startswith("error: "), line
    assert expect in line, (expect, line)
    assert all(ln.startswith(("INFO: ", "WARNING: ")) for ln in lines if ln != line), err


@pytest.fixture()
def in_process(bad, monkeypatch, capsys):
    """Run ``<script>.main(argv)`` as the user would: stderr (log lines included) captured, SIGTERM restored,
    runs/ in tmp, the current folder in tmp; returns (exit code, stderr)."""
    monkeypatch.setattr(consts, "RUNS_DIR", bad)  # evaluate.py's run folders: runs/<name> = {t}/<name>
    monkeypatch.chdir(bad / "empty")

    def go(script: str, argv: list[str]) -> tuple[int, str]:
        handler = logging.StreamHandler(sys.stderr)  # what setup_logging gives a user (pytest owns the root logger)
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        root, level, sigterm = logging.getLogger(), logging.getLogger().level, signal.getsignal(signal.SIGTERM)
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        capsys.readouterr()
        try:
            rc = SCRIPTS[script].main(argv)
        except SystemExit as e:  # argparse refuses a flag by exiting
            rc = e.code
        finally:
            root.removeHandler(handler)
            root.setLevel(level)
            signal.signal(signal.SIGTERM, sigterm)
        return rc, capsys.readouterr().err

    return go


@pytest.mark.parametrize("script, argv, expect", CASES)
def test_bad_input_is_one_error_line(script, argv, expect, bad, in_process):
    t = str(bad)
    rc, err = in_process(script, [a.replace("{t}", t) for a in argv])
    check_one_error_line(rc, err, expect.replace("{t}", t))


# A few in real processes: what a user's terminal shows, start to end (no traceback from imports or teardown).
SUBPROCESS_CASES = [
    _row("evaluate", ["--features", "{t}/trunc.npz", "--labels", "{t}/labels.json"], "{t}/trunc.npz: not a readable"),
    _row("train", ["--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    _row("preprocess", ["--dry-run", "--plan-json", "{t}/file.txt/plan.json"], "--plan-json {t}/file.txt/plan.json"),
    _row("crossscore", ["demo-data", "--out", "{t}/file.txt/demo"], "{t}/file.txt/demo: {t}/file.txt is a file"),
    _row("app", ["{t}/missing", "--out", "{t}/out"], "{t}/missing"),
]


@pytest.mark.parametrize("script, argv, expect", SUBPROCESS_CASES)
def test_bad_input_in_a_real_process(script, argv, expect, bad):
    t = str(bad)
    r = subprocess.run([sys.executable, str(ROOT / f"{script}.py"), *[a.replace("{t}", t) for a in argv]],
                       cwd=bad / "empty", capture_output=True, text=True, timeout=300)
    check_one_error_line(r.returncode, r.stderr, expect.replace("{t}", t))
