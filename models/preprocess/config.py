"""preprocess.py's options: the config dataclass (every flag) and how its paths are shown."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from consts import DATASETS_DIR, NS_METHODS, NS_OUTPUTS_DIR, RENDERS_DIR, TRAIN_METHODS, TRAIN_SCENES
from models.cli import opt
from models.cluster import EXECUTORS, GROUP, SLURM_HELP, SlurmOptions
from models.errors import InputError


def rel(path: Path) -> str:
    """``path`` relative to the current folder when inside it (readable commands), else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def names(values: list[str]) -> list[str]:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]``: names may be given space- or comma-separated."""
    return [v for item in values for v in item.split(",") if v]


@dataclass
class PreprocessConfig:
    """Options of one preprocess run (all flags of preprocess.py)."""

    scenes: list[str] = opt(list(TRAIN_SCENES), "nerfstudio capture names, space- or comma-separated (default: "
                            "the 17 training scenes)", metavar="SCENE")
    methods: list[str] = opt(list(TRAIN_METHODS), "keys of consts.NS_METHODS, space- or comma-separated (default: "
                             "all 8 methods)", metavar="METHOD")
    datasets: str = opt(rel(DATASETS_DIR), "captures in DATASETS/nerfstudio/SCENE")
    outputs: str = opt(rel(NS_OUTPUTS_DIR), "ns-train output folder")
    renders: str = opt(rel(RENDERS_DIR), "frames, videos/ and logs/")
    ns_bin: str | None = opt(None, "folder with ns-train/ns-render, e.g. ~/ns-venv/bin (default: PATH)")
    device: str = opt("auto", "auto: cuda when nerfstudio's torch sees a GPU (cpu: slow, CUDA-only methods refused)",
                      choices=("auto", "cuda", "cpu"))
    max_iters: int = opt(0, "ns-train --max-num-iterations (default: the method's)", min=0)
    download: bool = opt(False, "run ns-download-data for missing captures first")
    force: bool = opt(False, "redo finished jobs as well")
    dry_run: bool = opt(False, "print the plan (every command) and run nothing")
    check_cli: bool = opt(False, "parse every planned command with your nerfstudio's own CLI (no training) and report")
    plan_json: str | None = opt(None, "write the plan and its GPU-hour estimate (or the --check-cli report) to this "
                                "JSON file too")
    run_name: str | None = opt(None, "runs/NAME/ gets config.json + summary.json (default: preprocess-<time>)")
    executor: str = opt("local", "local: on this machine (one job at a time, or one per GPU of --gpus) | slurm: one "
                        "array task per job through submitit (docs/cluster.md)", choices=EXECUTORS, group=GROUP)
    gpus: str = opt("", "with --executor local: GPU ids, e.g. 0,1: one job per GPU at a time (default: one job at "
                    "a time, all GPUs visible)", metavar="0,1,…", group=GROUP)
    gpus_per_job: int = opt(1, "with --executor slurm: GPUs of each array task (sbatch --gpus-per-node)", min=0,
                            group=GROUP)
    wait: bool = opt(False, "with --executor slurm: wait for the tasks and print the summary (default: submit and "
                     "return; follow with --status)", group=GROUP)
    status: bool = opt(False, "show every job's state (done / running / queued / failed with its log / to run) and "
                       "submit nothing", group=GROUP)
    slurm: SlurmOptions = opt(SlurmOptions(), SLURM_HELP)

    def __post_init__(self) -> None:
        # Comma lists are split here, so a config built in code means the same as the flags.
        self.scenes, self.methods = names(self.scenes), names(self.methods)
        if bad := [m for m in self.methods if m not in NS_METHODS]:
            raise InputError(f"unknown method(s) {', '.join(bad)}; choose from {', '.join(NS_METHODS)}")
        captures = Path(self.datasets) / "nerfstudio"
        if bad := [s for s in self.scenes if s not in TRAIN_SCENES and not (captures / s).is_dir()]:
            raise InputError(f"--scenes: unknown scene(s) {', '.join(bad)} (not a training scene, and no custom "
                             f"capture {captures / bad[0]}/); known scenes: {', '.join(TRAIN_SCENES)}")
        if self.gpus and not re.fullmatch(r"\d+(,\d+)*", self.gpus):
            raise InputError(f"--gpus {self.gpus}: give GPU ids separated by commas, e.g. 0,1")
        if self.gpus and self.executor != "local":
            raise InputError("--gpus is for --executor local; on SLURM each array task gets --gpus-per-job GPUs")

    def gpu_ids(self) -> list[int]:
        return [int(g) for g in self.gpus.split(",")] if self.gpus else []
