"""A report folder accumulates, like app.py's --out: a second scene joins the page, a scene reported again replaces
its own section only, concurrent runs into one folder both end on the page, --only makes a page of this run's
scenes, and a kept scene that cannot be read is one warning."""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models import cli
from models.journal import file_name
from models.report.config import ReportConfig
from models.report.folder import KEPT
from models.results import locked
from report import main
from tests.sequences import make_smooth, rows_of

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--metrics", "psnr", "ssim", "--quiet", "--bootstrap", "200"]


def make_scene(root: Path, name: str, methods: dict[str, float], seed: int = 0) -> tuple[Path, Path]:
    """``root/name/<method>``: the ground truth plus Gaussian noise of each method's sigma, four times as much on
    the last frame (a failure each method's panels show); the ground truth in ``root/name-gt``."""
    gt = make_smooth(root / f"{name}-gt", n=6, size=(40, 48), seed=seed)
    rng = np.random.default_rng(seed)
    for method, sigma in methods.items():
        (root / name / method).mkdir(parents=True)
        frames = sorted(gt.iterdir())
        for p in frames:
            noise = rng.normal(0, sigma * (4 if p == frames[-1] else 1), (40, 48, 3))
            a = np.asarray(Image.open(p)).astype(float) + noise
            Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8)).save(root / name / method / p.name)
    return root / name, gt


def args(scene: Path, gt: Path, out: Path, *extra: str) -> list[str]:
    return [str(scene), "--gt", str(gt), "--out", str(out), *FAST, *extra]


def on_page(out: Path) -> dict[str, set]:
    """The scenes (and their methods) of every file of the report."""
    html = (out / "index.html").read_text()
    meta = json.loads((out / "report.json").read_text())
    return {
        "csv": {(r["scene"], r["method"]) for r in rows_of(out / "report.csv")},
        "frames": {(r["scene"], r["method"]) for r in rows_of(out / "frames.csv")},
        "json": {(s["scene"], m["name"]) for s in meta["scenes"] for m in s["methods"]},
        "page": {(s, m) for s, m in {(s["scene"], m["name"]) for s in meta["scenes"] for m in s["methods"]}
                 if f'data-scene="{s}" data-method="{m}"' in html},
        "kept": {json.loads(p.read_text())["scene"] for p in (out / KEPT).iterdir()},
    }


def figures_of(out: Path, scene: str) -> set[str]:
    return {p.name for p in (out / "figures").iterdir() if p.name.startswith(file_name(scene)[:-11])}


@pytest.fixture
def two(tmp_path):
    a = make_scene(tmp_path, "garden", {"nerf": 3.0, "gs": 12.0}, seed=1)
    b = make_scene(tmp_path, "bicycle", {"zip": 4.0, "mip": 9.0}, seed=2)
    return a, b, tmp_path / "report"


def test_a_second_scene_joins_the_page_in_every_file(two, capsys):
    (a, a_gt), (b, b_gt), out = two
    assert main(args(a, a_gt, out)) == 0
    section_a = json.loads((out / KEPT / f"{file_name('garden')}.json").read_text())["section"]
    capsys.readouterr()
    assert main(args(b, b_gt, out)) == 0
    assert "the page also holds 1 earlier scene(s): garden" in capsys.readouterr().out
    both = {("garden", "nerf"), ("garden", "gs"), ("bicycle", "zip"), ("bicycle", "mip")}
    found = on_page(out)
    assert all(found[k] == both for k in ("csv", "frames", "json", "page")) and found["kept"] == {"garden", "bicycle"}
    assert section_a in (out / "index.html").read_text()  # garden's section as its run made it
    assert figures_of(out, "garden") and figures_of(out, "bicycle")
    meta = json.loads((out / "report.json").read_text())
    assert [s["scene"] for s in meta["scenes"]] == ["bicycle", "garden"]  # name order
    prov = {s["scene"]: s["provenance"] for s in meta["scenes"]}
    for scene, (path, gt) in (("garden", (a, a_gt)), ("bicycle", (b, b_gt))):
        argv = shlex.split(prov[scene]["command"])
        assert argv[:2] == ["python", "report.py"]  # the command that reported it parses back to its config
        assert cli.parse(ReportConfig, argv[2:]).config == cli.parse(ReportConfig, args(path, gt, out)).config
        assert {Path(i["path"]).parent.name for i in prov[scene]["inputs"].values()} == {scene}
        assert prov[scene]["created"] and prov[scene]["torch"] and prov[scene]["identities"]["fullref"]


def test_a_scene_reported_again_replaces_its_own_section_only(two, tmp_path):
    (a, a_gt), (b, b_gt), out = two
    assert main(args(a, a_gt, out)) == 0
    assert main(args(b, b_gt, out)) == 0
    b_rows = [r for r in rows_of(out / "report.csv") if r["scene"] == "bicycle"]
    b_figures = {p: (out / "figures" / p).read_bytes() for p in figures_of(out, "bicycle")}
    old_gs = {p.name for p in (out / "figures").glob(f"{file_name('garden', 'gs')}-*")}
    assert old_gs  # gs has failure panels
    (a / "gs").rename(a / "splat")
    assert main(args(a, a_gt, out)) == 0
    found = on_page(out)
    assert found["csv"] == {("garden", "nerf"), ("garden", "splat"), ("bicycle", "zip"), ("bicycle", "mip")}
    assert all(found[k] == found["csv"] for k in ("frames", "json", "page"))
    assert [r for r in rows_of(out / "report.csv") if r["scene"] == "bicycle"] == b_rows
    assert {p: (out / "figures" / p).read_bytes() for p in figures_of(out, "bicycle")} == b_figures
    assert not any((out / "figures" / p).exists() for p in old_gs)  # the replaced method's figures are gone
    assert list((out / "figures").glob(f"{file_name('garden', 'splat')}-*"))


