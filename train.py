"""Train an NVS-SQA quality encoder, self-supervised, on unlabelled renders (renders/<scene>__<method>/).

    python train.py --preset cpu-smoke --renders renders            # the whole pipeline, small, on a CPU
    python train.py --preset paper --renders renders --name mine    # the published recipe (GPU)
    python train.py --resume mine                                   # continue runs/mine exactly where it stopped
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
import textwrap
from pathlib import Path

from consts import RENDERS_DIR, RUNS_DIR
from models import cli
from models.errors import InputError
from models.runtime import locate
from models.training.loop import PRESETS, TrainConfig, train
from models.training.pairs import link_example_renders

log = logging.getLogger("train")
# What may change when resuming (everything else would make the continuation differ from the original run).
RESUMABLE = {"epochs", "workers", "device", "threads", "stop_after_steps", "save_every", "val_pairs"}
DEFAULT_RENDERS = TrainConfig().renders


def _epilog() -> str:
    """The presets as the flags they amount to."""
    lines = ["presets (flags given with --preset override it):"]
    for name, preset in PRESETS.items():
        flat = {k: v for k, v in preset.items() if k not in ("preset", "pairs")} | preset.get("pairs", {})
        flags = " ".join(f"{cli.flag_name(k)} {v}" for k, v in flat.items()) or "the published recipe (the defaults)"
        lines.append(textwrap.fill(flags, 100, initial_indent=f"  {name}: ", subsequent_indent=" " * 6))
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> tuple[TrainConfig, str | None]:
    """Flags -> (config, run folder to resume or None). Bad values exit 2 with one error line."""
    p = cli.ArgumentParser(
        description="Self-supervised contrastive training of the NVS-SQA encoder (five quality targets).",
        epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resume", metavar="RUN", help="continue a run exactly (model, optimizer, RNG, step): its folder, "
                   f"or its name under runs/ (--resume mine); only {', '.join(sorted(RESUMABLE))} may be given "
                   "with it")
    parsed = cli.parse(TrainConfig, argv, presets=PRESETS, default_preset="paper", parser=p)
    given = dict(parsed.given)
    resume = given.pop("resume", None)
    if not resume:
        return parsed.config, None
    # Resuming: the saved config, with only the RESUMABLE flags applied (--preset is ignored).
    try:
        run_dir = locate(resume, RUNS_DIR, what="--resume", hint="give a run folder or the name of one under runs/")
    except InputError as e:
        p.exit(2, f"error: {e}\n")
    cfg_file = run_dir / "config.json"
    try:
        saved = json.loads(cfg_file.read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        p.exit(2, f"error: {cfg_file}: cannot read the run's config ({type(e).__name__}); is {run_dir} a run of "
               "train.py?\n")
    bad = sorted(k for k in given if k not in RESUMABLE and k != "pairs") + sorted(given.get("pairs", {}))
    if bad:
        p.exit(2, f"error: --resume continues the saved config; cannot change {', '.join(bad)} "
               f"(allowed: {', '.join(sorted(RESUMABLE))})\n")
    try:
        cfg = cli.build(TrainConfig, {**saved, **given})
        cli.check(cfg)
    except (InputError, TypeError, ValueError) as e:
        p.exit(2, f"error: {cfg_file}: unusable saved config ({e})\n")
    return cfg, str(run_dir)


def run(cfg: TrainConfig, resume: str | None = None) -> int:
    """Train; returns the process exit code (bad input: an InputError, one line via cli.main)."""
    if (not resume and cfg.preset == "cpu-smoke" and cfg.renders == DEFAULT_RENDERS and not Path(cfg.renders).exists()
            and not RENDERS_DIR.exists()):
        log.info("no renders/ here or in the repository: using the two example sequences as a tiny training set "
                 "(%s/Giraffe__*)", RENDERS_DIR)
        link_example_renders(RENDERS_DIR)
    run_dir = train(cfg, resume)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one message
        print(f"run folder: {run_dir}  (encoder checkpoint: {run_dir / 'latest'}; "
              f"score with: python app.py --checkpoint {run_dir / 'latest'} --features-only <frames>)")
    return 0


def main(argv: list[str] | None = None) -> int:
    return cli.main(parse_args, lambda job: run(*job), argv,
                    interrupted="interrupted; continue with --resume from the last saved latest/")


if __name__ == "__main__":
    sys.exit(main())
