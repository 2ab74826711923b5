"""Fixtures of the full-reference tests: the converted weights and pyiqa's calibration pairs.

What comes from PyPI in a test-setup step (pip download into .cache/, never committed, never installed into the
venv): pyiqa 0.1.16 (its calibration images; non-commercial licence), torchmetrics 1.4.0 / 1.9.0 with
lightning-utilities, pytorch_msssim 1.0.0, lpips 0.1.4 and DISTS-pytorch 0.1 (helpers.py: unpacked into
.cache/peers/ and imported from there by the test that needs them). Without network these tests skip on a user's
machine and fail under CI (``CI`` set).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from consts import PYIQA_CALIBRATION_PAIRS, PYIQA_WHEEL
from models.fullref import weights
from tests.fullref.helpers import UNPACKED, fail_or_skip, fetch


@pytest.fixture(scope="session")
def fullref_weights() -> Path:
    """checkpoints/fullref, made by `make setup` (python -m models.fullref.weights)."""
    if not weights.installed():
        fail_or_skip("checkpoints/fullref missing or not verified (run `make setup`)")
    return weights.FULLREF_DIR


@pytest.fixture(scope="session")
def calibration() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """pyiqa's five calibration pairs: name -> (distorted, reference) uint8 RGB, read from the pyiqa 0.1.16 wheel
    (each image checked by its sha256); also unpacked as BMP files into .cache/fullref-tests/pyiqa-calibration/."""
    wheel, out = fetch(PYIQA_WHEEL), {}
    folder = UNPACKED / "pyiqa-calibration"
    for name in PYIQA_CALIBRATION_PAIRS:
        pair = []
        for kind in ("dist", "ref"):
            data = weights.read_member(wheel, PYIQA_WHEEL, f"{kind}/{name}")
            (folder / kind).mkdir(parents=True, exist_ok=True)
            (folder / kind / f"{name}.bmp").write_bytes(data)
            pair.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
        out[name] = (pair[0], pair[1])
    return out


@pytest.fixture(scope="session")
def calibration_dir(calibration) -> Path:
    return UNPACKED / "pyiqa-calibration"
