"""Fixtures of the benchmark tests."""

from __future__ import annotations

import os
import shutil

import pytest

from benchmarks import gpu_travel
from models.fullref import weights


@pytest.fixture
def travelled(tmp_path, monkeypatch):
    """checkpoints/fullref as the GPU machine has it: the small files that travel (benchmarks/gpu_travel.py), not the
    backbones (benchmarks/gpu_fullref.py puts seeded stand-ins in their place)."""
    missing = [p for p in gpu_travel.FULLREF_CARRIED if not p.is_file()]
    if missing:
        msg = f"{missing[0]} missing (run `make setup`)"
        if os.environ.get("CI"):
            pytest.fail(msg + " — required under CI")
        pytest.skip(msg)
    folder = tmp_path / "fullref"
    folder.mkdir()
    for p in gpu_travel.FULLREF_CARRIED:
        shutil.copy2(p, folder / p.name)
    monkeypatch.setattr(weights, "FULLREF_DIR", folder)
    return folder
