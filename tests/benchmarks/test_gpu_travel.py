"""benchmarks/gpu_travel.py (make gpu-prepare): what travels to the GPU machine, and whether it fits."""

from __future__ import annotations

import pytest

from benchmarks import gpu_travel as t
from consts import ROOT
from models.errors import InputError


def test_pins_come_from_requirements_and_a_missing_pin_is_one_line(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("# comment\ntorch==2.13.0\nPyFVVDP==1.2.2  # the FovVideoVDP target\nscipy>=1\n")
    assert t.pins(("pyfvvdp", "torch"), req) == ["PyFVVDP==1.2.2", "torch==2.13.0"]
    with pytest.raises(InputError, match=r"requirements.txt: no exact pin \(name==version\) for scipy, av$"):
        t.pins(("scipy", "av"), req)
    assert all("==" in p for p in t.pins())  # the real file pins every travelling package


def test_image_pins_take_the_version_seen_there_else_ours(tmp_path, monkeypatch):
    image = tmp_path / "image.txt"
    image.write_text("# the image\ntorch\ntransformers==5.17.0\n")
    got = t.image_pins(image)
    assert "transformers==5.17.0" in got and len(got) == 2
    assert [p for p in got if p.startswith("torch==")] == [p for p in t.pins(("torch",))]
    real = {p.split("==")[0] for p in t.image_pins()}
    assert not real & {"av", *t.TRAVEL_PACKAGES}  # what the image lacks must not be in the rehearsal's venv


def test_size_table_shows_the_margin():
    table = t.size_table([("tree", 30 * 2**20), (".gpu", 2 * 2**20)], limit=64 * 2**20)
    assert table.splitlines()[-1].split() == ["total", "32.00", "MiB", "of", "64", "MiB", "(+32.00", "MiB", "left)"]
    assert "-1.00 MiB left" in t.size_table([("tree", 65 * 2**20)], limit=64 * 2**20)


def test_device_command_reads_only_what_travels():
    cmd = t.device_command(t.TRAVEL_DIR)
    assert cmd.startswith("PYTHONPATH=$PWD/.gpu/site ") and "--reference .gpu/reference --out $OUT" in cmd
    assert len(cmd) < 2000 and ".venv" not in cmd  # the device call's limit; no venv there
    assert [p.relative_to(ROOT).as_posix() for p in t.carried(t.TRAVEL_DIR)] == [
        ".gpu", "checkpoints/v0.0.1", "checkpoints/fullref/lpips_v0.1_lin.pth", "checkpoints/fullref/dists.pth"]
    assert len(t.carried(t.TRAVEL_DIR)) <= 8  # the device call's carry takes 8 paths at most


def test_the_travelling_folder_is_pure_python_and_fits_with_the_tree(tmp_path, released_dir):
    """pip installs the travelling packages (from PyPI, as make gpu-prepare does); with the tree, the released
    weights and the small full-reference weights they fit the device call's 64 MiB."""
    reqs = t.install(tmp_path)
    site = tmp_path / "site"
    assert [r.split("==")[0] for r in reqs] == list(t.TRAVEL_PACKAGES)
    for mod in ("pyfvvdp", "ffmpeg", "future", "submitit"):
        assert (site / mod / "__init__.py").is_file()
    assert not list(site.rglob("*.so")) and not list(site.rglob("*.pyc")) and not (site / "bin").exists()
    tree = sum(p.stat().st_size for p in t.tree_files())
    fullref = sum(t.folder_bytes(p) for p in t.FULLREF_CARRIED)
    assert fullref < 2**20  # 27 kB: the backbones (69 MB) stay here
    total = tree + t.folder_bytes(tmp_path) + t.folder_bytes(released_dir) + fullref
    assert total < t.LIMIT_BYTES, t.size_table([("tree", tree), ("travel", total - tree)])


def test_reference_is_copied_or_refused_in_one_line(tmp_path):
    (tmp_path / "ref").mkdir()
    (tmp_path / "ref" / "features.npz").write_bytes(b"x")
    with pytest.raises(InputError, match=r"^--reference .*ref: no scores.json \(the release's reference values"):
        t.copy_reference(tmp_path / "ref", tmp_path / "out")
    (tmp_path / "ref" / "scores.json").write_text("{}")
    t.copy_reference(tmp_path / "ref", tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out" / "reference").iterdir()) == ["features.npz", "scores.json"]


def test_out_must_be_inside_the_repository(capsys, tmp_path, released_dir):
    assert t.main(["--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err == (f"error: --out {tmp_path / 'x'}: must be a folder inside the repository "
                                       "(it travels with the tree)\n")  # fmt: skip
