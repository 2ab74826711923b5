"""Evaluate an NVS-SQA model: the published SRCC/PLCC benchmark, and a graded-degradation sanity benchmark.

    python evaluate.py                                # benchmark_bank/ with the released model
    python evaluate.py --checkpoint mine/latest       # ... with your own model (runs/mine/latest; features cached)
    python evaluate.py --features feats.npz           # precomputed features {dataset+scene+method: 384-d}
    python evaluate.py --splits 100                   # + mean ± std over 100 random scene-wise 50/50 splits
    python evaluate.py --save-regressor               # + the fitted ridge, so app.py gives JOD scores
    python evaluate.py --degrade [INPUT ...]          # degradation benchmark (default: examples/)
    python evaluate.py --executor slurm --shards 8    # the bank's features by 8 SLURM jobs, then the tables

Writes runs/<name>/: config.json, tables.md, scenes.csv, datasets.csv, predictions.csv, results.json
(+ features.npz from a bank, splits.csv with --splits, regressor.json and checkpoint/ with --save-regressor);
with --degrade: degrade.md, degrade_scores.csv, degrade_srcc.csv, degrade.json, degrade.png.
Exit code: 0 done, 2 bad input (one line saying which file and what to do).
"""

from __future__ import annotations

import sys

from models import cli
from models.evaluation.run import EvalConfig, check_config, run_evaluation

__all__ = ["EvalConfig", "main", "parse_args", "run"]


def parse_args(argv: list[str] | None = None) -> EvalConfig:
    parsed = cli.parse(EvalConfig, argv, description=__doc__.split("\n")[0],
                       epilog="Layout, protocol: README 'Evaluation'.")
    check_config(parsed.config, inputs_given="inputs" in parsed.given)
    return parsed.config


def run(cfg: EvalConfig) -> int:
    """One evaluate.py run; returns the process exit code (bad input: an InputError, one line via cli.main)."""
    print("\n".join(run_evaluation(cfg)))  # nothing half-written on an error: config.json comes last
    return 0


def main(argv: list[str] | None = None) -> int:
    return cli.main(parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
