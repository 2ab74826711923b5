"""Stopping a training run cleanly on a scheduler's signal: SIGUSR2 -> a flag that every DDP rank agrees on.

SLURM sends SIGUSR2 before the time limit (``sbatch --signal=USR2@120``) and on preemption. The handler only
raises a flag: the training loop (models.training.loop) asks :func:`stop_requested` after every step, saves
``latest/`` there and returns; the submitit job (models.training.cluster) then requeues itself. Both import this
module, so neither needs the other for the signal.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import torch

_STOP = {"installed": False, "asked": False}  # this process: is our SIGUSR2 handler in place, has it fired


def install_stop_handler() -> None:
    """SIGUSR2 (SLURM's warning before the time limit, or preemption) -> :func:`stop_requested` becomes true."""

    def handler(signum: int, frame: Any) -> None:
        _STOP["asked"] = True  # os.write: no print or logging inside a signal handler (not reentrant)
        os.write(2, f"caught {signal.Signals(signum).name}: saving latest/ after this step, then requeueing\n".encode())

    signal.signal(signal.SIGUSR2, handler)
    _STOP["installed"] = True


def stop_signalled() -> bool:
    """Whether this process caught the stop signal (the job then requeues itself instead of returning)."""
    return _STOP["asked"]


def stop_requested(world: int, stop: bool) -> bool:
    """``stop`` (the loop's own reason), or a SIGUSR2 caught by any rank: every rank gets the same answer (one
    all-reduce per step, only once the handler is installed, i.e. inside a submitit job). Called by the training
    loop after each step."""
    if not _STOP["installed"]:
        return stop
    if world > 1:
        flag = torch.tensor([float(stop or _STOP["asked"])])
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())
    return stop or _STOP["asked"]
