"""Which method renders this scene best, how sure is that, and where does each one fail? One page per OUT.

    python report.py SCENE/                               # SCENE/<method>/: frame folders or videos -> NVS-SQA
    python report.py SCENE/ --gt GT/                      # + PSNR, SSIM, LPIPS (the nerfbaselines preset)
    python report.py output/garden/ --preset 3dgs         # 3DGS tree: test/ours_<iter>/{renders,gt}
    python report.py SCENE/ --references PHOTOS/          # + CrossScore from real photos of the scene
    python report.py A/ B/ --out report/ --executor slurm # one job per scene x method, then the page here

Writes OUT/index.html (static, self-contained: opens from disk), report.csv (every number on the page, one per
row), frames.csv (every per-frame value) and report.json (all of it with versions, checkpoint sha256, presets,
seeds), merged as one unit: the scenes reported into OUT before stay on the page, a scene reported again is
replaced (--only: this run's scenes only); OUT/cache/ keeps each method's numbers, so a rerun computes only what is new.
Exit code: 0 everything measured, 1 some inputs failed (each one line; the report of the rest is written),
2 nothing to report. Details: docs/report.md.
"""

from __future__ import annotations

import sys

from models import cli
from models.report.config import ReportConfig
from models.report.run import run

__all__ = ["ReportConfig", "main", "run"]

main = cli.script(ReportConfig, run, "A scene report: NVS-SQA, full-reference metrics and CrossScore of every "
                  "method of a scene, ranked with confidence, and where each fails (HTML + CSV).")

if __name__ == "__main__":
    cli.stop_on_sigterm()  # a scheduler's stop keeps the finished methods' cache, as Ctrl-C does
    sys.exit(main())
