"""Where and how things run: device choice, CPU threads, logging setup (one place for all scripts)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from models.errors import InputError

if TYPE_CHECKING:  # torch is imported where it is used: --help and flag errors stay fast
    import torch

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; a clear error when CUDA is asked for but absent."""
    import torch

    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    return dev


def set_threads(threads: int) -> None:
    """``threads`` > 0: torch intra-op threads for this process; 0 leaves torch's default (one per core)."""
    if threads < 0:
        raise InputError(f"--threads {threads}: must be >= 0 (0 = torch's default)")
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


def setup_logging(quiet: bool = False) -> None:
    """INFO messages as ``INFO: ...`` on stderr (WARNING and above only when ``quiet``)."""
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(levelname)s: %(message)s")
