"""Feeding the encoder (models/nvs_sqa/feed.py): the decode pool hands back the plain reader's frames, bit for bit and
in order; the scorer's features and validity statistics do not depend on how frames were decoded or sent; the CUDA
transfer logic (staging, side stream, events) checked with a recording stand-in for CUDA."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from consts import EXAMPLES_DIR, ROOT
from models.errors import InputError
from models.frames import _ATTACHED, decode_into, list_images, open_frame_files, open_frame_folder, read_image
from models.nvs_sqa.feed import DecodePool, Transfers, _Ring, add_stats, frame_stats
from models.nvs_sqa.validity import FrameStats

MIN = 69


def folder(tmp: Path, n: int, size=(72, 80), seed: int = 0, ext: str = "png") -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(tmp / f"f{i:03d}.{ext}", quality=90)
    return tmp


def pooled(pool: DecodePool, seq, batch_size: int, per_frame=None, depth: int = 0):
    """Every batch copied out of the ring (a view is valid only until the next one), with the per-frame results."""
    out, results = [], []
    for batch, per in pool.batches(seq, batch_size, per_frame, depth):
        out.append(batch.copy())
        results += per
    return out, results


@pytest.mark.parametrize("batch_size, depth", [(4, 0), (3, 3), (16, 3), (1, 3)])
def test_pool_frames_are_the_readers_in_order(tmp_path, batch_size, depth):
    seq = open_frame_folder(folder(tmp_path / "a", 10, ext="jpg"), MIN)
    plain = np.stack(list(seq))
    with DecodePool(3, "threads") as pool:
        batches, stats = pooled(pool, seq, batch_size, frame_stats, depth)
        assert [len(b) for b in batches] == [min(batch_size, 10 - i) for i in range(0, 10, batch_size)]
        np.testing.assert_array_equal(np.concatenate(batches), plain)
        gathered = FrameStats()
        for one in stats:
            add_stats(gathered, one)
        direct = FrameStats()
        for f in plain:
            direct.update(f)
        assert (gathered.n, gathered.background, gathered.noise, gathered.blocks) == \
            (direct.n, direct.background, direct.noise, direct.blocks)  # fmt: skip
        other = open_frame_folder(folder(tmp_path / "b", 5, size=(90, 70), seed=1), MIN)  # another size: a new ring
        np.testing.assert_array_equal(np.concatenate(pooled(pool, other, batch_size)[0]), np.stack(list(other)))
        np.testing.assert_array_equal(np.concatenate(pooled(pool, seq, batch_size)[0]), plain)  # the spare ring again


def test_two_sequences_at_once_each_have_their_ring(tmp_path):
    a = open_frame_folder(folder(tmp_path / "a", 8), MIN)
    b = open_frame_folder(folder(tmp_path / "b", 8, seed=5), MIN)
    with DecodePool(2, "threads") as pool:
        ia, ib = pool.batches(a, 2, depth=2), pool.batches(b, 2, depth=2)
        got_a, got_b = [], []
        for (x, _), (y, _) in zip(ia, ib, strict=True):
            got_a.append(x.copy())
            got_b.append(y.copy())
    np.testing.assert_array_equal(np.concatenate(got_a), np.stack(list(a)))
    np.testing.assert_array_equal(np.concatenate(got_b), np.stack(list(b)))


def test_a_bad_frame_fails_in_order_and_the_pool_goes_on(tmp_path):
    d = folder(tmp_path / "a", 9)
    (d / "f005.png").write_bytes(b"not a png at all")
    files = sorted(d.glob("*.png"))
    seq = open_frame_files([p for p in files if p.name != "f005.png"], "a", str(d), MIN)
    seq.files.insert(5, d / "f005.png")  # as if it broke after the headers were read
    seq.n_frames += 1
    got = []
    with DecodePool(2, "threads") as pool:
        with pytest.raises(InputError, match=r"f005\.png: cannot decode image"):
            for batch, _ in pool.batches(seq, 2, depth=3):
                got.append(batch.copy())
        assert len(got) == 2  # frames 0-3: the batches before the broken one
        good = open_frame_files(files[:4], "a", str(d), MIN)
        np.testing.assert_array_equal(np.concatenate(pooled(pool, good, 2)[0]), np.stack(got).reshape(4, 72, 80, 3))


def test_a_frame_of_another_size_is_refused_as_the_reader_refuses_it(tmp_path):
    d = folder(tmp_path / "a", 4)
    seq = open_frame_folder(d, MIN)
    Image.fromarray(np.zeros((70, 80, 3), np.uint8)).save(d / "f002.png")  # replaced after the headers were read
    with DecodePool(2, "threads") as pool, pytest.raises(InputError, match=r"f002\.png: frame is 80x70 but the "
                                                                            r"sequence is 80x72"):  # fmt: skip
        pooled(pool, seq, 2)


def test_conversions_are_warned_about_once_as_by_the_reader(tmp_path, caplog):
    d = tmp_path / "g"
    d.mkdir()
    for i in range(4):
        Image.fromarray(np.full((72, 80), 40 * i, np.uint8), "L").save(d / f"f{i}.png")
    seq = open_frame_folder(d, MIN)
    with caplog.at_level(logging.WARNING), DecodePool(2, "threads") as pool:
        frames = np.concatenate(pooled(pool, seq, 3)[0])
    assert [r.getMessage() for r in caplog.records if "converted" in r.getMessage()] == \
        [f"{d}: frames converted to 8-bit RGB (grayscale); see docs/scoring.md, 'Input formats and conversions'"]
    np.testing.assert_array_equal(frames, np.stack([read_image(p) for p in seq.files]))


def test_only_plain_frame_files_go_to_a_pool(tmp_path):
    seq = open_frame_folder(folder(tmp_path, 2), MIN)
    assert seq.plain_files
    seq.alpha = True
    assert not seq.plain_files
    with DecodePool(1, "threads") as pool, pytest.raises(InputError, match="a decode pool reads image files only"):
        next(pool.batches(seq, 2))
    with pytest.raises(InputError, match="decode='fork'"):
        DecodePool(1, "fork")  # type: ignore[arg-type]


def test_the_shared_ring_is_written_by_name_and_let_go(tmp_path):
    files = sorted(folder(tmp_path, 3).glob("*.png"))
    first, second = _Ring((1, 3, 72, 80, 3), shared=True), _Ring((1, 3, 72, 80, 3), shared=True)
    try:
        for i, p in enumerate(files):
            decode_into(first.target, (0, i), p, (80, 72), None)  # as a worker process does: attached by name
        np.testing.assert_array_equal(first.array[0], np.stack([read_image(p) for p in files]))
        decode_into(second.target, (0, 0), files[0], (80, 72), None)
        assert list(_ATTACHED) == [second.target[0]]  # the first ring's attachment was closed
    finally:
        _ATTACHED.clear()
        first.free()
        second.free()


# --------------------------------------------------------------------------------------------- transfers
class FakeEvent:
    def __init__(self, log: list, name: str) -> None:
        self.log, self.name = log, name

    def synchronize(self) -> None:
        self.log.append(("sync", self.name))


class FakeStream:
    def __init__(self, log: list, name: str) -> None:
        self.log, self.name, self.events = log, name, 0

    def record_event(self) -> FakeEvent:
        self.events += 1
        self.log.append(("record", self.name))
        return FakeEvent(self.log, f"{self.name}-event{self.events}")

    def wait_event(self, ev: FakeEvent) -> None:
        self.log.append(("wait", self.name, ev.name))


class FakeCuda:
    """CudaOps as the CPU can play it: every call recorded; 'pinned' tensors are those allocated by pinned()."""

    def __init__(self) -> None:
        self.log: list = []
        self.side, self.compute, self.pinned_ptrs = FakeStream(self.log, "side"), FakeStream(self.log, "compute"), set()

    def stream(self, device):
        return self.side

    @contextmanager
    def on(self, stream):
        self.log.append(("enter", stream.name))
        yield
        self.log.append(("leave", stream.name))

    def current(self, device):
        return self.compute

    def pinned(self, n, dtype):
        t = torch.empty(n, dtype=dtype)
        self.pinned_ptrs.add(t.data_ptr())
        self.log.append(("pinned", n))
        return t

    def is_pinned(self, t):
        return t.untyped_storage().data_ptr() in self.pinned_ptrs

    def hand_over(self, x, stream):
        self.log.append(("hand_over", stream.name))


def test_transfers_stage_pageable_batches_and_copy_on_the_side_stream():
    fake = FakeCuda()
    send = Transfers(torch.device("cpu"), fake)
    a = torch.arange(24, dtype=torch.uint8).view(2, 3, 4)
    b = torch.arange(24, 48, dtype=torch.uint8).view(2, 3, 4)
    xa = send.send(a)
    torch.testing.assert_close(xa, a, rtol=0, atol=0)
    assert xa.data_ptr() != a.data_ptr()  # staged: the batch may be reused at once
    assert fake.log == [("pinned", 24), ("enter", "side"), ("record", "side"), ("leave", "side"),
                        ("wait", "compute", "side-event1"), ("hand_over", "compute")]  # fmt: skip
    fake.log.clear()
    xb = send.send(b)
    assert fake.log[0] == ("sync", "side-event1")  # the staging buffer is refilled only after the last copy left it
    assert ("pinned", 24) not in fake.log  # one staging buffer, reused
    torch.testing.assert_close(xb, b, rtol=0, atol=0)
    assert (send.staged, send.direct) == (2, 0)


def test_transfers_send_page_locked_batches_directly():
    fake = FakeCuda()
    send = Transfers(torch.device("cpu"), fake)
    ring = fake.pinned(48, torch.uint8).view(2, 2, 3, 4)  # as a ring registered by pin_host
    fake.log.clear()
    x = send.send(ring[1])
    assert ("pinned", 24) not in fake.log and send.direct == 1 and send.staged == 0
    assert fake.log[:2] == [("enter", "side"), ("record", "side")]
    send.settle()
    assert fake.log[-1] == ("sync", "side-event1")
    assert x.data_ptr() == ring[1].data_ptr()  # on the CPU `.to` is no copy: the batch itself went


def test_transfers_on_the_cpu_use_the_batch_as_it_is():
    send = Transfers(torch.device("cpu"))
    a = torch.zeros(2, 3, dtype=torch.uint8)
    assert send.send(a) is a and send.ops is None
    send.settle()


# --------------------------------------------------------------------------------------------- the scorer
def test_scorer_features_and_statistics_do_not_depend_on_the_decoding(released_dir):
    from models.nvs_sqa import NVSSQA

    files = list_images(EXAMPLES_DIR / "Giraffe+NeRF")[:7]
    base = NVSSQA.from_checkpoint(None, device="cpu")
    ref_stats = FrameStats()
    ref = base.frame_features(files, batch_size=3, stats=ref_stats)
    for decode, workers in (("threads", 1), ("threads", 2), ("thread", 1)):
        m = NVSSQA.from_checkpoint(None, device="cpu", decode=decode, workers=workers, decoders=2)
        st = FrameStats()
        assert torch.equal(m.frame_features(files, batch_size=3, stats=st), ref), (decode, workers)
        assert (st.n, st.background, st.noise, st.blocks) == (ref_stats.n, ref_stats.background, ref_stats.noise,
                                                              ref_stats.blocks), (decode, workers)  # fmt: skip
        m.close()
    with pytest.raises(InputError, match="decode='gpu': choose one of auto, thread, threads, processes"):
        NVSSQA.from_checkpoint(None, device="cpu", decode="gpu")


SCRIPT = """
import sys, torch
from models.frames import list_images
from models.nvs_sqa import NVSSQA
from consts import EXAMPLES_DIR

def main():
    files = list_images(EXAMPLES_DIR / "Giraffe+NeRF")[:6]
    m = NVSSQA.from_checkpoint(None, device="cpu", decode="processes", workers=1, decoders=2)
    got = m.frame_features(files, batch_size=4)
    ref = NVSSQA.from_checkpoint(None, device="cpu").frame_features(files, batch_size=4)
    print("EQUAL" if torch.equal(got, ref) else "DIFFERENT", m._pool.kind)
    m.close()
"""


@pytest.mark.parametrize("guarded", [True, False])
def test_processes_in_a_script_and_the_fallback_without_a_main_guard(released_dir, tmp_path, guarded):
    script = tmp_path / "score.py"
    script.write_text(textwrap.dedent(SCRIPT) + ("if __name__ == '__main__':\n    main()\n" if guarded else "main()\n"))
    proc = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})  # fmt: skip
    out = proc.stdout.splitlines()
    assert proc.returncode == 0, proc.stderr[-2000:]
    if guarded:
        assert out == ["EQUAL processes"]
    else:  # the workers re-run the script and die: one warning, then threads, the same features
        assert out[-1] == "EQUAL threads"
        assert "decoding on 2 threads instead" in proc.stderr and '`if __name__ == "__main__":`' in proc.stderr
