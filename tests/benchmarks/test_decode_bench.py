"""benchmarks/decode_bench.py (make bench-decode): every way of decoding on a few tiny JPEG frames."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from benchmarks import decode_bench as d
from consts import ROOT
from models.errors import InputError
from models.frames import open_frame_files
from models.pixels import read_image


@pytest.fixture
def frames(tmp_path):
    """Five 40x56 JPEG frames of noise, each different, in a folder."""
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(folder / f"f{i}.jpg", quality=90)
    return folder


def test_each_kind_gives_the_frames_in_order(frames):
    files = d.frame_files(frames, 7)  # the five repeated: f0..f4, f0, f1
    assert [f.name for f in files] == ["f0.jpg", "f1.jpg", "f2.jpg", "f3.jpg", "f4.jpg", "f0.jpg", "f1.jpg"]
    seq = open_frame_files(files, "t", str(frames), 1)
    want = np.stack([read_image(f) for f in files])
    for kind, workers in d.rows_of(list(d.KINDS), [2]):
        row = d.Row(kind, workers, seq, batch_size=3, stats=True)
        try:
            got = [b.copy() for b in row.batches()]
            assert [len(b) for b in got] == [3, 3, 1], kind
            assert np.array_equal(np.concatenate(got), want), kind
            assert row.once() == 7
        finally:
            row.close()


def test_the_bench_writes_rates_and_the_ceiling(frames, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--example", str(frames), "--frames", "6", "--workers", "1", "--rounds", "1", "--batch-size", "4"]
    assert d.main([*args, "--out", str(out)]) == 0
    res = json.loads((out / "decode.json").read_text())
    assert [(r["kind"], r["workers"]) for r in res["rows"]] == [(k, 1) for k in d.KINDS]
    assert all(r["median_fps"] > 0 and r["rounds"] == 1 for r in res["rows"])
    best = max(res["rows"], key=lambda r: r["median_fps"])
    assert res["ceiling_fps"] == best["median_fps"] and res["ceiling"] == f"{best['kind']} × 1"
    assert res["size"] == [56, 40] and res["cores"] >= 1 and res["cpu_id"]
    md = (out / "decode.md").read_text()
    assert md.startswith("# Decoding frames for the scorer (`make bench-decode`)")
    assert "| prefetch | 1 |" in md and "| pickle | 1 |" in md
    assert f"Ceiling: **{best['median_fps']:.0f} frames/s**" in md
    assert md in capsys.readouterr().out


def test_rounds_after_the_deadline_are_left_out(frames):
    res = d.measure(4, frames, [1], ["prefetch"], rounds=3, batch_size=2, deadline=0.0)
    assert res["rows"][0]["rounds"] == 0 and res["rows"][0]["median_fps"] is None and res["ceiling_fps"] is None
    md = d.report_md(res)
    assert "| prefetch | 1 | – | – | – |" in md and "Ceiling: not measured (no timed round ran before" in md


def test_worker_counts_kinds_and_rows():
    assert d.worker_counts("", 16) == [1, 2, 4, 8, 16] and d.worker_counts("", 6) == [1, 2, 4, 6]
    assert d.worker_counts("", 1) == [1] and d.worker_counts("4, 2,4", 16) == [2, 4]
    with pytest.raises(InputError, match=r"^--decode-workers 2,x: give whole numbers"):
        d.worker_counts("2,x", 4, "--decode-workers")
    with pytest.raises(InputError, match=r"^--workers 0: every count must be at least 1$"):
        d.worker_counts("0", 4)
    assert d.parse_kinds("pickle, threads") == ["threads", "pickle"]
    with pytest.raises(InputError, match=r"^--kinds threads,fork: 'fork' is not one of prefetch, threads, "):
        d.parse_kinds("threads,fork")
    assert d.rows_of(["prefetch", "processes", "pickle"], [1, 4]) == [("prefetch", 1), ("processes", 1),
                                                                        ("processes", 4), ("pickle", 4)]  # fmt: skip


def test_make_target():
    text = (ROOT / "Makefile").read_text()
    assert "\nbench-decode: setup\n\t$(PY) -m benchmarks.decode_bench\n" in text
    assert "\n## bench-decode: " in text and ".PHONY: bench-decode" in text
