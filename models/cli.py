"""The entry point shared by the thin scripts: parse flags, set up logging, run, map Ctrl-C to exit code 130."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any


def main(parse_args: Callable[[list[str] | None], Any], run: Callable[[Any], int], argv: list[str] | None = None,
         interrupted: str = "interrupted") -> int:
    """``run(parse_args(argv))`` with INFO logging (WARNING when the config has ``quiet``); returns the exit code."""
    cfg = parse_args(argv)
    quiet = getattr(cfg, "quiet", False)
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(levelname)s: %(message)s")
    try:
        return run(cfg)
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
