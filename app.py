"""Score neurally synthesised sequences with NVS-SQA (no reference): features + JOD scores.

    python app.py                               # scores examples/ (a folder of sequence folders)
    python app.py renders/                      # renders/{scene}/{method}[/frames], 3DGS or NerfBaselines trees
    python app.py a.mp4 b/ --out results/       # several inputs; videos are decoded as a stream
    python app.py long_render/ --window 120     # the score from windows of 120 frames (stride 60)
    python app.py renders/ --shard 0/2 --out s0 # half of the sequences; app.py --merge OUT s0 s1 joins shards
    python app.py renders/ --out all --executor slurm --shards 8   # 8 SLURM jobs, merged (docs/cluster.md)

Each sequence is named by its path relative to its input (sceneA/nerfacto) and merged into --out (default: the
input folder, as upstream) as soon as it is scored, under a lock, all its files as one unit: output_features.npz
({name: 384-d float32}) and output_features.json (checkpoint, and per name source/fingerprint/settings),
scores.csv and scores.json (score, rank within the scene with ties under the noise floor, mode, validity
warnings, provenance), windows.csv and curves/<name>.png (the quality curve along the path, 60+ frames). A rerun
skips what is already scored alike (--redo: score again); Ctrl-C keeps what is finished. A name held by another
source in --out is refused. Exit code: 0 all scored, 1 some inputs failed or were skipped (the others are
written), 2 nothing could be scored. Details: docs/scoring.md.
"""

from __future__ import annotations

import os
import sys

# Read once, when torch loads its OpenMP runtime: idle OpenMP threads sleep instead of spinning. Only the main
# thread's few small parallel calls (the sequence model over 120 frames, its curve windows) have a team; on a
# shared machine its spinning threads stalled them (docs/performance.md). Bit-identical: the work split is the same.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from models import cli  # noqa: E402
from models.nvs_sqa.app_config import AppConfig, default_out, window_setting  # noqa: E402
from models.nvs_sqa.launch import launch as run  # noqa: E402
from models.results import JOD_HELP  # noqa: E402

__all__ = ["AppConfig", "default_out", "main", "parse_args", "run"]


def parse_args(argv: list[str] | None = None) -> AppConfig:
    cfg = cli.parse(AppConfig, argv, description="Score rendered sequences (folders of frames or videos) with "
                    "NVS-SQA: 384-d features + JOD.", epilog=JOD_HELP).config
    window_setting(cfg)  # a bad --window/--stride is one line, exit 2, before anything loads
    return cfg


def main(argv: list[str] | None = None) -> int:
    return cli.main(parse_args, run, argv)


if __name__ == "__main__":
    cli.stop_on_sigterm()  # a scheduler's stop keeps what is finished, as Ctrl-C does
    sys.exit(main())
