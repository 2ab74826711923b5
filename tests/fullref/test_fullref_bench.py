"""benchmarks/fullref_bench.py (make bench-fullref) and its peers: the timing helpers, the report's lines, and the
peers computing the same numbers as ours on a small pair (lpips and DISTS_pytorch on the torchvision stand-in)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from benchmarks import fullref_bench as fb
from benchmarks import fullref_peers
from models.errors import InputError
from models.fullref import create
from tests.fullref.helpers import fail_or_skip

CPU = torch.device("cpu")


def test_time_ms_is_the_median_after_a_warm_up():
    calls = []
    got = fb.time_ms(lambda: calls.append(1), 3, CPU)
    assert len(calls) == 4 and len(got["all"]) == 3 and got["min"] <= got["median"] <= got["max"]


def test_interleaved_rounds_alternate_the_order():
    calls: list[str] = []
    ours, peer = fb.interleaved(lambda: calls.append("o"), lambda: calls.append("p"), 4, CPU)
    assert "".join(calls) == "op" + "op" + "po" + "op" + "po"  # warm-up, then rounds 0..3
    assert len(ours["all"]) == len(peer["all"]) == 4


def test_spread():
    assert fb.spread([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "all": [3.0, 1.0, 2.0]}


def _pair(h: int = 48, w: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    y = torch.rand(1, 3, h, w, generator=g)
    return (y + 0.1 * torch.randn(1, 3, h, w, generator=g)).clamp(0, 1), y


@pytest.fixture(scope="module")
def peers(fullref_weights):
    try:
        with fullref_peers.peers() as p:
            yield p
    except InputError as e:
        fail_or_skip(str(e))


@pytest.mark.parametrize("name", ["psnr", "ssim", "lpips-alex", "lpips-vgg", "dists", "flip"])
def test_each_peer_computes_our_value(peers, name):
    """A differential check of the peers as the benchmark runs them: lpips 0.1.4 and DISTS_pytorch 0.1 with their
    own code and weights on the stand-in backbones, torchmetrics, pytorch_msssim and flip-evaluator."""
    x, y = _pair()
    with torch.no_grad():
        theirs = float(torch.as_tensor(peers[name].fn(x, y)).flatten()[0])
    assert float(create(name)(x, y)[0]) == pytest.approx(theirs, rel=1e-5, abs=1e-6)


def test_ms_ssim_peer(peers):
    x, y = _pair(176, 200)
    assert float(create("ms-ssim")(x, y)[0]) == pytest.approx(float(peers["ms-ssim"].fn(x, y)), abs=1e-6)


def test_the_standin_leaves_no_torchvision_behind(peers):
    assert "torchvision" not in sys.modules
    with fullref_peers.torchvision_standin():
        from torchvision import models

        features = models.vgg16(pretrained=True).features
        assert [i for i, m in enumerate(features) if isinstance(m, torch.nn.Conv2d)] == [
            0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]  # fmt: skip
        assert [i for i, m in enumerate(models.alexnet().features) if isinstance(m, torch.nn.Conv2d)] == [
            0, 3, 6, 8, 10]  # fmt: skip
        with pytest.raises(RuntimeError, match="already imported"):
            with fullref_peers.torchvision_standin():
                pass
    assert "torchvision" not in sys.modules


def test_report_lines():
    peer_row = {"metric": "lpips-alex", "value": 0.1234567, "peer": "lpips 0.1.4", "peer_value": 0.1234566,
                "ms": fb.spread([123.456, 120.0, 130.0]), "peer_ms": fb.spread([246.9, 240.0, 250.0]), "ratio": 0.5,
                "round_ratios": fb.spread([0.5, 0.48, 0.52])}
    result = {"cpu": "AMD EPYC", "cpu_features": "avx2 fma", "cpu_capability": "AVX2", "threads": 2,
              "device": "cpu", "torch": "2.13.0", "load_before": 0.5, "load_after": 1.25, "repeats": 3,
              "other_repeats": 3, "image": "960x768", "pair": "a vs b",
              "peers": [peer_row, {"metric": "mse", "value": 0.25, "peer": "none", "ms": fb.spread([5.0])}],
              "others": [{"what": "preset 3dgs", "ms": fb.spread([5.0]), "value": "psnr 30, ssim 0.9"}]}
    md = fb.report(result)
    assert md.startswith("# Full-reference metrics beside their peers: time per 960x768 image")
    assert "on AMD EPYC (avx2 fma; torch CPU capability AVX2), 2 torch threads, device cpu" in md
    assert ("| lpips-alex | 123.5 (120.0–130.0) | lpips 0.1.4 | 246.9 (240.0–250.0) | 0.50 (0.48–0.52) | 0.1234567 "
            "      | 0.1234566    |") in md
    assert "| mse        | 5.0 (5.0–5.0)       | none" in md
    assert "| preset 3dgs | 5.0 (5.0–5.0) | psnr 30, ssim 0.9 |" in md and fb.STANDIN_NOTE in md


def test_cpu_features(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("model name : X\nflags : fpu avx2 fma avx512f amx_tile sse\n")
    assert fb.cpu_features(info) == "avx2 fma avx512f amx_tile"
    assert fb.cpu_features(tmp_path / "missing") == "unknown"


def test_example_pair_is_a_jpeg_of_the_frame():
    render, gt = fb.example_pair()
    assert render.shape == gt.shape == (768, 960, 3) and render.dtype == np.uint8
    assert 0 < np.abs(render.astype(int) - gt).mean() < 5
