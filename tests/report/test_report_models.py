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
    for m in ("smooth", "other"):
        value, low, high = (float(rows[(m, f)]["value"]) for f in ("value", "low", "high"))
        assert low <= value <= high and rows[(m, "value")]["unit"] == "windows"
        assert rows[(m, "value")]["units"] == "2"  # 64 frames: windows 0-30 and 30-60 do not overlap
    meta = json.loads((out / "report.json").read_text())
    methods = {m["name"]: m for m in meta["scenes"][0]["methods"]}
    assert methods["smooth"]["jod"]["curve"]["starts"] == [0, 15, 30, 34]  # the last window ends at the last frame
    assert meta["provenance"]["identities"]["jod"]["checkpoint_sha256"]
    html = (out / "index.html").read_text()
    assert "outside the validated range" in html  # 80x96 frames are below the validated size
    p = Numbers()
    p.feed(html)
    assert {k[2] for k in p.found} == {"jod"} and len(p.found) == len(rows_of(out / "report.csv"))


def test_crossscore_part_warns_about_the_demo_model(path_scene, tmp_path):
    refs = make_smooth(tmp_path / "photos", n=3, size=(80, 96), seed=9)
    out = tmp_path / "r"
    code = main([str(path_scene), "--references", str(refs), "--metrics", "crossscore", "--out", str(out),
                 "--quiet", "--bootstrap", "200"])
    assert code == 0
    rows = [r for r in rows_of(out / "report.csv") if r["metric"] == "crossscore" and r["field"] == "value"
            and not r["against"]]
    assert len(rows) == 2 and all(0 <= float(r["value"]) <= 1 for r in rows)
    assert "demonstration" in (out / "index.html").read_text()
    assert len(rows_of(out / "frames.csv")) == 128
