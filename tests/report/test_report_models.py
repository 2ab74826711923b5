"""report.py with the models: NVS-SQA (released weights) and CrossScore (the committed demo model)."""

import json

import pytest

from report import main
from tests.report.test_report import Numbers
from tests.sequences import make_smooth, rows_of


@pytest.fixture
def path_scene(tmp_path, released_dir):
    s = tmp_path / "scene"
    make_smooth(s / "smooth", n=64, size=(80, 96), seed=0)
    make_smooth(s / "other" / "frames", n=64, size=(80, 96), seed=5)
    return s


def test_jod_with_interval_curve_and_warnings(path_scene, tmp_path):
    out = tmp_path / "r"
    assert main([str(path_scene), "--out", str(out), "--quiet", "--bootstrap", "500"]) == 0
    rows = {(r["method"], r["field"]): r for r in rows_of(out / "report.csv") if r["metric"] == "jod"
            and not r["against"]}
    meta = json.loads((out / "report.json").read_text())
    methods = {m["name"]: m for m in meta["scenes"][0]["methods"]}
    for m in ("smooth", "other"):
        mean, low, high = (float(rows[(m, f)]["value"]) for f in ("mean", "low", "high"))
        assert low <= mean <= high and rows[(m, "value")]["unit"] == "windows"
        units = methods[m]["jod"]["units"]  # 64 frames: ten disjoint windows of 6 frames, the remainder left out
        assert rows[(m, "value")]["units"] == "10" and units["starts"] == list(range(0, 60, 6))
        assert mean == pytest.approx(sum(units["scores"]) / 10)
        # 80x96 frames are below the validated size: flagged, so neither compared nor ranked
        assert "shorter side 80 px" in rows[(m, "value")]["flags"] and rows[(m, "rank")]["value"] == ""
    assert methods["smooth"]["jod"]["curve"]["starts"] == [0, 15, 30, 34]  # the last window ends at the last frame
    assert meta["provenance"]["identities"]["jod"]["checkpoint_sha256"]
    html = (out / "index.html").read_text()
    assert "smooth: NVS-SQA score not to be trusted — shorter side 80 px" in html and "class=flag" in html
    p = Numbers()
    p.feed(html)
    assert {k[2] for k in p.found} == {"jod"} and len(p.found) == len(rows_of(out / "report.csv"))


def test_crossscore_part_warns_about_the_demo_model(tmp_path):
    scene = tmp_path / "scene"  # 12 frames a method: enough units to compare (>= 6), a fifth of 64
    make_smooth(scene / "smooth", n=12, size=(80, 96), seed=0)
    make_smooth(scene / "other" / "frames", n=12, size=(80, 96), seed=5)
    refs = make_smooth(tmp_path / "photos", n=3, size=(80, 96), seed=9)
    out = tmp_path / "r"
    code = main([str(scene), "--references", str(refs), "--metrics", "crossscore", "--out", str(out),
                 "--quiet", "--bootstrap", "200"])
    assert code == 0
    rows = [r for r in rows_of(out / "report.csv") if r["metric"] == "crossscore" and r["field"] == "value"
            and not r["against"]]
    assert len(rows) == 2 and all(0 <= float(r["value"]) <= 1 for r in rows)
    # the demonstration model's values are flagged, so nothing is decided or ranked on them
    assert all("demonstration" in r["flags"] for r in rows)
    pairs = [r for r in rows_of(out / "report.csv") if r["metric"] == "crossscore" and r["field"] == "delta"]
    assert pairs and all(r["decision"] == "tie" and "flagged" in r["why"] for r in pairs)
    assert "demonstration" in (out / "index.html").read_text()
    assert len(rows_of(out / "frames.csv")) == 24
