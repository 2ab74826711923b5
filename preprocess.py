"""Render the unlabelled training set with nerfstudio: every scene x method, resumable (see README, Preprocess).

    python preprocess.py --dry-run                      # the plan: every command, what is done, GPU-hour estimate
    python preprocess.py                                # run it (needs nerfstudio on PATH or --ns-bin, a GPU)
    python preprocess.py --scenes poster --methods nerfacto,kplanes-20 --max-iters 2000
    python preprocess.py --executor slurm --partition gpu    # one SLURM array task per job; then --status

Each job: ``ns-train`` -> ``ns-render interpolate`` -> PNG frames in renders/{scene}__{method}/ + an mp4 in
renders/videos/, a done-marker and a log per job. Finished jobs are skipped, unfinished ones cleaned and redone,
a failing job does not stop the others. Exit code: 0 all done, 1 some job failed, 2 nothing run (bad setup),
130 interrupted (run again to resume). The work is done by models.preprocess (run.py: plan, check or run).
"""

from __future__ import annotations

import sys
import textwrap

from consts import NS_METHODS
from models import cli
from models.preprocess.config import PreprocessConfig
from models.preprocess.run import run

# cli.parse keeps line breaks in these (raw formatter): wrap them as argparse's default formatter did.
DESCRIPTION = textwrap.fill("Train every scene x method with nerfstudio and render its interpolated path to PNG "
                            "frames + mp4 (resumable: finished jobs are skipped, interrupted ones redone).", 78)
EPILOG = textwrap.fill("nerfstudio is your own CUDA environment (docs/preprocess.md); this script only "
                       f"calls its commands. Methods: {', '.join(NS_METHODS)}.", 78)


def parse_args(argv: list[str] | None = None) -> PreprocessConfig:
    """Flags -> config; an unknown method or a bad value exits 2 with one line."""
    return cli.parse(PreprocessConfig, argv, description=DESCRIPTION, epilog=EPILOG).config


def main(argv: list[str] | None = None) -> int:
    cli.stop_on_sigterm()
    return cli.main(parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
