"""The report's demo scene maker and page check (benchmarks/report_scene.py, benchmarks/report_check.py)."""

import numpy as np
import pytest

from benchmarks import report_check, report_scene
from models.errors import InputError


def test_path_walks_forward_and_back():
    frames = np.arange(4)
    assert report_scene.path_of(frames, 10).tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]


def test_demo_scene_links_the_examples_and_degrades_a_stretch(tmp_path):
    out = tmp_path / "Giraffe"
    assert report_scene.make(report_scene.SceneConfig(out=str(out), kind="demo")) == 0
    assert sorted(p.name for p in out.iterdir()) == ["IBRNet-C", "NeRF", "NeRF-degraded"]
    assert (out / "NeRF").is_symlink() and not (out / "NeRF-degraded").is_symlink()
    from models.pixels import read_image

    bad = sorted((out / "NeRF-degraded").iterdir())
    good = sorted((out / "NeRF").iterdir())
    assert len(bad) == len(good) == 120

    def diff(i):
        return float(np.abs(read_image(bad[i]).astype(float) - read_image(good[i]).astype(float)).mean())

    a, b = report_scene.FAIL_SPAN
    assert diff(a) > 2 * diff(a - 1) and diff(b - 1) > 2 * diff(b)  # the strong blur is on [a, b) only


def test_page_check_refuses_what_leaves_the_file(tmp_path):
    page = tmp_path / "index.html"
    report_check.check_source('<img src="data:image/png;base64,AAA"><a href="#x">x</a>', page)
    with pytest.raises(InputError, match="https://cdn.example/x.css.*not self-contained"):
        report_check.check_source('<link href="https://cdn.example/x.css">', page)
    with pytest.raises(InputError, match="has a script"):
        report_check.check_source("<script>1</script>", page)
    assert report_check.tagged('<span data-field="value">1</span><span data-field="rank">2</span>') == 2
