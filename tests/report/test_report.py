"""report.py as a user runs it: a made-up scene with ground truth (full-reference metrics; no weights needed),
the page read back and every number checked against report.csv, bad inputs, the cache, interrupts."""

import json
import os
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.report import folder as report_folder
from models.report import page
from models.report import run as report_run
from report import main
from tests.sequences import make_smooth, rows_of

METRICS = ["--metrics", "psnr", "ssim", "mae"]


def noisy(gt: Path, folder: Path, sigma: float, seed: int) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for p in sorted(gt.iterdir()):
        a = np.asarray(Image.open(p)).astype(float) + rng.normal(0, sigma, (40, 48, 3))
        Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8)).save(folder / p.name)
    return folder


@pytest.fixture
def scene(tmp_path):
    gt = make_smooth(tmp_path / "gt", n=12, size=(40, 48))
    s = tmp_path / "scene"
    for name, sigma in (("good", 2.0), ("mid", 6.0), ("bad", 24.0)):
        noisy(gt, s / name, sigma, seed=int(sigma))
    return s, gt


class Numbers(HTMLParser):
    """Every tagged number of the page: (scene, method, metric, field, against) -> (data-value, text)."""

    def __init__(self):
        super().__init__()
        self.found, self._open = {}, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "data-field" in a:
            self._open = ((a["data-scene"], a["data-method"], a["data-metric"], a["data-field"], a["data-against"]),
                          a["data-value"])

    def handle_data(self, data):
        if self._open:
            key, value = self._open
            assert key not in self.found, f"{key} twice on the page"
            self.found[key] = (value, data)
            self._open = None


def read_page(out: Path) -> dict:
    p = Numbers()
    p.feed((out / "index.html").read_text())
    return p.found


def test_every_number_on_the_page_is_in_the_csv_and_the_ranking_is_right(scene, tmp_path, capsys):
    s, gt = scene
    out = tmp_path / "report"
    assert main([str(s), "--gt", str(gt), "--out", str(out), *METRICS, "--quiet"]) == 0
    rows = rows_of(out / "report.csv")
    csv_values = {(r["scene"], r["method"], r["metric"], r["field"], r["against"]): r["value"] for r in rows}
    shown = read_page(out)
    assert set(shown) == set(csv_values) and len(shown) > 30
    for key, (value, text) in shown.items():
        assert float(value) == pytest.approx(float(csv_values[key]), rel=1e-12, abs=1e-12), key
        if key[3] == "rank":
            assert text == str(int(float(value)))
        elif key[3] == "prefer":
            assert text == f"{float(value):.0%}"
        else:
            assert text == page.fmt(float(value)), key
    by = {(r["method"], r["metric"], r["field"]): float(r["value"]) for r in rows if not r["against"]}
    for metric in ("psnr", "ssim", "mae"):
        assert by[("good", metric, "rank")] == 1 and by[("bad", metric, "rank")] == 3, metric
    bad_vs_good = [r for r in rows if r["method"] == "bad" and r["against"] == "good" and r["metric"] == "psnr"]
    assert bad_vs_good[0]["decision"] == "worse" and float(bad_vs_good[0]["value"]) < 0
    html = (out / "index.html").read_text()
    assert "<b>bad</b> is last with 95% confidence" in html
    assert "http://" not in html and "https://" not in html and "<script" not in html  # self-contained
    frames = rows_of(out / "frames.csv")
    assert len(frames) == 36 and {"psnr", "ssim", "mae"} <= set(frames[0])
    meta = json.loads((out / "report.json").read_text())
    assert meta["provenance"]["seed"] == 0 and "fullref" in meta["provenance"]["identities"]
    assert "good" in capsys.readouterr().out  # the printed table


def test_same_inputs_and_seed_give_the_same_csv(scene, tmp_path):
    s, gt = scene
    for out in ("r1", "r2"):
        assert main([str(s), "--gt", str(gt), "--out", str(tmp_path / out), *METRICS, "--quiet", "--seed", "3"]) == 0
    assert (tmp_path / "r1/report.csv").read_bytes() == (tmp_path / "r2/report.csv").read_bytes()


