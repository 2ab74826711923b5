"""Bank layout (frames folder or a video per method) and the feature cache key."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
from PIL import Image

from models.errors import InputError
from models.evaluation.bank import FeatureCache, scan_bank, sequence_path
from models.frames import open_sequence


def _frames(folder, n=2):
    folder.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(np.full((8, 8, 3), 10 * i, np.uint8)).save(folder / f"{i}.png")


def _video(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (16, 16))
    for i in range(3):
        w.write(np.full((16, 16, 3), 40 * i, np.uint8))
    w.release()


def test_layouts_and_missing(tmp_path):
    _frames(tmp_path / "llff/fern/nerf/frames")
    _video(tmp_path / "llff/fern/nex/render.avi")  # a video inside the method folder
    _video(tmp_path / "llff/fern/mipnerf.avi")  # or beside it, named after the method
    (tmp_path / "llff/fern/plenoxel/frames").mkdir(parents=True)  # no frames: missing
    keys = ["llff+fern+nerf", "llff+fern+nex", "llff+fern+mipnerf", "llff+fern+plenoxel", "lab+x+nerf"]
    found, missing = scan_bank(tmp_path, keys)
    assert found == {"llff+fern+nerf": tmp_path / "llff/fern/nerf/frames",
                     "llff+fern+nex": tmp_path / "llff/fern/nex/render.avi",
                     "llff+fern+mipnerf": tmp_path / "llff/fern/mipnerf.avi"}
    assert missing == ["lab+x+nerf", "llff+fern+plenoxel"]
    assert sequence_path(tmp_path, "llff+fern+plenoxel") is None


def test_empty_bank_errors(tmp_path):
    with pytest.raises(InputError, match="benchmark bank folder not found"):
        scan_bank(tmp_path / "nope", ["a+b+c"])
    (tmp_path / "a/b/c/frames").mkdir(parents=True)
    with pytest.raises(InputError, match=r"no benchmark sequence with frames found; expected .*/<dataset>/<scene>"):
        scan_bank(tmp_path, ["a+b+c"])


def test_cache_key_follows_checkpoint_and_files(tmp_path):
    _frames(tmp_path / "s", 3)
    seq = open_sequence(tmp_path / "s", 1)
    a, b = FeatureCache(tmp_path / "c", "a" * 64), FeatureCache(tmp_path / "c", "b" * 64)
    assert a.get(seq) is None
    a.put(seq, np.arange(4, dtype=np.float64))
    got = a.get(open_sequence(tmp_path / "s", 1))
    assert got.dtype == np.float32 and got.tolist() == [0, 1, 2, 3]
    assert b.get(seq) is None  # another checkpoint
    f = tmp_path / "s/1.png"
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    assert a.get(open_sequence(tmp_path / "s", 1)) is None  # a touched frame
    _frames(tmp_path / "t", 3)
    os.replace(tmp_path / "t/2.png", tmp_path / "s/3.png")
    assert a.key(open_sequence(tmp_path / "s", 1)) != a.key(seq)  # an added frame
    cur = open_sequence(tmp_path / "s", 1)
    a.put(cur, np.zeros(2))
    assert a.get(cur) is not None
    (a.dir / f"{a.key(cur)}.npy").write_bytes(b"garbage")
    assert a.get(cur) is None  # a damaged entry is a miss, not a crash
