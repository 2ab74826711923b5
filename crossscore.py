"""CrossScore: where is a render wrong? Per-pixel SSIM maps predicted from real photos of other viewpoints.

    python crossscore.py predict render.png --references photos/         # or a folder of renders
    python crossscore.py predict renders/ --references photos/ --gt gt/  # also the true SSIM maps
    python crossscore.py train --data DATASET --backbone tiny --name my-run
    python crossscore.py test  --data DATASET --checkpoint my-run/model     # = runs/my-run/model
    python crossscore.py demo-data                                        # the offline training set

Default model: checkpoints/crossscore-tiny (made offline by `make crossscore-demo`); the upstream
CrossScore-v1.0.0.ckpt loads with --checkpoint. Exit code: 0 done, 2 bad input (one error line).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from models import cli
from models.crossscore.options import (
    CrossScoreTrainConfig,
    DemoDataConfig,
    PredictConfig,
    TestConfig,
    locate_checkpoints,
)
from models.crossscore.predict import (
    PRED_COLUMNS,
    SCORE_HELP,
    TEST_COLUMNS,
    UPSTREAM_PRED_COLUMNS,
    predict_maps,
    score_dataset,
    upstream_rows,
)
from models.results import table, write_csv, write_json

# subcommand -> (its config, its one-line help)
COMMANDS: dict[str, tuple[type, str]] = {
    "predict": (PredictConfig, "score maps for rendered images, given real reference photos"),
    "test": (TestConfig, "L1, PSNR, pixel Pearson and SRCC on a dataset with ground truth"),
    "train": (CrossScoreTrainConfig, "train (or resume) runs/<name>/"),
    "demo-data": (DemoDataConfig, "build the offline training set from examples/"),
}


def parse_args(argv: list[str] | None = None) -> Any:
    """The config of the subcommand in ``argv`` (a PredictConfig, TestConfig, CrossScoreTrainConfig or
    DemoDataConfig)."""
    return cli.parse_subcommand(COMMANDS, argv, description=__doc__.split("\n")[0], epilog=SCORE_HELP)


def run_predict(cfg: PredictConfig) -> int:
    r = predict_maps(cfg)
    write_csv(r.out / "scores.csv", r.rows, PRED_COLUMNS)
    write_csv(r.out / "scores_upstream.csv", upstream_rows(r.rows), UPSTREAM_PRED_COLUMNS)
    write_json(r.out / "scores.json", {**r.meta, "help": SCORE_HELP, "rows": r.rows})
    print(table([{**row, "image": Path(row["image"]).name} for row in r.rows], ["image", "pred_ssim", "true_ssim"]))
    extra = "attention/, " if cfg.attention else ""
    print(f"{SCORE_HELP}\nwrote maps/, figures/, {extra}scores.csv, scores_upstream.csv (upstream's columns), "
          f"scores.json to {r.out}")
    return 0


def run_test(cfg: TestConfig) -> int:
    r = score_dataset(cfg)
    write_csv(r.out / "per_image.csv", r.rows, [k for k in r.rows[0] if not k.startswith("_")])  # _: pixel sums
    write_csv(r.out / "summary.csv", r.summary, TEST_COLUMNS)
    write_json(r.out / "summary.json", {**r.meta, "rows": r.summary})
    print(table(r.summary, TEST_COLUMNS))
    print("L1 and PSNR (= -10·log10(L1²)) of the maps, mean per-image pixel Pearson, SRCC of per-image means; "
          "upstream_*: upstream's test metrics (batches of 24, Pearson pooled over a batch's pixels; quote these "
          f"against the paper); wrote per_image.csv, summary.csv, summary.json to {r.out}")
    return 0


def run_train(cfg: CrossScoreTrainConfig) -> int:
    from models.crossscore.train import train_crossscore  # torch: imported only to run, not for --help

    print(f"model written to {train_crossscore(cfg)}")
    return 0


def run_demo_data(cfg: DemoDataConfig) -> int:
    from models.crossscore.demo import build_demo_dataset

    print(f"demo dataset written to {cfg.out}: {build_demo_dataset(cfg)}")
    return 0


RUNNERS = {PredictConfig: run_predict, TestConfig: run_test, CrossScoreTrainConfig: run_train,
           DemoDataConfig: run_demo_data}


def run(cfg: Any) -> int:
    """Run the subcommand whose config ``cfg`` is; returns the exit code."""
    locate_checkpoints(cfg)  # --checkpoint/--init: a path, else a name under checkpoints/ or runs/
    return RUNNERS[type(cfg)](cfg)


def main(argv: list[str] | None = None) -> int:
    return cli.main(parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
