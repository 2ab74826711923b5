"""report.py's options: one dataclass, every flag (help text on each field)."""

from __future__ import annotations

from dataclasses import dataclass

from models.cli import opt
from models.cluster import EXECUTORS, GROUP, SLURM_HELP, SlurmOptions
from models.runtime import DEVICES


@dataclass
class ReportConfig:
    """Options of one scene report (all flags of report.py)."""

    scenes: list[str] = opt([], "a scene: one folder (or video) per method, or a 3DGS / NerfBaselines / nerfstudio "
                            "tree; SCENEs of one folder name are one scene (runs_a/garden runs_b/garden: methods "
                            "runs_a, runs_b); several scenes make one page", positional=True, metavar="SCENE")
    method: list[str] = opt([], "one method by name: NAME=PATH, PATH a frame folder or a video (its ground truth as "
                            "for the others); repeat the flag for each; joins the SCENE (several SCENEs: name it "
                            "SCENE/NAME; none: one scene named after the folder the paths share)",
                            metavar="NAME=PATH", repeat=True)
    gt: str | None = opt(None, "ground-truth frames, matched to each method's frames by name, any extension (a "
                         "video's by index) (default: the gt/ gt-color/ gt-rgb/ folders found beside the renders): "
                         "adds the full-reference metrics")
    references: str | None = opt(None, "real photos of the scene from other viewpoints: adds CrossScore")
    out: str = opt("report", "the report folder (index.html, report.csv, frames.csv, report.json, figures/): the "
                   "scenes reported there before stay on the page, a scene reported again is replaced")
    only: bool = opt(False, "a page of this run's scenes only (default: a page of every scene reported into OUT)")
    metrics: list[str] = opt([], "what to compute: jod (NVS-SQA), fvvdp (FovVideoVDP), crossscore, and full-reference "
                             "metric names (default: jod, with ground truth the preset's metrics and fvvdp, with "
                             "references crossscore)",
                             metavar="METRIC")
    preset: str = opt("nerfbaselines", "the full-reference protocol (docs/fullref.md)")
    background: str | None = opt(None, "white | black | R,G,B: composite RGBA renders and ground truth onto it before "
                                 "the full-reference metrics (default: the preset's, as its tool: nerfbaselines black, "
                                 "nerfbaselines-nerf and nerfstudio-* white, 3dgs drops alpha)")
    checkpoint: str | None = opt(None, "NVS-SQA checkpoint (default: the released v0.0.1)")
    crossscore_checkpoint: str | None = opt(None, "CrossScore checkpoint (default: the offline demo model)")
    bootstrap: int = opt(2000, "bootstrap resamples behind every confidence interval and decision", min=100)
    seed: int = opt(0, "seed of the bootstrap", min=0)
    maps: bool = opt(False, "also write every frame's full-reference maps, maps/<scene>/<method>/<frame>-<metric>.npy "
                     "(float32; large; computed after the metrics)")
    worst: int = opt(2, "worst windows / frames shown per method", min=0)
    device: str = opt("auto", "auto (cuda if present) | cpu | cuda", choices=DEVICES)
    redo: bool = opt(False, "recompute every method (default: reuse the cache in OUT/cache/)")
    quiet: bool = opt(False, "no progress bars or info messages")
    executor: str = opt("none", "none: here | local, slurm: one job per scene x method through submitit, then the "
                        "report here", choices=("none", *EXECUTORS), group=GROUP)
    slurm: SlurmOptions = opt(SlurmOptions(), SLURM_HELP)
