"""Shared test fixtures. Tests that need ../shared skip without it on a user's machine, but fail under CI."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may come from a hub during tests
sys.path.insert(0, str(ROOT))

from consts import CHECKPOINTS_DIR, RELEASED, SHARED_DIR  # noqa: E402


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        msg = f"{path} missing ({what})"
        if os.environ.get("CI"):
            pytest.fail(msg + " — required under CI")
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the repo (specs, examples, reference values, benchmark labels)."""
    return _need(SHARED_DIR, "../shared beside the repo")


@pytest.fixture(scope="session")
def released_dir() -> Path:
    """checkpoints/v0.0.1, made by `make setup`."""
    return _need(RELEASED.dir / "model.pth", "run `make setup`").parent


@pytest.fixture(scope="session")
def released_model(released_dir):
    """The released scorer on the CPU, loaded once per session."""
    from models.nvs_sqa import NVSSQA

    return NVSSQA.from_checkpoint(None, device="cpu")


@pytest.fixture(scope="session")
def checkpoints_dir() -> Path:
    return CHECKPOINTS_DIR