def test_only_makes_a_page_of_this_runs_scenes(two):
    (a, a_gt), (b, b_gt), out = two
    assert main(args(a, a_gt, out, "--maps")) == 0
    assert (out / "maps" / file_name("garden")).is_dir()
    assert main(args(b, b_gt, out, "--only")) == 0
    found = on_page(out)
    assert found["csv"] == found["page"] == {("bicycle", "zip"), ("bicycle", "mip")} and found["kept"] == {"bicycle"}
    assert not figures_of(out, "garden") and not (out / "maps").exists()
    assert len(list((out / "cache").glob("fullref-*.json"))) == 4  # the cache stays


def test_a_245_character_method_name_then_another_scene_into_the_same_out(tmp_path):
    scene, gt = make_scene(tmp_path, "garden", {"nerf": 3.0, "gs": 12.0})
    long_name = "m" * 245
    out = tmp_path / "report"
    assert main(["--method", f"{long_name}={scene / 'nerf'}", "--method", f"short={scene / 'gs'}", "--gt", str(gt),
                 "--out", str(out), *FAST]) == 0
    other, other_gt = make_scene(tmp_path, "bicycle", {"zip": 4.0, "mip": 9.0}, seed=2)
    assert main(args(other, other_gt, out)) == 0
    found = on_page(out)
    assert found["csv"] == {("garden", long_name), ("garden", "short"), ("bicycle", "zip"), ("bicycle", "mip")}
    assert all(found[k] == found["csv"] for k in ("frames", "json", "page"))
    assert not any(p.name.startswith(".staging") for p in out.iterdir())


def test_concurrent_runs_into_one_folder_both_end_on_the_page(two):
    """Both processes wait for the folder's lock (held here until /proc/locks shows both waiting), then merge one
    after the other: each reads what the other wrote."""
    (a, a_gt), (b, b_gt), out = two
    if not Path("/proc/locks").is_file():
        pytest.skip("needs /proc/locks (Linux) to see both runs wait for the lock")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with locked(out):
        procs = [subprocess.Popen([sys.executable, str(ROOT / "report.py"), *args(s, gt, out)], cwd=ROOT, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for s, gt in ((a, a_gt), (b, b_gt))]  # fmt: skip
        deadline = time.monotonic() + 300
        while not all(waiting(p.pid) for p in procs):
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), [p.communicate()
                                                                                          for p in procs]
            time.sleep(0.2)
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    found = on_page(out)
    assert found["csv"] == {("garden", "nerf"), ("garden", "gs"), ("bicycle", "zip"), ("bicycle", "mip")}
    assert all(found[k] == found["csv"] for k in ("frames", "json", "page")) and found["kept"] == {"garden", "bicycle"}


def waiting(pid: int) -> bool:
    """Whether process ``pid`` waits for a lock (a ``->`` line of /proc/locks)."""
    return any(line.split()[1] == "->" and line.split()[5] == str(pid)
               for line in Path("/proc/locks").read_text().splitlines() if len(line.split()) > 5)


@pytest.mark.parametrize("damage", ["not json", "a folder", "another format", "rows that are not rows",
                                    "another scene's name"])
def test_a_kept_scene_that_cannot_be_read_is_one_warning_and_dropped(two, damage, caplog, capsys):
    (a, a_gt), (b, b_gt), out = two
    assert main(args(a, a_gt, out)) == 0
    kept = out / KEPT / f"{file_name('garden')}.json"
    record = json.loads(kept.read_text())
    if damage == "not json":
        kept.write_text('{"format": 1, "scene": "gar')
    elif damage == "a folder":
        kept.unlink()
        kept.mkdir()
    elif damage == "another format":
        kept.write_text(json.dumps({**record, "format": 0}))
    elif damage == "rows that are not rows":
        kept.write_text(json.dumps({**record, "report_rows": [1, 2]}))
    else:
        kept.rename(out / KEPT / f"{file_name('other')}.json")
        kept = out / KEPT / f"{file_name('other')}.json"
    capsys.readouterr()
    with caplog.at_level(logging.WARNING):
        assert main(args(b, b_gt, out)) == 0
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and lines[0].startswith(str(kept)) and "dropped from the page" in lines[0], lines
    assert "Traceback" not in capsys.readouterr().err
    found = on_page(out)
    assert found["csv"] == found["page"] == {("bicycle", "zip"), ("bicycle", "mip")} and found["kept"] == {"bicycle"}
    assert not os.path.lexists(kept) and not figures_of(out, "garden")


def test_scenes_of_a_page_without_kept_entries_are_named_once(two, caplog):
    (a, a_gt), (b, b_gt), out = two
    assert main(args(a, a_gt, out)) == 0
    for p in (out / KEPT).iterdir():
        p.unlink()  # as a page made before reports accumulated
    with caplog.at_level(logging.WARNING):
        assert main(args(b, b_gt, out)) == 0
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert lines == [f"{out}: scene(s) garden of the earlier page have no {KEPT}/ entry (a page made before reports "
                     "accumulated): not kept; report them again to put them back"]
    assert on_page(out)["csv"] == {("bicycle", "zip"), ("bicycle", "mip")}
