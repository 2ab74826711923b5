"""The one reduction of per-image values (the protocols', which FullReference.mean and the report both use):
exact cases, and what the tools themselves report for an exact copy of the ground truth."""

import math

import numpy as np
import pytest
import torch

from models.fullref import FullReference
from models.fullref.protocols import PROTOCOLS, average


def test_average_is_the_mean_and_keeps_infinities_as_the_tools_do():
    assert average([1.0, 2.0, 6.0]).value == 3.0
    values = [30.0, math.inf, 40.0]
    # NerfBaselines averages with np.mean, torchmetrics / 3DGS with a torch mean: an exact copy's inf propagates
    assert average(values).value == float(np.mean(values)) == float(torch.tensor(values).mean()) == math.inf
    assert math.isnan(average([math.inf, -math.inf]).value)
    r = average([1.0, math.nan, 3.0])
    assert (r.value, r.used, r.undefined) == (2.0, 2, (1,))
    empty = average([math.nan])
    assert math.isnan(empty.value) and empty.used == 0


def test_every_preset_reduces_by_the_same_rule():
    for p in PROTOCOLS.values():
        assert p.reduce([1.0, math.inf]).value == math.inf
        assert "infinite" in p.describe()["averaging"]


def test_exact_copy_has_infinite_psnr_and_mean(caplog):
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    off = gt.copy()
    off[0, 0, 0] ^= 1
    fr = FullReference("nerfbaselines", metrics=("psnr", "ssim"), device="cpu")
    rows = [fr.compute(gt, gt), fr.compute(off, gt)]
    assert rows[0]["psnr"] == math.inf and math.isfinite(rows[1]["psnr"])
    mean = fr.mean(rows)
    assert mean["psnr"] == math.inf and mean["ssim"] == pytest.approx((rows[0]["ssim"] + rows[1]["ssim"]) / 2)
