"""Frame and video reading: ordering, conversions and the one-line errors on bad input."""

from __future__ import annotations

import logging
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from models.discovery import discover, discover_all
from models.frames import (
    InputError,
    natural_key,
    open_array,
    open_frame_folder,
    open_sequence,
    open_video,
    prefetch,
    read_image,
)
from models.pixels import image_size

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


# --------------------------------------------------------------------------------------------- arrays and tensors
def first(seq) -> np.ndarray:
    return np.stack(list(seq))


def with_values(values, dtype) -> np.ndarray:
    """Two 72x80 RGB frames of zeros whose first pixel values are ``values``."""
    a = np.zeros((2, 72, 80, 3), dtype)
    a.flat[: len(values)] = values
    return a


def test_other_integer_dtypes_in_0_255_are_8_bit():
    a = np.random.default_rng(0).integers(0, 256, (2, 72, 80, 3), dtype=np.uint8)
    a.flat[:2] = (0, 255)
    for dt in (np.int64, np.int32, np.int16, np.uint32, np.uint64):
        np.testing.assert_array_equal(first(open_array(a.astype(dt), MIN)), a)  # not divided by 257
    np.testing.assert_array_equal(first(open_array(torch.from_numpy(a.astype(np.int64)), MIN)), a)


def test_uint16_is_16_bit_as_png():
    got = first(open_array(with_values([0, 128, 129, 257, 65535, 32896], np.uint16), MIN))
    assert got.flat[:6].tolist() == [0, 0, 1, 1, 255, 128]
    got = first(open_array(torch.from_numpy(with_values([65535, 257], np.uint16)), MIN))
    assert got.flat[:2].tolist() == [255, 1]


def test_integers_beyond_255_ask_for_uint16_or_max_value():
    with pytest.raises(InputError, match=r"^<array>: int64 frames hold values 0\.\.300, outside 0\.\.255; pass "
                       r"uint16 for 16-bit pixels \(0-65535\), or max_value=<the maximum> \(e\.g\. max_value=1023 "
                       r"for 10-bit\)$"):
        open_array(with_values([300], np.int64), MIN)
    with pytest.raises(InputError, match=r"int32 frames hold values -1\.\.0, outside 0\.\.255"):
        open_array(with_values([-1], np.int32), MIN)


def test_floats_must_lie_in_0_1_never_clipped():
    a = np.random.default_rng(0).integers(0, 256, (2, 72, 80, 3), dtype=np.uint8)
    for dt in (np.float16, np.float32, np.float64):
        np.testing.assert_array_equal(first(open_array(a.astype(dt) / dt(255), MIN)), a)
    with pytest.raises(InputError, match=r"^<array>: float frames must lie in \[0, 1\] \(max 1\.0\), got values "
                       r"0\.\.1\.0001; divide by the scale's maximum, or pass max_value=<that maximum> "
                       r"\(e\.g\. 255\)$"):
        open_array(with_values([1.0001], np.float32), MIN)
    with pytest.raises(InputError, match=r"got values -0\.01\.\.0;"):
        open_array(with_values([-0.01], np.float64), MIN)
    with pytest.raises(InputError, match=r"^<array>: frames contain NaN; pass finite pixel values in \[0, 1\]$"):
        open_array(with_values([0.5, np.nan], np.float32), MIN)
    with pytest.raises(InputError, match=r"^<array>: frames contain infinite values;"):
        open_array(with_values([np.inf], np.float64), MIN)
    with pytest.raises(InputError, match=r"float frames must lie in \[0, 1\] \(max 1\.0\), got values 1\.5\.\.1\.5;"):
        open_array(torch.full((2, 3, 72, 80), 1.5), MIN, "TCHW")
    got = first(open_array(torch.tensor([0.0, 1.0]).repeat_interleave(72 * 80 * 3).reshape(2, 72, 80, 3)
                           .to(torch.bfloat16), MIN))  # bfloat16 has no numpy type
    assert got[:, 0, 0, 0].tolist() == [0, 255]


def test_bool_strings_and_zero_frames_are_refused():
    with pytest.raises(InputError, match=r"^<array>: pixel type bool is not supported; pass uint8"):
        open_array(np.ones((2, 72, 80, 3), bool), MIN)
    with pytest.raises(InputError, match=r"^<array>: pixel type bool is not supported"):
        open_array(torch.ones((2, 72, 80, 3), dtype=torch.bool), MIN)
    with pytest.raises(InputError, match=r"pixel type <U1 is not supported"):
        open_array(np.full((2, 72, 80, 3), "a"), MIN)
    with pytest.raises(InputError, match=r"^<array>: no frames \(shape \(0, 72, 80, 3\)\); pass at least one frame$"):
        open_array(np.zeros((0, 72, 80, 3), np.uint8), MIN)
    with pytest.raises(InputError, match=r"^<array>: no frames"):
        open_array(torch.zeros((0, 3, 72, 80)), MIN, "TCHW")


