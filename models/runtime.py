"""Where and how things run: device choice, CPU threads, logging setup, interrupts held over a critical step (one
place for all scripts)."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.errors import InputError

if TYPE_CHECKING:  # torch is imported where it is used: --help and flag errors stay fast
    import torch

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; a clear error when CUDA is asked for but absent."""
    import torch

    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"device={device!r}: not a device; use 'auto', 'cpu' or 'cuda' (or 'cuda:N')") from None
    if dev.type not in ("cpu", "cuda"):
        raise InputError(f"device={device!r}: only 'cpu' and 'cuda' are supported; use 'auto', 'cpu' or 'cuda'")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device='cuda': no CUDA device is available here; use 'cpu' or 'auto'")
    return dev


def locate(value: str, default_parent: Path, *more_parents: Path, what: str = "path",
           hint: str = "check the name, or give the full path") -> Path:
    """Where a path typed on a command line is (the rule of docs/development.md, "Paths"), the same in every script:

    1. ``value`` as typed (``~`` expanded), relative to the current folder, when it exists there;
    2. else, for a relative ``value``, ``default_parent / value`` (then each of ``more_parents``): a bare run or
       checkpoint name finds ``runs/NAME`` or ``checkpoints/NAME`` of the repository from any folder;
    3. else an :class:`InputError` naming every place looked in (``what``: the flag; ``hint``: what to do).
    """
    typed = Path(value).expanduser()
    if typed.exists():
        return typed
    tried = [typed.absolute()]
    if not typed.is_absolute():
        for parent in (default_parent, *more_parents):
            cand = parent / typed
            if cand.exists():
                return cand
            tried.append(cand)
    raise InputError(f"{what} {value}: not found (looked in: {', '.join(map(str, tried))}); {hint}")


def _first_core(cpuinfo: str | Path) -> dict[str, str]:
    """The first core's ``key: value`` lines of ``cpuinfo`` (empty where it cannot be read)."""
    found: dict[str, str] = {}
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, sep, value = line.partition(":")
                if not line.strip() and found:
                    break
                if sep and key.strip() not in found:
                    found[key.strip()] = value.strip()
    except OSError:
        pass
    return found


def cpu_name(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's model name from ``cpuinfo`` ("AMD EPYC"), else what ``platform`` reports; for results files."""
    import platform

    return _first_core(cpuinfo).get("model name") or platform.processor() or platform.machine()


def cpu_id(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The first core's "cpu family" and "model" numbers ("family 26, model 2"; "?" where they cannot be read):
    what tells a CPU generation apart when the model name is only "AMD EPYC"."""
    core = _first_core(cpuinfo)
    return f"family {core['cpu family']}, model {core['model']}" if "cpu family" in core and "model" in core else "?"


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The feature flags the first core reports (empty where they cannot be read)."""
    return set(_first_core(cpuinfo).get("flags", "").split())


def set_threads(threads: int) -> None:
    """``threads`` > 0: torch intra-op threads for this process; 0 leaves torch's default (one per core)."""
    if threads < 0:
        raise InputError(f"--threads {threads}: must be >= 0 (0 = torch's default)")
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


def setup_logging(quiet: bool = False) -> None:
    """INFO messages as ``INFO: ...`` on stderr (WARNING and above only when ``quiet``); a library's
    ``warnings.warn`` (e.g. a ValidityWarning) as one ``WARNING: ...`` line, like a logged warning."""
    import warnings

    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(levelname)s: %(message)s")
    warnings.showwarning = _one_line


def _one_line(message: Warning | str, category: type[Warning], filename: str, lineno: int, file=None,
              line: str | None = None) -> None:
    import sys

    print(f"WARNING: {message}", file=file or sys.stderr)


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block ends, then let them act: a step that must not be cut in two (files
    put in place and the count of what was written) finishes first. Only signals handled in Python are held (Ctrl-C,
    SIGTERM after ``cli.stop_on_sigterm``); elsewhere than the main thread nothing is held. Blocks nest: an inner
    block hands a held signal on to the outer one."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[tuple[int, Any]] = []
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    before = {s: h for s, h in before.items() if callable(h)}
    for s in before:
        signal.signal(s, lambda signum, frame: held.append((signum, frame)))
    try:
        yield
    finally:
        for s, h in before.items():
            signal.signal(s, h)
        if held:
            signum, frame = held[0]
            before[signum](signum, frame)  # e.g. raises KeyboardInterrupt, now that the step is whole
