"""Score neurally synthesised sequences with NVS-SQA (no reference): features + JOD scores.

    python app.py                               # scores examples/ (a folder of sequence folders)
    python app.py renders/scene__nerfacto       # one folder of frames
    python app.py a.mp4 b/ --out results/       # several inputs; videos are decoded as a stream
    python app.py long_render/ --window 120     # windows of 120 frames (stride 60): a quality curve per sequence
    python app.py renders/ --shard 0/2 --out s0 # half of the sequences; app.py --merge OUT s0 s1 joins shards
    python app.py renders/ --out all --executor slurm --shards 8   # 8 SLURM jobs, merged (docs/cluster.md)

Writes to --out (default: the input folder, as upstream), merging by name with the results already there (under
a lock; results of another checkpoint are refused): output_features.npz ({name: 384-d float32}) and
output_features.json (its checkpoint), scores.csv and scores.json (rows with mode and validity warnings, + model
version, checkpoint sha256, project version, what failed or was skipped); for windowed sequences windows.csv
(name, start, end, score) and curves/<name>.png.
Exit code: 0 all scored, 1 some inputs failed or were skipped (the others are still written), 2 nothing could be
scored (nothing written). Details: docs/scoring.md.
"""

from __future__ import annotations

import sys

from models import cli
from models.nvs_sqa.app_config import AppConfig, default_out, window_setting
from models.nvs_sqa.launch import launch as run
from models.results import JOD_HELP

__all__ = ["AppConfig", "default_out", "main", "parse_args", "run"]


def parse_args(argv: list[str] | None = None) -> AppConfig:
    cfg = cli.parse(AppConfig, argv, description="Score rendered sequences (folders of frames or videos) with "
                    "NVS-SQA: 384-d features + JOD.", epilog=JOD_HELP).config
    window_setting(cfg)  # a bad --window/--stride is one line, exit 2, before anything loads
    return cfg


def main(argv: list[str] | None = None) -> int:
    return cli.main(parse_args, run, argv, interrupted="interrupted; nothing written")


if __name__ == "__main__":
    sys.exit(main())