def test_explicit_max_value_scales_any_number_type(tmp_path):
    ten_bit = [0, 1, 2, 3, 512, 1022, 1023]
    expected = [0, 0, 0, 1, 128, 255, 255]  # round(v * 255 / 1023)
    for dt in (np.uint16, np.int32, np.float32):
        assert first(open_array(with_values(ten_bit, dt), MIN, max_value=1023)).flat[:7].tolist() == expected
    a = np.random.default_rng(0).integers(0, 256, (2, 72, 80, 3), dtype=np.uint8)
    np.testing.assert_array_equal(first(open_sequence(a.astype(np.float64), MIN, max_value=255)), a)
    np.testing.assert_array_equal(first(open_array(a, MIN, max_value=255)), a)
    with pytest.raises(InputError, match=r"^<array>: values range 0\.\.1024, outside 0\.\.max_value=1023; pass "):
        open_array(with_values([1024], np.uint16), MIN, max_value=1023)
    with pytest.raises(InputError, match=r"max_value must be a positive number, got 0"):
        open_array(with_values([0], np.uint16), MIN, max_value=0)
    with pytest.raises(InputError, match=r"max_value applies to arrays and tensors only"):
        open_sequence(make_folder(tmp_path, 2), MIN, max_value=255)


def test_single_frame_array_warns_and_list_of_frames_is_an_array(caplog):
    a = rgb()
    with caplog.at_level(logging.WARNING):
        np.testing.assert_array_equal(first(open_array(a, MIN)), a[None])
    assert "<array>: a single frame" in caplog.text
    np.testing.assert_array_equal(first(open_sequence([a, a], MIN)), np.stack([a, a]))


def test_dot_is_named_after_the_real_folder(tmp_path, monkeypatch):
    make_folder(tmp_path / "Giraffe+X", 2)
    monkeypatch.chdir(tmp_path / "Giraffe+X")
    assert discover_all(Path(".")).paths == [Path(".")]
    assert open_sequence(Path("."), MIN).name == "Giraffe+X"
    assert open_sequence(".", MIN).name == "Giraffe+X"
    assert open_sequence(["f000.png", "f001.png"], MIN).name == "Giraffe+X"
    monkeypatch.chdir(tmp_path / "Giraffe+X")
    assert open_sequence(Path("..") / "Giraffe+X", MIN).name == "Giraffe+X"


# --------------------------------------------------------------------------------------------- huge frames
LIMIT = "above the limit of 89,478,485 px per frame (Pillow's decompression-bomb limit, about 9459x9459); " \
    "downscale the render"


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A valid 8x8 PNG whose IHDR (with a correct CRC) claims width x height."""
    Image.fromarray(rgb(8, 8)).save(path)
    b = bytearray(path.read_bytes())
    assert b[12:16] == b"IHDR"
    b[16:20], b[20:24] = width.to_bytes(4, "big"), height.to_bytes(4, "big")
    b[29:33] = zlib.crc32(bytes(b[12:29])).to_bytes(4, "big")
    path.write_bytes(bytes(b))
    return path


def test_png_header_claiming_20000x20000_is_one_line(tmp_path):
    p = png_claiming(tmp_path / "f000.png", 20000, 20000)
    msg = f"{p}: frame is 20000x20000 (400,000,000 px), {LIMIT}"
    for call in (image_size, read_image, lambda q: open_frame_folder(q.parent, MIN), lambda q: open_sequence(q, MIN)):
        with pytest.raises(InputError) as e:
            call(p)
        assert str(e.value) == msg


def test_limit_is_pillows_default_without_its_warning(tmp_path):
    assert image_size(png_claiming(tmp_path / "ok.png", 9459, 9459)) == (9459, 9459)  # 89,472,681 px
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning before our error
        with pytest.raises(InputError, match=r"big\.png: frame is 9460x9460 \(89,491,600 px\), above the limit"):
            image_size(png_claiming(tmp_path / "big.png", 9460, 9460))
        with pytest.raises(InputError, match=r"mid\.png: frame is 10000x10000 \(100,000,000 px\), above"):
            read_image(png_claiming(tmp_path / "mid.png", 10000, 10000))


def test_huge_jpeg_and_other_content_are_one_line(tmp_path):
    Image.fromarray(rgb(8, 8)).save(tmp_path / "j.jpg")
    b = bytearray((tmp_path / "j.jpg").read_bytes())
    i = b.index(b"\xff\xc0")  # SOF0: length(2) precision(1) height(2) width(2)
    b[i + 5:i + 7], b[i + 7:i + 9] = (30000).to_bytes(2, "big"), (20000).to_bytes(2, "big")
    (tmp_path / "j.jpg").write_bytes(bytes(b))
    with pytest.raises(InputError) as e:
        image_size(tmp_path / "j.jpg")
    assert str(e.value) == f"{tmp_path / 'j.jpg'}: frame is 20000x30000 (600,000,000 px), {LIMIT}"
    Image.fromarray(rgb(8, 8)).save(tmp_path / "b.png", format="BMP")  # BMP content: Pillow's own check
    b = bytearray((tmp_path / "b.png").read_bytes())
    b[18:22], b[22:26] = (20000).to_bytes(4, "little"), (20000).to_bytes(4, "little")
    (tmp_path / "b.png").write_bytes(bytes(b))
    for call in (image_size, read_image):
        with pytest.raises(InputError) as e:
            call(tmp_path / "b.png")
        assert str(e.value) == f"{tmp_path / 'b.png'}: frame of 400,000,000 px is {LIMIT}"
