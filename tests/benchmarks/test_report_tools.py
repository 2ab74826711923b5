"""The report's demo scene maker and page check (benchmarks/report_scene.py, benchmarks/report_check.py)."""

import numpy as np
import pytest

from benchmarks import report_check, report_scene
from models.errors import InputError


def test_path_walks_forward_and_back():
    frames = np.arange(4)
    assert report_scene.path_of(frames, 10).tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]


def test_demo_scene_links_the_examples_and_degrades_a_stretch(tmp_path, monkeypatch):
    real, made = report_scene.example, {}

    def example(name):  # the frames at 1/4 size: the same scene, 1/16 of the pixels to blur, noise and write
        made[name] = np.ascontiguousarray(real(name)[:, ::4, ::4])
        return made[name]

    monkeypatch.setattr(report_scene, "example", example)
    out = tmp_path / "Giraffe"
    assert report_scene.make(report_scene.SceneConfig(out=str(out), kind="demo")) == 0
    assert sorted(p.name for p in out.iterdir()) == ["IBRNet-C", "NeRF", "NeRF-degraded", "NeRF-noisy"]
    assert (out / "NeRF").is_symlink() and (out / "IBRNet-C").is_symlink()
    assert (out / "NeRF").resolve() == (report_scene.EXAMPLES_DIR / report_scene.NERF).resolve()
    assert not (out / "NeRF-degraded").is_symlink() and not (out / "NeRF-noisy").is_symlink()
    from models.pixels import read_image

    clip = made[report_scene.NERF]
    bad, noisy = sorted((out / "NeRF-degraded").iterdir()), sorted((out / "NeRF-noisy").iterdir())
    assert len(bad) == len(noisy) == len(clip) == len(list((out / "NeRF").iterdir())) == 120

    def diff(files, i):
        return float(np.abs(read_image(files[i]).astype(float) - clip[i].astype(float)).mean())

    a, b = report_scene.FAIL_SPAN
    assert diff(bad, a) > 2 * diff(bad, a - 1) and diff(bad, b - 1) > 2 * diff(bad, b)  # the strong blur: [a, b)
    residual = read_image(noisy[0]).astype(float) - clip[0].astype(float)  # noise of sigma NOISY, less what JPEG
    assert 0.5 * report_scene.NOISY < residual.std() < 1.1 * report_scene.NOISY  # q95 4:2:0 takes from the chroma
    assert abs(residual.mean()) < 1


def test_page_check_refuses_what_leaves_the_file(tmp_path):
    page = tmp_path / "index.html"
    report_check.check_source('<img src="data:image/png;base64,AAA"><a href="#x">x</a>', page)
    with pytest.raises(InputError, match="https://cdn.example/x.css.*not self-contained"):
        report_check.check_source('<link href="https://cdn.example/x.css">', page)
    with pytest.raises(InputError, match="has a script"):
        report_check.check_source("<script>1</script>", page)
    assert report_check.tagged('<span data-field="value">1</span><span data-field="rank">2</span>') == 2
