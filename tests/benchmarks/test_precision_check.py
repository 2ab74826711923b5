"""benchmarks/precision_check.py: its made sequences, and what docs/scoring.md states about mixed on them."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.precision_check import made_sequences
from models.nvs_sqa import NVSSQA


@pytest.fixture(scope="module")
def mixed_model(released_dir) -> NVSSQA:
    return NVSSQA.from_checkpoint(None, device="cpu", precision="mixed", emulate=True)  # emulated: no native bf16


def test_mixed_error_on_made_sequences(mixed_model, released_model, shared_dir):
    """Beyond the examples mixed is NOT within 1e-4 (measured 1.4e-4 to 1.3e-3, benchmarks/precision.md): why it
    is not the default. This holds it to what docs/scoring.md states: ≤ 2e-3 on the features, ≤ 0.03 JOD."""
    made = made_sequences(shared_dir / "examples")
    assert {k: v.shape for k, v in made.items()} == {"downscaled": (40, 192, 240, 3), "degraded": (24, 384, 480, 3),
                                                     "noisy": (24, 384, 480, 3), "long": (300, 128, 160, 3)}
    worst = 0.0
    for name, frames in made.items():
        ref, got = released_model.features(frames), mixed_model.features(frames)
        err = float(np.abs(got - ref).max())
        assert err <= 2e-3, name
        assert abs(float(mixed_model.predict(got)[0]) - float(released_model.predict(ref)[0])) <= 0.03, name
        worst = max(worst, err)
    assert worst > 1e-4  # if this fails, mixed has become exact enough to reconsider as the default
