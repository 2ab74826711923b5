"""Train an NVS-SQA quality encoder, self-supervised, on unlabelled renders (renders/<scene>__<method>/).

    python train.py --preset cpu-smoke --renders renders            # the whole pipeline, small, on a CPU
    python train.py --preset full --renders renders --name mine     # full size, the authors' code's behaviour
    python train.py --preset full --recipe paper --name mine-paper  # full size, the paper's description
    python train.py --resume mine                                   # continue runs/mine exactly where it stopped
    torchrun --nproc_per_node 4 train.py --preset full --name mine  # DDP over 4 GPUs

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
from models.training.cluster import TrainCluster, submit_training, take_cluster
from models.training.config import PRESETS, TrainConfig
from models.training.loop import train
from models.training.pairs import PairConfig, link_example_renders

log = logging.getLogger("train")
# What may change when resuming (everything else would make the continuation differ from the original run).
RESUMABLE = {"epochs", "workers", "device", "threads", "stop_after_steps", "save_every", "val_pairs"}
DEFAULT_RENDERS = TrainConfig().renders
# The library's errors name its parameters in backticks (`batch_size`=16); here they are these flags.
FLAGS = cli.flags_of(TrainConfig, PairConfig, resume="--resume", out="--preview")


def _epilog() -> str:
    """The presets as the flags they amount to."""
    lines = ["presets (flags given with --preset override it):"]
    for name, preset in PRESETS.items():
        flat = {k: v for k, v in preset.items() if k not in ("preset", "pairs")} | preset.get("pairs", {})
        flags = " ".join(f"{cli.flag_name(k)} {v}" for k, v in flat.items()) or "full-size run (the defaults)"
        lines.append(textwrap.fill(flags, 100, initial_indent=f"  {name}: ", subsequent_indent=" " * 6))
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> tuple[TrainConfig, str | None]:
    """Flags -> (config, run folder to resume or None). Bad values exit 2 with one error line."""
    return parse_job(argv)[:2]


Job = tuple[TrainConfig, str | None, tuple[str, int] | None, TrainCluster]


def parse_job(argv: list[str] | None = None) -> Job:
    """Flags -> (config, run folder to resume or None, (--preview DIR, --preview-batches) or None, the cluster
    flags: where to run it, not part of the training config)."""
    p = cli.ArgumentParser(
        description="Self-supervised contrastive training of the NVS-SQA encoder (five quality targets).",
        epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resume", metavar="RUN", help="continue a run exactly (model, optimizer, RNG, step): its folder, "
                   f"or its name under runs/ (--resume mine); only {', '.join(sorted(RESUMABLE))} may be given "
                   "with it")
    p.add_argument("--preview", metavar="DIR", help="train nothing: write the first batches of this run as it would "
                   "draw them (same flags, seeds and order) to DIR/batch_NNN.npz + .png; no run folder")
    p.add_argument("--preview-batches", metavar="K", type=int, help="batches --preview writes (default: 2)")
    cli.add_flags(p, TrainCluster)  # --executor slurm --nodes N --gpus-per-node G … (docs/cluster.md)
    parsed = cli.parse(TrainConfig, argv, presets=PRESETS, default_preset="full", parser=p)
    given = dict(parsed.given)
    resume = given.pop("resume", None)
    preview, k = given.pop("preview", None), given.pop("preview_batches", None)
    where = take_cluster(given)  # the cluster flags are not part of the training config
    if k is not None and (not preview or k < 1):
        p.error(f"--preview-batches {k}: needs --preview DIR and K >= 1")
    if preview and resume:
        p.error("--preview shows the first batches of a new run; it cannot be combined with --resume")
    if not resume:
        return parsed.config, None, (preview, k or 2) if preview else None, where
    # Resuming: the saved config, with only the RESUMABLE flags applied (--preset is ignored).
    try:
        run_dir = locate(resume, RUNS_DIR, what="--resume", hint="give a run folder or the name of one under runs/")
    except InputError as e:
        p.exit(2, f"error: {e}\n")
    cfg_file = run_dir / "config.json"
    try:
        # runs from before --recipe have no recipe in their config: they behaved as --recipe paper
        saved = {"recipe": "paper", **json.loads(cfg_file.read_text())["config"]}
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
    return cfg, str(run_dir), None, where


def run(cfg: TrainConfig, resume: str | None = None, preview: tuple[str, int] | None = None,
        where: TrainCluster | None = None) -> int:
    """Train here, or as a submitit job when ``where`` names an executor (or, with ``preview`` = (DIR, K), write its
    first K batches); returns the process exit code (bad input: an InputError naming the flags, one line via
    cli.main)."""
    try:
        return _run(cfg, resume, preview, where)
    except InputError as e:
        raise InputError(cli.as_flags(str(e), FLAGS)) from None


def _run(cfg: TrainConfig, resume: str | None, preview: tuple[str, int] | None, where: TrainCluster | None) -> int:
    if (not resume and cfg.preset == "cpu-smoke" and cfg.renders == DEFAULT_RENDERS and not Path(cfg.renders).exists()
            and not RENDERS_DIR.exists()):
        log.info("no renders/ here or in the repository: using the two example sequences as a tiny training set "
                 "(%s/Giraffe__*)", RENDERS_DIR)
        link_example_renders(RENDERS_DIR)
    if where is not None and where.executor != "none" and not preview:  # the same training as a submitit job
        return submit_training(where, cfg, resume)
    if preview:
        from models.training.preview import preview as write_preview

        print(f"preview: {len(write_preview(cfg, *preview))} batches in {preview[0]} (batch_NNN.npz + .png)")
        return 0
    run_dir = train(cfg, resume)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one message
        print(f"run folder: {run_dir}  (encoder checkpoint: {run_dir / 'latest'}; "
              f"score with: python app.py --checkpoint {run_dir / 'latest'} --features-only <frames>)")
    return 0


def main(argv: list[str] | None = None) -> int:
    return cli.main(parse_job, lambda job: run(*job), argv,
                    interrupted="interrupted; continue with --resume from the last saved latest/")


if __name__ == "__main__":
    sys.exit(main())
