"""Train an NVS-SQA quality encoder, self-supervised, on unlabelled renders (renders/<scene>__<method>/).

    python train.py --preset cpu-smoke --renders renders            # the whole pipeline, small, on a CPU
    python train.py --preset paper --renders renders --name mine    # the published recipe (GPU)
    python train.py --resume runs/mine                              # continue exactly where it stopped
    torchrun --nproc_per_node 4 train.py --preset paper --name mine # DDP over 4 GPUs

Writes runs/<name>/: config.json, metrics.jsonl, latest/ and epoch_NNNN/ checkpoints (each one a folder that
``app.py --checkpoint`` and ``evaluate.py --checkpoint`` load), val_correlation.png. Exit code 0 done, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from models.errors import InputError
from models.training.loop import PRESETS, TrainConfig, make_config, train
from models.training.pairs import PairConfig, link_example_renders

log = logging.getLogger("train")
# What may change when resuming (everything else would make the continuation differ from the original run).
RESUMABLE = {"epochs", "workers", "device", "threads", "stop_after_steps", "save_every", "val_pairs"}
NOT_FLAGS = {"pairs", "preset"}
DEFAULT_RENDERS = TrainConfig().renders


def _add(p: argparse.ArgumentParser, name: str, default: Any, help: str) -> None:  # noqa: A002
    flag = "--" + name.replace("_", "-")
    kw: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": f"{help} (default: {default})"}
    if isinstance(default, bool):
        p.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
    elif isinstance(default, (list, tuple)):
        p.add_argument(flag, nargs=len(default), type=type(default[0]), metavar="V", **kw)
    else:
        p.add_argument(flag, type=type(default), **kw)


def parse_args(argv: list[str] | None = None) -> tuple[TrainConfig, str | None]:
    p = argparse.ArgumentParser(
        description="Self-supervised contrastive training of the NVS-SQA encoder (five quality targets).",
        epilog="Presets: " + "; ".join(f"{k}: {v or 'the published recipe'}" for k, v in PRESETS.items()),
    )
    p.add_argument("--preset", default="paper", choices=list(PRESETS), help="base settings (default: paper)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue runs/<name> exactly (model, optimizer, RNG, step)")
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        if f.name not in NOT_FLAGS:
            _add(p, f.name, getattr(defaults, f.name), f.metadata["help"])
    pairs = p.add_argument_group("pair sampling (paper defaults)")
    for f in fields(PairConfig):
        _add(pairs, f.name, getattr(defaults.pairs, f.name), f.name.replace("_", " "))
    given = vars(p.parse_args(argv))
    preset, resume = given.pop("preset"), given.pop("resume")
    pair_names = {f.name for f in fields(PairConfig)}
    pair_over = {k: given.pop(k) for k in list(given) if k in pair_names}
    if resume:
        cfg_file = Path(resume) / "config.json"
        try:
            saved = json.loads(cfg_file.read_text())["config"]
        except (OSError, ValueError, KeyError) as e:
            p.exit(2, f"error: {cfg_file}: cannot read the run's config ({type(e).__name__}); is {resume} a run?\n")
        bad = sorted(set(given) - RESUMABLE) + sorted(pair_over)
        if bad:
            p.exit(2, f"error: --resume continues the saved config; cannot change {', '.join(bad)} "
                   f"(allowed: {', '.join(sorted(RESUMABLE))})\n")
        return TrainConfig(**{**saved, **given}), resume
    if "weights" in given:
        given["weights"] = list(given["weights"])
    try:
        return make_config(preset, **given, pairs=pair_over), None
    except (InputError, TypeError) as e:
        p.exit(2, f"error: {e}\n")


def run(cfg: TrainConfig, resume: str | None = None) -> int:
    """Train; returns the process exit code."""
    if not resume and cfg.preset == "cpu-smoke" and cfg.renders == DEFAULT_RENDERS and not Path(cfg.renders).exists():
        log.info("no %s/ here: using the two example sequences as a tiny training set (%s/Giraffe__*)",
                 cfg.renders, cfg.renders)
        link_example_renders(cfg.renders)
    try:
        run_dir = train(cfg, resume)
    except InputError as e:
        log.error("%s", e)
        return 2
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one message
        print(f"run folder: {run_dir}  (encoder checkpoint: {run_dir / 'latest'}; "
              f"score with: python app.py --checkpoint {run_dir / 'latest'} --features-only <frames>)")
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    cfg, resume = parse_args(argv)
    try:
        return run(cfg, resume)
    except KeyboardInterrupt:
        print("interrupted; continue with --resume from the last saved latest/", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