def test_bad_inputs_are_one_line_each_and_the_rest_is_reported(scene, tmp_path, capsys, caplog):
    s, gt = scene
    (s / "empty").mkdir()
    short = noisy(gt, s / "short", 3.0, seed=9)
    for p in sorted(short.iterdir())[6:]:
        p.unlink()
    (s / "mid" / "0003.png").write_bytes(b"not a png")  # unreadable
    big = s / "big"
    big.mkdir()
    for p in sorted(gt.iterdir()):
        Image.fromarray(np.zeros((80, 96, 3), np.uint8)).save(big / p.name)  # another size than the gt
    out = tmp_path / "report"
    code = main([str(s), "--gt", str(gt), "--out", str(out), *METRICS, "--quiet"])
    assert code == 1
    err = capsys.readouterr().err + caplog.text
    assert "Traceback" not in err
    assert "frame counts differ" in err and "short (6)" in err
    assert "0003.png" in err and "is 96x80 but the ground truth" in err
    assert "empty" in err
    names = {r["method"] for r in rows_of(out / "report.csv")}
    assert {"good", "bad", "mid", "short"} <= names and "big" not in names
    html = (out / "index.html").read_text()
    assert "0003.png" in html and "96x80" in html  # the failures are on the page too
    assert "scene: passed over 1 entry: 1 × a folder without frames (.png/.jpg/.jpeg): empty/" in html


def test_nothing_to_report_is_exit_2(tmp_path, capsys):
    (tmp_path / "scene" / "a").mkdir(parents=True)
    assert main([str(tmp_path / "scene"), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {tmp_path / 'scene'}: no frames") and "a/ (a folder " \
        "without frames" in err and not (tmp_path / "r").exists()


def test_bad_flags_are_one_line_before_anything_runs(scene, tmp_path, capsys):
    s, _ = scene
    assert main([str(s), "--metrics", "crossscore", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == "error: --metrics crossscore: needs --references (real photos of the scene " \
        "from other viewpoints)\n"
    assert main([str(s), "--gt", str(tmp_path / "nope"), "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == f"error: --gt {tmp_path / 'nope'}: no such folder; give the folder of " \
        "ground-truth frames named as the renders'\n"
    assert main([str(s), "--gt", str(s / "good"), "--metrics", "nosuch", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.startswith("error: --metrics: 'nosuch' is neither a metric of preset nerfbaselines")
    assert main([str(s), "--preset", "nope", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.startswith("error: --preset 'nope': unknown; choose one of nerfbaselines")
    assert not (tmp_path / "r").exists()


def test_cache_computes_only_what_is_new(scene, tmp_path, monkeypatch):
    s, gt = scene
    out = tmp_path / "report"
    args = [str(s), "--gt", str(gt), "--out", str(out), *METRICS, "--quiet"]
    assert main(args) == 0
    calls = []
    real = report_run.measure.__globals__["compute_parts"]
    monkeypatch.setitem(report_run.measure.__globals__, "compute_parts",
                        lambda m, *a: calls.append(m.name) or real(m, *a))
    assert main(args) == 0 and calls == []
    noisy(gt, s / "new", 10.0, seed=10)
    assert main(args) == 0 and calls == ["new"]
    assert main([*args, "--redo"]) == 0 and sorted(calls[1:]) == ["bad", "good", "mid", "new"]


def test_an_interrupted_report_leaves_the_previous_one_whole(scene, tmp_path, monkeypatch):
    s, gt = scene
    out = tmp_path / "report"
    args = [str(s), "--gt", str(gt), "--out", str(out), *METRICS, "--quiet"]
    assert main(args) == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and "cache" not in p.parts}
    noisy(gt, s / "new", 10.0, seed=10)

    def stop(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(report_folder, "csv_bytes", stop)  # while the files are staged, under the lock
    assert main(args) == 130
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and "cache" not in p.parts}
    assert after == before
    assert len(list((out / "cache").glob("fullref-*.json"))) == 4  # the new method's numbers are kept
    assert not any(p.name == ".staging" for p in out.rglob("*"))


def test_three_dgs_tree_pairs_renders_with_their_gt(tmp_path):
    gt = make_smooth(tmp_path / "model/test/ours_30000/gt", n=6, size=(40, 48))
    noisy(gt, tmp_path / "model/test/ours_30000/renders", 4.0, seed=4)
    noisy(gt, tmp_path / "model/test/ours_7000/renders", 12.0, seed=12)
    os.symlink(gt, tmp_path / "model/test/ours_7000/gt")
    out = tmp_path / "r"
    assert main([str(tmp_path / "model"), "--out", str(out), "--metrics", "psnr", "ssim", "--preset", "3dgs",
                 "--quiet"]) == 0
    csv_rows = rows_of(out / "report.csv")
    assert {r["preset"] for r in csv_rows} == {"3dgs"}
    rows = {(r["method"], r["metric"], r["field"]): float(r["value"]) for r in csv_rows if not r["against"]}
    assert rows[("test/ours_30000", "psnr", "rank")] == 1 and rows[("test/ours_7000", "psnr", "value")] < \
        rows[("test/ours_30000", "psnr", "value")]
