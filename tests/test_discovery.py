"""models/discovery.py: which sequences an INPUT holds in the render trees people have on disk, and their names."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.discovery import (
    NO_FRAMES,
    NOT_A_FRAME,
    NOT_A_SEQUENCE,
    SUBFOLDER,
    Found,
    discover,
    discover_all,
    fingerprint,
    gt_beside,
    name_inputs,
    passed_over,
)
from models.errors import InputError
from models.frames import is_image, list_images, open_frame_folder

MIN = 69


def make_folder(tmp: Path, n: int = 3, size=(72, 80)) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels = np.random.default_rng(i).integers(0, 256, (*size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp / f"f{i:03d}.png")
    return tmp


def test_discover_folder_of_sequences_and_videos(tmp_path):
    make_folder(tmp_path / "b", 1)
    make_folder(tmp_path / "a10", 1)
    make_folder(tmp_path / "a2", 1)
    (tmp_path / "notes").mkdir()
    (tmp_path / "v.mp4").write_bytes(b"")
    assert [p.name for p in discover(tmp_path)] == ["a2", "a10", "b", "v.mp4"]
    assert discover(tmp_path / "a2") == [tmp_path / "a2"]
    assert discover_all(tmp_path).skipped == [(tmp_path / "notes", NO_FRAMES)]
    assert [f.name for f in discover_all(tmp_path).found] == ["a2", "a10", "b", "v"]



def test_frame_folder_with_sub_folders_warns_and_lists_them(tmp_path, caplog):
    make_folder(tmp_path, 2)
    make_folder(tmp_path / "b", 1)
    (tmp_path / "a").mkdir()
    (tmp_path / ".cache").mkdir()  # hidden: passed over unreported
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "scores.json").write_text("{}")  # our own output: not reported
    found = discover_all(tmp_path)
    assert found.paths == [tmp_path]
    assert found.skipped == [(tmp_path / "a", SUBFOLDER), (tmp_path / "b", SUBFOLDER),
                             (tmp_path / "notes.txt", NOT_A_FRAME)]
    with caplog.at_level(logging.WARNING):
        seq = open_frame_folder(tmp_path, MIN)
    assert seq.n_frames == 2 and seq.ignored == ["notes.txt", "a/", "b/"]
    assert f"{tmp_path}: ignoring 1 non-image file(s): notes.txt" in caplog.text
    assert f"{tmp_path}: ignoring 2 sub-folder(s) of this frame folder: a/, b/; to score one, pass it as its own " \
        "input" in caplog.text



def test_folder_of_sequences_reports_every_skipped_entry(tmp_path, caplog):
    make_folder(tmp_path / "a10", 1)
    make_folder(tmp_path / "a2", 1)
    (tmp_path / "notes").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("x")  # searched (depth 2): its file is reported
    (tmp_path / "readme.txt").write_text("x")
    (tmp_path / "v.mp4").write_bytes(b"")
    (tmp_path / "scores.csv").write_text("our own output: not reported")
    (tmp_path / ".DS_Store").write_text("hidden: not reported")
    with caplog.at_level(logging.WARNING):
        found = discover_all(tmp_path)
    assert found.paths == [tmp_path / "a2", tmp_path / "a10", tmp_path / "v.mp4"]
    assert found.skipped == [(tmp_path / "docs" / "a.txt", NOT_A_SEQUENCE), (tmp_path / "notes", NO_FRAMES),
                             (tmp_path / "readme.txt", NOT_A_SEQUENCE)]
    assert caplog.messages == [f"{tmp_path}: passed over 3 entries: 2 × {NOT_A_SEQUENCE}: docs/a.txt, readme.txt; "
                               f"1 × {NO_FRAMES}: notes/"]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert discover_all(tmp_path, warn=False).skipped == found.skipped
    assert caplog.messages == []



def test_unlistable_sub_folder_is_reported(tmp_path, monkeypatch):
    make_folder(tmp_path / "ok", 1)
    (tmp_path / "locked").mkdir()
    iterdir = Path.iterdir

    def fake(self):
        if self.name == "locked":
            raise PermissionError(13, "Permission denied")
        return iterdir(self)

    monkeypatch.setattr(Path, "iterdir", fake)
    found = discover_all(tmp_path)
    assert found.paths == [tmp_path / "ok"]
    assert found.skipped == [(tmp_path / "locked", "cannot be listed (Permission denied)")]
    for call in (discover_all, lambda q: open_frame_folder(q, MIN)):
        with pytest.raises(InputError, match=r"^\S+locked: cannot list this folder \(Permission denied\); check its "
                           r"permissions$"):
            call(tmp_path / "locked")



def test_nothing_usable_names_what_was_skipped(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(InputError, match=r"^\S+: no frames \(\.png/\.jpg/\.jpeg\), videos or sequence folders found "
                       r"\(skipped: a\.txt \(neither a frame folder nor a video\), notes/ \(a folder without frames "
                       r"\(\.png/\.jpg/\.jpeg\)\)\); point at a folder of frames"):
        discover_all(tmp_path)


def names(found) -> dict[str, str]:
    return {f.name: f.role for f in found.found}


def test_scene_method_trees_are_named_by_their_path(tmp_path):
    make_folder(tmp_path / "r" / "sceneA" / "nerfacto", 1)
    make_folder(tmp_path / "r" / "sceneA" / "splatfacto" / "frames", 1)  # {scene}/{method}/frames: the leaf goes
    make_folder(tmp_path / "r" / "sceneB" / "nerfacto", 1)
    assert names(discover_all(tmp_path / "r")) == {"sceneA/nerfacto": "render", "sceneA/splatfacto": "render",
                                                   "sceneB/nerfacto": "render"}
    assert names(discover_all(tmp_path / "r" / "sceneA")) == {"nerfacto": "render", "splatfacto": "render"}
    assert names(discover_all(tmp_path / "r" / "sceneA" / "nerfacto")) == {"nerfacto": "render"}


def test_3dgs_nerfbaselines_and_ns_render_trees(tmp_path):
    gs = tmp_path / "output" / "garden" / "test" / "ours_30000"
    make_folder(gs / "renders", 1), make_folder(gs / "gt", 1)
    nb = tmp_path / "output" / "nb" / "predictions"
    make_folder(nb / "color", 1), make_folder(nb / "gt-color", 1)
    ns = tmp_path / "output" / "ns" / "test"
    make_folder(ns / "rgb", 1), make_folder(ns / "gt-rgb", 1)
    found = discover_all(tmp_path / "output")
    assert names(found) == {"garden/test/ours_30000": "render", "garden/test/ours_30000/gt": "gt",
                            "nb/predictions": "render", "nb/predictions/gt-color": "gt",
                            "ns/test": "render", "ns/test/gt-rgb": "gt"}
    assert [p.name for p in found.paths] == ["renders", "color", "rgb"]  # paths: the renders only
    assert names(discover_all(gs / "renders")) == {"ours_30000": "render"}  # the leaf as input: its parent's name
    assert discover_all(gs / "gt").found[0].role == "gt"


def test_a_link_keeps_the_name_it_was_given(tmp_path):
    make_folder(tmp_path / "store" / "renders", 1)
    (tmp_path / "in").mkdir()
    os.symlink(tmp_path / "store" / "renders", tmp_path / "in" / "ours_7000")
    os.symlink(tmp_path / "store" / "renders", tmp_path / "alias")
    assert names(discover_all(tmp_path / "in")) == {"ours_7000": "render"}
    assert names(discover_all(tmp_path / "alias")) == {"alias": "render"}
    assert discover(tmp_path / "in") == [tmp_path / "in" / "ours_7000"]  # not resolved


def test_a_link_back_up_is_not_followed_for_ever(tmp_path):
    make_folder(tmp_path / "a" / "seq", 1)
    os.symlink(tmp_path / "a", tmp_path / "a" / "loop")
    found = discover_all(tmp_path / "a")
    assert names(found) == {"seq": "render"} and found.skipped[0][0] == tmp_path / "a" / "loop"


def test_search_depth_is_bounded(tmp_path):
    make_folder(tmp_path / "1" / "2" / "3" / "4" / "seq", 1)  # five levels below tmp_path
    with pytest.raises(InputError, match="deeper than 4 levels below the input"):
        discover_all(tmp_path)
    assert names(discover_all(tmp_path / "1")) == {"2/3/4/seq": "render"}


def test_same_name_from_two_inputs_is_qualified_by_the_input(tmp_path):
    a = Found(tmp_path / "sceneA" / "nerfacto", "nerfacto")
    b = Found(tmp_path / "sceneB" / "nerfacto", "nerfacto")
    c = Found(tmp_path / "sceneB" / "tensorf", "tensorf")
    got = name_inputs([(str(tmp_path / "sceneA"), a), (str(tmp_path / "sceneB"), b), (str(tmp_path / "sceneB"), c)])
    assert [f.name for f in got] == ["sceneA/nerfacto", "sceneB/nerfacto", "tensorf"]
    one = name_inputs([(str(a.path), a), (str(b.path), b)])  # each input is the sequence itself
    assert [f.name for f in one] == ["sceneA/nerfacto", "sceneB/nerfacto"]


def test_fingerprint_changes_with_the_frames_only(tmp_path):
    seq = make_folder(tmp_path / "s", 2)
    before = fingerprint(seq)
    assert fingerprint(seq) == before and len(before) == 16
    list(open_frame_folder(seq, MIN))  # reading changes nothing
    assert fingerprint(seq) == before
    Image.fromarray(np.zeros((72, 80, 3), np.uint8)).save(seq / "f001.png")
    assert fingerprint(seq) != before
    (seq / "notes.txt").write_text("x")  # not a frame
    after = fingerprint(seq)
    (seq / "notes.txt").write_text("longer text")
    assert fingerprint(seq) == after


def test_one_rule_for_frames_hidden_files_and_resource_forks_are_not_frames(tmp_path, caplog):
    seq = make_folder(tmp_path / "scene" / "a", 2)
    (seq / "._f000.png").write_bytes(b"\x00\x05\x16\x07 macOS AppleDouble metadata")  # a resource fork
    (seq / ".hidden.png").write_bytes(b"not a frame either")
    assert not is_image(seq / "._f000.png") and not is_image(seq / ".hidden.png") and is_image(seq / "f000.PNG")
    assert [p.name for p in list_images(seq)] == ["f000.png", "f001.png"]  # the frame lister
    with caplog.at_level(logging.WARNING):
        assert [p.name for p in open_frame_folder(seq, MIN).files] == ["f000.png", "f001.png"]  # the sequence reader
    assert "._f000" not in caplog.text
    before = fingerprint(seq)  # the fingerprint
    (seq / "._f001.png").write_bytes(b"more metadata")
    assert fingerprint(seq) == before
    only_forks = tmp_path / "scene" / "b"
    only_forks.mkdir()
    (only_forks / "._f000.png").write_bytes(b"x")
    found = discover_all(tmp_path / "scene", warn=False)  # discovery: a folder of forks holds no frames
    assert found.paths == [seq] and found.skipped == [(only_forks, NO_FRAMES)]


def test_a_folder_and_a_video_of_one_name_are_two_sequences(tmp_path):
    make_folder(tmp_path / "a", 1)
    (tmp_path / "a.mp4").write_bytes(b"")
    (tmp_path / "b.mkv").write_bytes(b"")
    assert [(f.path.name, f.name) for f in discover_all(tmp_path).found] == [("a", "a"), ("a.mp4", "a.mp4"),
                                                                             ("b.mkv", "b")]
    named = name_inputs([(str(tmp_path / "a"), Found(tmp_path / "a", "a")),
                         (str(tmp_path / "a.mp4"), Found(tmp_path / "a.mp4", "a"))])
    assert [f.name for f in named] == [f"{tmp_path.name}/a", f"{tmp_path.name}/a.mp4"]


def test_ground_truth_beside_a_render(tmp_path):
    gs = tmp_path / "test" / "ours_30000"
    make_folder(gs / "renders", 1)
    assert gt_beside(gs / "renders") is None
    (gs / "GT").mkdir()  # a ground-truth name without frames is no ground truth
    assert gt_beside(gs / "renders") is None
    make_folder(gs / "GT", 1)
    assert gt_beside(gs / "renders") == gs / "GT"
    (tmp_path / "v.mp4").write_bytes(b"")
    make_folder(tmp_path / "gt-rgb", 1)
    assert gt_beside(tmp_path / "v.mp4") == tmp_path / "gt-rgb"


def test_passed_over_is_one_line_with_counts_and_a_few_examples(tmp_path):
    (tmp_path / "d").mkdir()
    skipped = [(tmp_path / f"n{i}.txt", NOT_A_FRAME) for i in range(5)] + [(tmp_path / "d", SUBFOLDER)]
    assert passed_over("garden", skipped, tmp_path) == (
        f"garden: passed over 6 entries: 5 × {NOT_A_FRAME}: n0.txt, n1.txt, n2.txt (+2 more); 1 × {SUBFOLDER}: d/")
    assert passed_over("g", skipped[:1]) == f"g: passed over 1 entry: 1 × {NOT_A_FRAME}: {tmp_path}/n0.txt"
