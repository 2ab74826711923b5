"""benchmarks/roofline.py (make roofline): the arithmetic on made-up numbers, and one short real run."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks import roofline as rl


def _measured() -> dict:
    convs = [{"layer": 0, "input": "3×8×8", "output": "6×4×4", "kernel": "5×5/2", "mmac": 100.0, "pad_ms": 0.0,
              "conv_ms": 5.0, "gmac_s": 20.0, "of_peak": 0.5},
             {"layer": 1, "input": "6×4×4", "output": "6×4×4", "kernel": "3×3/1", "mmac": 300.0, "pad_ms": 1.0,
              "conv_ms": 7.5, "gmac_s": 40.0, "of_peak": 1.0}]  # fmt: skip
    return {"frames": 3, "every": 2, "peak_gmac_s": 40.0, "convs": convs, "encoder_ms": 16.0,
            "instrumented_ms": 16.5, "decode_ms": 4.0}  # fmt: skip


def test_floor_and_ceiling_arithmetic():
    s = rl.summarize(_measured(), cores=2, authors_ms=30.0)
    assert s["mmac"] == 400.0 and s["conv_ms"] == 12.5 and s["pad_ms"] == 1.0
    assert s["rest_ms"] == pytest.approx(16.0 - 12.5 - 1.0)
    assert s["conv_of_peak"] == pytest.approx(400 / 12.5 / 40)
    assert s["floor_encoder_ms"] == pytest.approx(10.0)  # 400 MMAC at 40 GMAC/s
    assert s["now_ms_per_frame"] == pytest.approx((16.0 + 4.0) / 2)
    assert s["floor_ms_per_frame"] == pytest.approx((10.0 + 4.0) / 2)
    assert s["speedup_now"] == pytest.approx(3.0) and s["speedup_ceiling"] == pytest.approx(30 / 7)
    assert "speedup_ceiling" not in rl.summarize(_measured(), cores=2, authors_ms=None)


def test_report_lines():
    res = {"machine": "m", "torch": "t", "created": "c", "load_before": 1.25, "load_after": 0.5,
           "measured": _measured(), "summary": rl.summarize(_measured(), 2, 30.0)}  # fmt: skip
    md = rl.report_md(res)
    assert "Peak: **40.0 GMAC/s**" in md and "| 5×5/2 " in md and "| 50%  " in md
    assert "now ≈ (encoder + decoding) / cores = **10.0 ms/frame**" in md and "= **7.0 ms/frame**" in md
    assert "now ≈ 3.00×, **ceiling 4.29×**" in md
    res["summary"] = rl.summarize(_measured(), 2, None)
    assert "ceiling" not in rl.report_md(res)


def test_authors_median_reads_the_bench_file(tmp_path):
    f = tmp_path / "scorer.json"
    assert rl.authors_median(f) is None
    rows = [{"engine": "exact", "ms_median": 40.0}, {"engine": "upstream", "ms_median": 112.5}]
    f.write_text(json.dumps({"rows": rows}))
    assert rl.authors_median(f) == 112.5
    f.write_text(json.dumps({"rows": []}))
    assert rl.authors_median(f) is None


def _encoder_macs(h: int, w: int) -> float:
    """Multiply-adds of the released view encoder's convolutions, from the architecture (network.py)."""
    def conv(hw, cin, cout, k, s, pad):
        oh, ow = (hw[0] + 2 * pad - k) // s + 1, (hw[1] + 2 * pad - k) // s + 1
        return (oh, ow), oh * ow * cin * cout * k * k

    total = 0
    hw, m = conv((h, w), 3, 6, 5, 2, 0); total += m  # noqa: E702
    hw, m = conv(hw, 6, 12, 3, 2, 0); total += m  # noqa: E702
    def double(hw, cin, cmid, cout):
        return conv(hw, cin, cmid, 3, 1, 1)[1] + conv(hw, cmid, cout, 3, 1, 1)[1]
    half = lambda hw: (hw[0] // 2, hw[1] // 2)  # noqa: E731
    total += double(half(hw), 12, 24, 24) + double(hw, 12, 24, 24) + double(hw, 24, 24, 24)
    hw = half(hw)
    total += double(half(hw), 24, 48, 48) + double(hw, 24, 48, 48) + double(hw, 48, 48, 48)
    hw = half(hw)
    total += double(half(hw), 48, 96, 96) + double(hw, 48, 96, 96) + double(hw, 96, 96, 96)
    hw = half(hw)
    return (total + hw[0] * hw[1] * 96 * 192) / 1e6


def test_a_short_real_run_writes_both_files(released_dir, shared_dir, tmp_path, capsys):
    threads = torch.get_num_threads()
    assert rl.main(["--every", "60", "--out", str(tmp_path)]) == 0
    assert torch.get_num_threads() == threads  # measured on one thread, the caller's count restored
    res = json.loads((tmp_path / "roofline.json").read_text())
    m = res["measured"]
    assert m["frames"] == 4 and len(m["convs"]) == 21  # every 60th of 240 frames; the encoder's 21 convolutions
    assert sum(c["mmac"] for c in m["convs"]) == pytest.approx(_encoder_macs(768, 960))
    assert m["peak_gmac_s"] > 0 and all(0 < c["conv_ms"] for c in m["convs"]) and m["decode_ms"] > 0
    assert (tmp_path / "roofline.md").read_text() == capsys.readouterr().out.removesuffix("\n")


def test_bad_every_is_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        rl.main(["--every", "0"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "--every 0: must be >= 1" in err


def test_missing_examples_are_one_error_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(rl, "EXAMPLES_DIR", tmp_path)
    assert rl.main(["--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {tmp_path / 'Giraffe+NeRF'}: example frames missing")
    assert not (tmp_path / "out").exists()
