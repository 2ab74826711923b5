"""report.py takes a project as it lies on disk: one scene from several trees, methods by name, one rule for frames,
pairing by stem or by a video's frame index, each problem once."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.discovery import NO_FRAMES, NOT_A_FRAME, SUBFOLDER
from models.errors import InputError
from models.report.scene import FrameProblems, group_inputs, labels, load_scene
from models.video import encode
from report import main
from tests.sequences import make_smooth, rows_of

PSNR = ["--metrics", "psnr", "--quiet"]


def noisy_frames(gt: Path, sigma: float, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for p in sorted(gt.iterdir()):
        a = np.asarray(Image.open(p)).astype(float) + rng.normal(0, sigma, (40, 48, 3))
        out.append(np.clip(np.rint(a), 0, 255).astype(np.uint8))
    return out


def save(frames: list[np.ndarray], folder: Path, ext: str = ".png") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, a in enumerate(frames):
        Image.fromarray(a).save(folder / f"{i:04d}{ext}")
    return folder


def three_dgs_run(root: Path, gt_src: Path, sigma: float, seed: int, iters=(30000,)) -> Path:
    """A 3DGS output/<run>/ tree: test/ours_<iter>/{renders,gt} and the files beside that are not renders."""
    for it in iters:
        leaf = root / "test" / f"ours_{it}"
        save(noisy_frames(gt_src, sigma, seed + it), leaf / "renders")
        save([np.asarray(Image.open(p)) for p in sorted(gt_src.iterdir())], leaf / "gt")
    (root / "point_cloud" / "iteration_30000").mkdir(parents=True)
    (root / "point_cloud" / "iteration_30000" / "point_cloud.ply").write_bytes(b"ply")
    (root / "cfg_args").write_text("Namespace()")
    return root


@pytest.fixture
def gt(tmp_path):
    return make_smooth(tmp_path / "truth", n=6, size=(40, 48))


def values(out: Path, field: str = "value") -> dict[str, float]:
    return {r["method"]: float(r["value"]) for r in rows_of(out / "report.csv") if r["field"] == field
            and not r["against"]}


# ------------------------------------------------------------------------------------------ naming
def test_labels_are_what_tells_the_inputs_apart(tmp_path):
    assert labels([tmp_path / "runs_a" / "garden", tmp_path / "runs_b" / "garden"]) == ["runs_a", "runs_b"]
    assert labels([tmp_path / "x/a/runs/garden", tmp_path / "y/a/runs/garden", tmp_path / "b/runs/garden"]) == \
        ["x/a", "y/a", "b"]
    assert labels([tmp_path / "garden", tmp_path / "runs_b" / "garden"]) == [tmp_path.name, "runs_b"]


def test_two_3dgs_trees_of_one_scene_are_one_scene_of_two_methods(tmp_path, gt, caplog):
    a = three_dgs_run(tmp_path / "runs_a" / "garden", gt, 3.0, 1)
    b = three_dgs_run(tmp_path / "runs_b" / "garden", gt, 12.0, 2)
    out = tmp_path / "r"
    with caplog.at_level(logging.WARNING):
        assert main([str(a), str(b), "--out", str(out), "--preset", "3dgs", *PSNR]) == 1  # passed-over files: 1
    psnr = values(out)
    assert set(psnr) == {"runs_a", "runs_b"} and psnr["runs_a"] > psnr["runs_b"]
    assert {r["scene"] for r in rows_of(out / "report.csv")} == {"garden"}
    passed = [m for m in caplog.messages if "passed over" in m]
    assert len(passed) == 1 and passed[0].startswith("garden: passed over 4 entries: ")
    assert "runs_a/garden/cfg_args, runs_a/garden/point_cloud/iteration_30000/point_cloud.ply, runs_b/garden/cfg_args" \
        " (+1 more)" in passed[0]  # fmt: skip


def test_trees_with_several_renders_keep_the_path_after_the_label(tmp_path, gt):
    a = three_dgs_run(tmp_path / "runs_a" / "garden", gt, 3.0, 1, iters=(7000, 30000))
    b = three_dgs_run(tmp_path / "runs_b" / "garden", gt, 6.0, 2)
    scene = load_scene("garden", [a, b])
    assert [m.name for m in scene.methods] == ["runs_a/test/ours_7000", "runs_a/test/ours_30000", "runs_b"]
    assert all(len(m.pairs) == 6 for m in scene.methods)
    with pytest.raises(InputError, match="given twice for scene 'garden'"):
        load_scene("garden", [a, tmp_path / "runs_a" / "garden" / ".." / "garden"])


def test_methods_by_name_keep_the_users_name(tmp_path, gt):
    a = save(noisy_frames(gt, 3.0, 1), tmp_path / "runs_a" / "garden" / "test" / "ours_30000" / "renders")
    save([np.asarray(Image.open(p)) for p in sorted(gt.iterdir())], a.parent / "gt")  # found beside the render
    b = save(noisy_frames(gt, 9.0, 2), tmp_path / "elsewhere" / "frames")
    long_name = "m" * 245
    odd = "ours (λ=0.5) / v2 ✓"
    out = tmp_path / "r"
    assert main(["--method", f"{long_name}={a}", "--method", f"{odd}={b}", "--gt", str(gt), "--out", str(out),
                 *PSNR]) == 0
    assert set(values(out)) == {long_name, odd}
    assert {r["scene"] for r in rows_of(out / "report.csv")} == {tmp_path.name}  # the folder the paths share
    meta = json.loads((out / "report.json").read_text())
    assert "--method " + long_name in meta["provenance"]["command"]
    # joining the only SCENE; with several SCENEs, SCENE/NAME
    assert group_inputs([tmp_path / "s1"], ["x=" + str(b)]) == {"s1": ([tmp_path / "s1"], [("x", b)])}
    two = group_inputs([tmp_path / "s1", tmp_path / "s2"], ["s2/x/y=" + str(b)])
    assert two["s2"][1] == [("x/y", b)] and two["s1"][1] == []


def test_bad_method_specs_are_one_line_naming_the_flag(tmp_path, gt, capsys):
    out = str(tmp_path / "r")
    assert main(["--method", "noequals", "--out", out]) == 2
    assert capsys.readouterr().err == "error: --method 'noequals': expected NAME=PATH (a method's name, then its " \
        "frame folder or video)\n"
    make_smooth(tmp_path / "s1" / "m", n=2, size=(40, 48)), make_smooth(tmp_path / "s2" / "m", n=2, size=(40, 48))
    assert main([str(tmp_path / "s1"), str(tmp_path / "s2"), "--method", f"x={gt}", "--out", out]) == 2
    assert capsys.readouterr().err.startswith("error: --method x=")
    assert main([str(tmp_path / "s1"), "--method", f"m={gt}", "--out", out]) == 2
    assert "scene 's1' has another method named 'm'" in capsys.readouterr().err
    assert main(["--out", out]) == 2
    assert capsys.readouterr().err.startswith("error: no SCENE and no --method")


# ------------------------------------------------------------------------------------------ frames and pairing
def test_jpg_renders_pair_with_png_ground_truth_and_forks_are_no_frames(tmp_path, gt):
    scene = tmp_path / "scene"
    save(noisy_frames(gt, 4.0, 1), scene / "jpeg", ".jpg")
    save(noisy_frames(gt, 4.0, 1), scene / "png")
    (scene / "png" / "._0000.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    s = load_scene("scene", [scene], gt)
    assert [(m.name, len(m.frames), len(m.pairs), m.unmatched) for m in s.methods] == [("jpeg", 6, 6, []),
                                                                                     ("png", 6, 6, [])]
    assert s.methods[0].pairs[0].gt.name == "0000.png" and s.methods[0].pairs[0].frame == "0000.jpg"
    out = tmp_path / "r"
    assert main([str(scene), "--gt", str(gt), "--out", str(out), *PSNR]) == 0
    assert len(rows_of(out / "frames.csv")) == 12


def test_a_video_method_gets_the_full_reference_metrics_by_frame_index(tmp_path, gt, caplog):
    frames = noisy_frames(gt, 5.0, 3)
    scene = tmp_path / "scene"
    save(frames, scene / "a")
    encode(scene / "a.mkv", frames)  # lossless: the same pixels as the folder
    encode(scene / "long.mkv", frames + frames[:2])
    out = tmp_path / "r"
    with caplog.at_level(logging.WARNING):
        assert main([str(scene), "--gt", str(gt), "--out", str(out), *PSNR]) == 0
    rows = {(r["method"], r["frame"]): float(r["psnr"]) for r in rows_of(out / "frames.csv")}
    assert {m for m, _ in rows} == {"a", "a.mkv", "long"}
    for i in range(6):
        assert rows[("a.mkv", f"{i:04d}.png")] == rows[("a", f"{i:04d}.png")] == rows[("long", f"{i:04d}.png")]
    assert "scene/long: the video has 8 frames and its ground truth" in caplog.text and "the first 6 of each" \
        in caplog.text  # fmt: skip
    methods = {m["name"]: m for m in json.loads((out / "report.json").read_text())["scenes"][0]["methods"]}
    assert methods["a.mkv"]["n_frames"] == 6 and len(methods["a.mkv"]["fullref"]["rows"]) == 6
    assert methods["long"]["fullref"]["unmatched"] == ["frame 6", "frame 7"]


def test_sub_folders_and_stray_files_of_a_frame_folder_are_counted_in_one_line(tmp_path, gt, caplog):
    scene = tmp_path / "scene"
    m = save(noisy_frames(gt, 4.0, 1), scene / "m" / "renders")
    for sub in ("old", "tmp", "x", "y"):
        (m / sub).mkdir()
    (m / "notes.txt").write_text("x")
    (scene / "empty").mkdir()
    with caplog.at_level(logging.WARNING):
        s = load_scene("scene", [scene], gt)
    line = f"scene: passed over 6 entries: 1 × {NO_FRAMES}: empty/; 1 × {NOT_A_FRAME}: m/renders/notes.txt; " \
        f"4 × {SUBFOLDER}: m/renders/old/, m/renders/tmp/, m/renders/x/ (+1 more)"
    assert s.passed_over == line and caplog.messages == [line]


# ------------------------------------------------------------------------------------------ each problem once
def test_a_resolution_mismatch_is_one_line_with_the_count(tmp_path, gt, capsys, caplog):
    scene = tmp_path / "scene"
    save(noisy_frames(gt, 3.0, 1), scene / "ok")
    save([np.zeros((80, 96, 3), np.uint8)] * 6, scene / "big")
    out = tmp_path / "r"
    with caplog.at_level(logging.WARNING):
        assert main([str(scene), "--gt", str(gt), "--out", str(out), *PSNR]) == 1
    lines = [m for m in caplog.messages if "96x80" in m]
    assert len(lines) == 1 and lines[0].startswith(f"scene/big: 6 of 6 frames: {scene / 'big' / '0000.png'}: the "
                                                   "render is 96x80 but the ground truth")
    assert lines[0].endswith("(the same for 0001.png, 0002.png, 0003.png, … (2 more))")
    big = next(m for m in json.loads((out / "report.json").read_text())["scenes"][0]["methods"] if m["name"] == "big")
    assert len(big["fullref"]["errors"]) == 1 and big["fullref"]["errors"][0].startswith("6 of 6 frames: ")


def test_frame_problems_are_counted_by_kind():
    p = FrameProblems()
    for i in range(3):
        p.add(f"{i}.png", f"/r/{i}.png: the render is 9x9 but the ground truth /g/{i}.png is 8x8", [f"/r/{i}.png",
                                                                                                  f"/g/{i}.png"])
    p.add("7.png", "/r/7.png: cannot decode image (truncated)", ["/r/7.png", "/g/7.png"])
    assert len(p) == 4 and p.lines(10) == [
        "3 of 10 frames: /r/0.png: the render is 9x9 but the ground truth /g/0.png is 8x8 (the same for 1.png, 2.png)",
        "/r/7.png: cannot decode image (truncated)"]


def test_gt_without_matching_names_says_so_with_an_example_of_each(tmp_path, gt, capsys):
    scene = tmp_path / "scene"
    save(noisy_frames(gt, 3.0, 1), scene / "m")
    other = tmp_path / "other"
    other.mkdir()
    for p in sorted(gt.iterdir()):
        (other / f"img_{p.name}").write_bytes(p.read_bytes())
    assert main([str(scene), "--gt", str(other), "--out", str(tmp_path / "r"), *PSNR]) == 2
    assert capsys.readouterr().err == f"error: --gt {other}: no ground-truth frame has the name of a render's frame " \
        "(e.g. render m/0000.png, ground truth img_0000.png); name the ground-truth frames as the renders' (the " \
        "extension may differ)\n"
    assert not (tmp_path / "r").exists()


def test_rgba_ground_truth_is_composited_as_the_preset_says_and_stamped(tmp_path, gt, capsys):
    scene = tmp_path / "scene"
    truth = tmp_path / "rgba"
    truth.mkdir()
    for p in sorted(gt.iterdir()):
        a = np.asarray(Image.open(p))
        alpha = np.full((40, 48, 1), 255, np.uint8)
        alpha[:, 24:] = 0
        rgba = np.concatenate([np.where(alpha == 0, 0, a), alpha], axis=2).astype(np.uint8)  # transparent black
        Image.fromarray(rgba, "RGBA").save(truth / p.name)
    on_white = [np.where(np.arange(48)[None, :, None] >= 24, 255, np.asarray(Image.open(p)) ^ 1).astype(np.uint8)
                for p in sorted(gt.iterdir())]  # the object one code off (a finite PSNR), white where transparent
    save(on_white, scene / "m")
    by = {}
    for bg in ("white", "black"):
        out = tmp_path / bg
        assert main([str(scene), "--gt", str(truth), "--background", bg, "--out", str(out), *PSNR]) == 0
        by[bg] = values(out)["m"]
        ident = json.loads((out / "report.json").read_text())["provenance"]["identities"]["fullref"]
        assert ident["inputs"]["background"] == ([255, 255, 255] if bg == "white" else [0, 0, 0])
    assert by["white"] == pytest.approx(10 * np.log10(255 ** 2 / 0.5), abs=1e-3)  # half the pixels one code off
    assert by["black"] < 10
    assert main([str(scene), "--gt", str(truth), "--background", "grey", "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.startswith("error: --background 'grey': choose white, black or R,G,B")


def test_the_crossscore_demo_warning_names_report_py_flag(recwarn):
    from models.report.measure import Models

    cs = Models(device="cpu").crossscore()
    assert "(--crossscore-checkpoint)" in cs.info["warning"] and "(--checkpoint)" not in cs.info["warning"]
    assert any("(--crossscore-checkpoint)" in str(w.message) for w in recwarn)
