"""crossscore.py's flags: one subparser per config, defaults from the config, round trips, and no NVS-SQA imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

import crossscore
from benchmarks.crossscore_report import ReportConfig
from benchmarks.crossscore_report import parse_args as report_args
from consts import ROOT
from models import cli
from models.crossscore.options import CrossScoreTrainConfig, DemoDataConfig, PredictConfig, TestConfig


@pytest.mark.parametrize("argv, cls", [
    (["predict", "q.png", "--references", "refs"], PredictConfig),
    (["test", "--data", "d"], TestConfig),
    (["train", "--data", "d"], CrossScoreTrainConfig),
    (["demo-data"], DemoDataConfig),
])
def test_defaults_come_from_the_config(argv, cls):
    cfg = crossscore.parse_args(argv)
    assert type(cfg) is cls
    given = {"query": "q.png", "references": "refs", "data": "d"}
    assert cfg == cls(**{k: v for k, v in given.items() if hasattr(cls(), k)})


@pytest.mark.parametrize("argv", [
    ["predict", "renders", "--references", "refs", "--gt", "gt", "--n-ref", "3", "--seed", "7", "--device", "auto",
     "--short-side", "0", "--quiet"],
    ["test", "--data", "d", "--baseline", "constant", "--n-ref", "2", "--threads", "1", "--out", "o"],
    ["train", "--data", "d", "--backbone", "tiny", "--no-amp", "--resume", "--lr", "0.001", "--out-checkpoint", "c"],
    ["demo-data", "--sources", "a", "b", "--width", "28", "--seed", "1"],
])
def test_to_argv_round_trip(argv):
    cfg = crossscore.parse_args(argv)
    assert crossscore.parse_args([argv[0], *cli.to_argv(cfg)]) == cfg


@pytest.mark.parametrize("argv", [
    ["predict", "--references", "refs"],  # QUERY is required
    ["predict", "q.png"],  # --references is required
    ["predict", "q.png", "--references", "r", "--batch-size", "0"],
    ["test", "--data", "d", "--baseline", "mean"],
    ["test", "--data", "d", "--n-ref", "-2"],
    ["train", "--steps", "3"],  # --data is required
    ["train", "--data", "d", "--log-every", "0"],
    ["nope"],
])
def test_bad_flags_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        crossscore.parse_args(argv)
    assert e.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_report_flags():
    cfg = report_args(["--data", "d", "--checkpoint", "c", "--noref", "n", "--threads", "1"])
    assert cfg == ReportConfig(data="d", checkpoint="c", noref="n", threads=1)
    with pytest.raises(SystemExit):
        report_args(["--data", "d"])


def test_no_nvs_sqa_module_is_imported():
    code = ("import sys, crossscore, benchmarks.crossscore_report, models.crossscore.predict, "
            "models.crossscore.evaluate, models.crossscore.train, models.crossscore.demo, models.crossscore.scorer\n"
            "bad = [m for m in sys.modules if m.split('.')[:2] in (['models', 'nvs_sqa'], ['models', 'training'], "
            "['models', 'evaluation'])]\nprint(bad)\nsys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("argv", [["--help"], ["predict", "--help"], ["test", "--help"], ["train", "--help"],
                                  ["demo-data", "--help"]])
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as e:
        crossscore.parse_args(argv)
    assert e.value.code == 0 and "usage:" in capsys.readouterr().out


def test_help_needs_no_torch():
    """--help and flag errors stay fast: the options import neither torch nor OpenCV."""
    code = "import sys, crossscore\nsys.exit(int('torch' in sys.modules or 'cv2' in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
