"""The blind-spot calibration: the inflation curve and its crossing by hand, and one small measured run whose
direction is known (noise raises NVS-SQA's score while FovVideoVDP sees it as worse)."""

import numpy as np
import pytest

from benchmarks import blind_spots
from models.fullref.fvvdp import fvvdp_available


def test_inflation_curve_is_the_running_maximum_from_zero():
    pts = [(0.4, 0.0), (0.2, 0.0), (0.8, 0.07), (1.4, 0.05), (2.0, 0.4), (3.8, 1.1)]
    assert blind_spots.inflation_curve(pts) == [[0.2, 0.0], [0.8, 0.07], [2.0, 0.4], [3.8, 1.1]]
    assert blind_spots.inflation_curve([(1.0, -0.2)]) == [[1.0, 0.0]]


def test_crossing_interpolates_where_the_curve_exceeds_a_level():
    curve = [[0.2, 0.0], [1.2, 0.1], [2.0, 0.5]]
    assert blind_spots.crossing(curve, 0.15) == pytest.approx(1.2 + 0.8 * (0.05 / 0.4))
    assert blind_spots.crossing(curve, 0.05) == pytest.approx(0.7)
    assert blind_spots.crossing(curve, 9.0) == 2.0


def test_derive_takes_noise_and_jpeg_rows_apart():
    rows = [{"kind": "base", "base": "clean", "noise_sigma": 0.4, "blockiness": 0.2, "bias": 0.0},
            {"kind": "noise", "base": "clean", "noise_sigma": 2.0, "blockiness": 0.0, "bias": 0.4},
            {"kind": "jpeg", "base": "clean", "noise_sigma": 0.3, "blockiness": 1.0, "bias": 0.1},
            {"kind": "jpeg", "base": "clean", "noise_sigma": 0.2, "blockiness": 3.0, "bias": 0.9}]
    d = blind_spots.derive(rows, 0.15)
    assert d["noise_bias"] == [[0.3, 0.0], [2.0, 0.4]] or d["noise_bias"][-1] == [2.0, 0.4]
    assert d["blockiness_bias"] == [[0.2, 0.0], [1.0, 0.1], [3.0, 0.9]]
    assert d["max_blockiness"] == pytest.approx(1.0 + 2.0 * (0.05 / 0.8), abs=0.01)


@pytest.mark.skipif(not fvvdp_available(), reason="pyfvvdp not installed")
def test_noise_is_rewarded_by_nvs_sqa_and_penalised_by_fovvideovdp(released_model, monkeypatch):
    from models.fullref.fvvdp import FovVideoVDP

    monkeypatch.setattr(blind_spots, "NOISE", (8.0,))
    monkeypatch.setattr(blind_spots, "JPEG", (15.0,))
    rng = np.random.default_rng(0)  # 4 frames of 80x96 (the encoder's smallest input is 69): FovVideoVDP's cost
    clip = np.clip(rng.normal(128, 30, (4, 1, 1, 3)) + np.linspace(0, 60, 48)[None, None, :, None]
                   + np.zeros((4, 40, 48, 3)), 0, 255).astype(np.uint8)
    clip = np.ascontiguousarray(np.repeat(np.repeat(clip, 2, axis=1), 2, axis=2))  # 80x96, smooth
    assert [v[:3] for v in blind_spots.variants(clip)] == [("clean", "base", 0.0), ("blur1", "base", 0.0),
                                                           ("clean", "noise", 8.0), ("blur1", "noise", 8.0),
                                                           ("clean", "jpeg", 15.0)]
    rows = blind_spots.measure_sequence(released_model, FovVideoVDP(), clip, "toy")
    base, n8 = rows[0], next(r for r in rows if r["kind"] == "noise" and r["level"] == 8.0 and r["base"] == "clean")
    assert n8["noise_sigma"] > base["noise_sigma"] + 5 and n8["fvvdp"] < base["fvvdp"]
    assert n8["bias"] == pytest.approx((n8["nvs_sqa"] - base["nvs_sqa"]) - (n8["fvvdp"] - base["fvvdp"]))
    assert n8["bias"] > 0
