"""The exact mode's speed paths change no result: OpenCV's JPEG decoding gives Pillow's pixels, and frames encoded
in flight on several threads give the same features as one after another."""

from __future__ import annotations

import io
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models import pixels
from models.errors import InputError
from models.nvs_sqa import NVSSQA


def _pillow_rgb(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _photo(w: int, h: int, seed: int = 0) -> Image.Image:
    """A smooth image with edges and noise: chroma upsampling and the IDCT both matter for it."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 / w, y * 255 / h, (x + y) % 64 * 4], axis=2) + rng.normal(0, 20, (h, w, 3))
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))


@pytest.mark.parametrize("kind", ["420", "444", "422", "progressive", "odd-size", "exif-rotated", "low-quality"])
def test_fast_jpeg_path_gives_pillows_pixels(tmp_path, kind):
    im = _photo(101, 77) if kind == "odd-size" else _photo(160, 96)
    opts = {"420": {"subsampling": 2}, "444": {"subsampling": 0}, "422": {"subsampling": 1},
            "progressive": {"progressive": True}, "odd-size": {}, "low-quality": {"quality": 5}}.get(kind, {})
    if kind == "exif-rotated":  # stored pixels are used as stored (no rotation), by Pillow and by the fast path
        exif = Image.Exif()
        exif[0x0112] = 6
        opts = {"exif": exif.tobytes()}
    path = tmp_path / "f.jpg"
    im.save(path, "JPEG", quality=opts.pop("quality", 90), **opts)
    fast = pixels._jpeg_rgb_fast(path)
    assert fast is not None, "the fast path should take a 3-component JPEG"
    np.testing.assert_array_equal(fast, _pillow_rgb(path))
    np.testing.assert_array_equal(pixels.read_image(path), _pillow_rgb(path))


def test_other_jpegs_go_through_pillow(tmp_path):
    gray, cmyk = tmp_path / "gray.jpg", tmp_path / "cmyk.jpg"
    _photo(96, 80).convert("L").save(gray)
    _photo(96, 80).convert("CMYK").save(cmyk)
    for path in (gray, cmyk):
        assert pixels._jpeg_rgb_fast(path) is None
        np.testing.assert_array_equal(pixels.read_image(path), _pillow_rgb(path))
    notes: set[str] = set()
    pixels.read_image(gray, notes)
    assert notes == {"grayscale"}


def test_truncated_jpeg_is_still_one_line_error(tmp_path):
    buf = io.BytesIO()
    _photo(160, 96).save(buf, "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    assert pixels._jpeg_rgb_fast(path) is None  # no end-of-image marker: Pillow decides and reports
    with pytest.raises(InputError, match=r"cut\.jpg: cannot decode image .*re-export or remove this frame"):
        pixels.read_image(path)


def test_examples_decode_bit_identically(shared_dir):
    paths = sorted((shared_dir / "examples").glob("*/*.jpg"))
    assert len(paths) == 240
    for p in paths:
        np.testing.assert_array_equal(pixels.read_image(p), _pillow_rgb(p))


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (7, 80, 112, 3), dtype=np.uint8)


def test_frames_in_flight_change_nothing(released_dir, clip):
    one = NVSSQA.from_checkpoint(None, "cpu", workers=1)
    many = NVSSQA.from_checkpoint(None, "cpu", workers=3)
    threads = torch.get_num_threads()
    a = one.frame_features(clip, batch_size=1)
    b = many.frame_features(clip, batch_size=1)
    c = many.frame_features(clip, batch_size=1)
    assert torch.equal(a, b) and torch.equal(b, c)  # bit for bit, in order, run to run
    assert torch.get_num_threads() == threads  # the workers' one-thread setting stays theirs
    d = many.frame_features(clip, batch_size=2)  # batches of 2 in flight (the last one of 1)
    assert d.shape == (7, 360) and float((d - a).abs().max()) <= 1e-5
    assert len({tuple(r[:4].tolist()) for r in b}) == 7  # different frames, different rows: order is kept


def test_worker_error_reaches_the_caller(released_dir, clip):
    many = NVSSQA.from_checkpoint(None, "cpu", workers=2)

    def frames():
        yield from clip[:3]
        raise InputError("frame 3: broken")

    with pytest.raises(InputError, match="frame 3: broken"):  # from the frame source
        list(many._encode(many._batches(frames(), 1)))
    with pytest.raises(RuntimeError):  # from a worker: a frame too small for the network
        list(many._encode(iter([torch.zeros(1, 8, 8, 3, dtype=torch.uint8)])))



_FAULTS = """
import resource, sys, numpy as np, torch
import models.nvs_sqa.scorer as sc
if sys.argv[1] == "default":
    sc.keep_freed_memory = lambda: True  # leave glibc's defaults
m = sc.NVSSQA.from_checkpoint(None, "cpu", workers=2)
frames = np.random.default_rng(0).integers(0, 256, (6, 768, 960, 3), dtype=np.uint8)
m.frame_features(frames[:2], batch_size=1)  # warm-up: first touches fault in either case
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
m.frame_features(frames, batch_size=1)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // len(frames))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_freed_maps_are_reused_not_refaulted(released_dir):
    def faults_per_frame(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parents[2])
        return int(out.stdout.split()[-1])

    default, kept = faults_per_frame("default"), faults_per_frame("kept")
    # 960x768 frames on worker threads; measured 3,000-4,900 vs 450-720 (the ratio moves with the load: half is the bar)
    assert default > 1000 and kept < default / 2, (default, kept)
