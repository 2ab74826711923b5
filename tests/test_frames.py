"""Frame and video reading: ordering, conversions and the one-line errors on bad input."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from models.frames import (
    InputError,
    discover,
    natural_key,
    open_array,
    open_frame_folder,
    open_sequence,
    open_video,
    prefetch,
    read_image,
)

MIN = 69  # models.nvs_sqa.MIN_FRAME_SIZE, kept literal so this file does not import torch models


def rgb(h: int = 72, w: int = 80, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def make_folder(tmp: Path, n: int = 3, names: list[str] | None = None, size=(72, 80)) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names or [f"f{i:03d}.png" for i in range(n)]):
        Image.fromarray(rgb(*size, seed=i)).save(tmp / name)
    return tmp


def test_natural_sort_orders_numbers_numerically():
    names = ["frame10.png", "frame2.png", "frame1.png", "Frame3.png"]
    assert sorted(names, key=natural_key) == ["frame1.png", "frame2.png", "Frame3.png", "frame10.png"]


def test_folder_natural_vs_plain_order(tmp_path):
    make_folder(tmp_path, names=["f10.png", "f2.png", "f1.png"])
    assert [p.name for p in open_frame_folder(tmp_path, MIN).files] == ["f1.png", "f2.png", "f10.png"]
    assert [p.name for p in open_frame_folder(tmp_path, MIN, "plain").files] == ["f1.png", "f10.png", "f2.png"]


def test_rgb_png_and_jpeg_roundtrip(tmp_path):
    a = rgb()
    Image.fromarray(a).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), a)
    Image.fromarray(a).save(tmp_path / "a.jpg", quality=95)
    j = read_image(tmp_path / "a.jpg")
    assert j.dtype == np.uint8 and j.shape == a.shape


def test_grayscale_is_replicated(tmp_path):
    g = rgb()[..., 0]
    Image.fromarray(g, "L").save(tmp_path / "g.png")
    notes: set[str] = set()
    out = read_image(tmp_path / "g.png", notes)
    np.testing.assert_array_equal(out, np.repeat(g[..., None], 3, axis=2))
    assert notes == {"grayscale"}


def test_rgba_drops_alpha(tmp_path):
    a = np.random.default_rng(1).integers(0, 256, (72, 80, 4), dtype=np.uint8)
    Image.fromarray(a, "RGBA").save(tmp_path / "a.png")
    notes: set[str] = set()
    np.testing.assert_array_equal(read_image(tmp_path / "a.png", notes), a[..., :3])
    assert "alpha" in notes


def test_palette_is_expanded(tmp_path):
    im = Image.fromarray(rgb()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    im.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_image(tmp_path / "p.png"), np.asarray(im.convert("RGB")))


def test_16bit_gray_and_rgb_are_rounded_not_truncated(tmp_path):
    v = np.array([[0, 128, 129, 257, 65535, 32896]], dtype=np.uint16)
    expected = np.array([[0, 0, 1, 1, 255, 128]], dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "g16.png"), v)
    np.testing.assert_array_equal(read_image(tmp_path / "g16.png")[..., 0], expected)
    rgb16 = np.stack([v, v[:, ::-1], v], axis=2)  # cv2 writes BGR
    cv2.imwrite(str(tmp_path / "c16.png"), rgb16)
    notes: set[str] = set()
    out = read_image(tmp_path / "c16.png", notes)
    np.testing.assert_array_equal(out[..., 2], expected)  # B of the file is the last RGB channel
    np.testing.assert_array_equal(out[..., 1], expected[:, ::-1])
    assert "16-bit" in notes


def test_truncated_jpeg_names_the_file(tmp_path):
    Image.fromarray(rgb(200, 200)).save(tmp_path / "t.jpg")
    data = (tmp_path / "t.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"t\.jpg: cannot decode image .*re-export or remove"):
        read_image(tmp_path / "t.jpg")


def test_corrupt_frame_fails_during_iteration_with_its_name(tmp_path):
    make_folder(tmp_path, 3)
    (tmp_path / "f001.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(InputError, match="f001.png"):
        list(open_frame_folder(tmp_path, MIN))


def test_non_images_ignored_and_reported(tmp_path, caplog):
    make_folder(tmp_path, 2)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "scores.csv").write_text("our own output, not reported")
    with caplog.at_level(logging.WARNING):
        seq = open_frame_folder(tmp_path, MIN)
    assert seq.n_frames == 2 and seq.ignored == ["notes.txt"]
    assert "ignoring 1 non-image file(s): notes.txt" in caplog.text


def test_mixed_sizes_rejected_before_decoding(tmp_path):
    make_folder(tmp_path, 2)
    Image.fromarray(rgb(90, 80)).save(tmp_path / "f002.png")
    with pytest.raises(InputError, match=r"f002\.png: frame is 80x90 but f000\.png is 80x72"):
        open_frame_folder(tmp_path, MIN)


def test_missing_empty_and_imageless_folders(tmp_path):
    with pytest.raises(InputError, match="no such file or folder"):
        discover(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no frames"):
        discover(tmp_path / "empty")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("x")
    with pytest.raises(InputError, match="no frames"):
        open_frame_folder(tmp_path / "docs", MIN)


def test_single_frame_warns(tmp_path, caplog):
    make_folder(tmp_path, 1)
    with caplog.at_level(logging.WARNING):
        assert open_frame_folder(tmp_path, MIN).n_frames == 1
    assert "a single frame" in caplog.text


def test_too_small_frames(tmp_path):
    make_folder(tmp_path, 2, size=(68, 80))
    with pytest.raises(InputError, match=r"80x68, smaller than the 69x69"):
        open_frame_folder(tmp_path, MIN)


def test_discover_folder_of_sequences_and_videos(tmp_path):
    make_folder(tmp_path / "b", 1)
    make_folder(tmp_path / "a10", 1)
    make_folder(tmp_path / "a2", 1)
    (tmp_path / "notes").mkdir()
    (tmp_path / "v.mp4").write_bytes(b"")
    assert [p.name for p in discover(tmp_path)] == ["a2", "a10", "b", "v.mp4"]
    assert discover(tmp_path / "a2") == [tmp_path / "a2"]


def _write_video(path: Path, frames: list[np.ndarray]) -> None:
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (w, h))
    for f in frames:
        vw.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    vw.release()


def test_video_is_streamed_as_rgb(tmp_path):
    frames = [np.full((72, 96, 3), (200, 30, 30), np.uint8) for _ in range(5)]
    _write_video(tmp_path / "v.avi", frames)
    seq = open_video(tmp_path / "v.avi", MIN)
    got = list(seq)
    assert (seq.width, seq.height, len(got), seq.n_frames) == (96, 72, 5, 5)
    assert np.abs(got[0].astype(int) - (200, 30, 30)).max() < 12  # red stays red (BGR -> RGB)


def test_unreadable_video(tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"not a video at all" * 100)
    with pytest.raises(InputError, match=r"bad\.mp4: cannot read this video"):
        open_video(tmp_path / "bad.mp4", MIN)


def test_array_inputs_uint8_float_tchw():
    a = np.random.default_rng(0).integers(0, 256, (2, 72, 80, 3), dtype=np.uint8)
    np.testing.assert_array_equal(np.stack(list(open_array(a, MIN))), a)
    f = a.astype(np.float32) / 255
    np.testing.assert_array_equal(np.stack(list(open_array(f, MIN))), a)
    np.testing.assert_array_equal(np.stack(list(open_array(a.transpose(0, 3, 1, 2), MIN, "TCHW"))), a)
    with pytest.raises(InputError, match="3 colour channels"):
        open_array(np.zeros((2, 72, 80, 5), np.uint8), MIN)


def test_path_list_keeps_given_order(tmp_path):
    make_folder(tmp_path, 3)
    files = [tmp_path / "f002.png", tmp_path / "f000.png"]
    seq = open_sequence(files, MIN)
    assert seq.files == files
    with pytest.raises(InputError, match="no such file"):
        open_sequence([tmp_path / "zzz.png"], MIN)


def test_prefetch_preserves_order_and_forwards_errors():
    assert list(prefetch(iter(range(50)), 3)) == list(range(50))

    def gen():
        yield 1
        raise InputError("boom.png: broken")

    it = prefetch(gen(), 2)
    assert next(it) == 1
    with pytest.raises(InputError, match="boom.png"):
        next(it)
