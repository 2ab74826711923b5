"""crossscore.py train under torchrun (DDP, gloo on the CPU) = the single-process run of the combined batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def _data(root: Path) -> None:
    rng = np.random.default_rng(1)
    for split in ("a", "b"):
        for i in range(4):
            gt = (np.kron(rng.random((4, 5, 3)), np.ones((7, 9, 1)))[:28, :42] * 255).astype(np.uint8)
            for sub, img in (("gt", gt), ("renders/noise", np.clip(gt + rng.normal(0, 40, gt.shape), 0, 255))):
                (root / "scene" / split / sub).mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.asarray(img, np.uint8)).save(root / "scene" / split / sub / f"{split}{i}.png")


def _train(launcher: list[str], data: Path, runs: Path, name: str, batch: int) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [*launcher, str(ROOT / "crossscore.py"), "train", "--data", str(data), "--backbone", "tiny", "--name", name,
           "--runs-dir", str(runs), "--steps", "3", "--batch-size", str(batch), "--short-side", "0", "--crop", "28",
           "--n-ref", "2", "--device", "cpu", "--threads", "1", "--quiet", "--save-every", "3", "--fig-every", "3"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]


def test_torchrun_two_processes_equal_one_with_the_combined_batch(tmp_path):
    data, runs = tmp_path / "data", tmp_path / "runs"
    _data(data)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    _train(torchrun, data, runs, "ddp", 1)
    _train([sys.executable], data, runs, "single", 2)
    ddp = torch.load(runs / "ddp" / "model" / "model.pth", weights_only=True)
    one = torch.load(runs / "single" / "model" / "model.pth", weights_only=True)
    start = torch.load(runs / "single" / "state.pth", weights_only=True)["step"]
    assert start == 3 and ddp.keys() == one.keys()
    diff = max(float((ddp[k].float() - one[k].float()).abs().max()) for k in ddp)
    assert diff < 1e-4, diff  # the same 3 updates; only the order of float sums differs
    moved = max(float((one[k].float() - v.float()).abs().max()) for k, v in
                torch.load(runs / "single" / "state.pth", weights_only=True)["model"].items())
    assert moved == 0  # state.pth and model.pth agree (a sanity check on what is compared)
    mean = [json.loads((runs / n / "model" / "config.json").read_text())["meta"]["train_target_mean"]
            for n in ("ddp", "single")]
    assert abs(mean[0] - mean[1]) < 1e-6  # the targets of both processes counted (float32 sums, any order)
