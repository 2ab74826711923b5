"""The README's Python API works from another folder once the repository is on the path (``PYTHONPATH``), as the
README says: the imports resolve, and the checkpoints and data the library reads are found beside the code, not in
the current folder."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from PIL import Image

from consts import ROOT

PROGRAM = """
import math
from models.crossscore import CrossScore
from models.fullref import FullReference
from models.nvs_sqa import NVSSQA

fr = FullReference("nerfbaselines", metrics=["psnr"], device="cpu")
print(fr.compute("render.png", "gt.png")["psnr"])
print(math.isinf(fr.compute("gt.png", "gt.png")["psnr"]))
"""


def test_the_api_imports_and_runs_from_another_folder(tmp_path):
    gt = np.zeros((32, 32, 3), np.uint8)
    render = gt.copy()
    render[0, 0, 0] = 255  # one channel of one pixel off by 255: MSE = 255**2 / 3072, PSNR = 10 log10(3072)
    Image.fromarray(gt).save(tmp_path / "gt.png")
    Image.fromarray(render).save(tmp_path / "render.png")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    alone = subprocess.run([sys.executable, "-c", PROGRAM], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert alone.returncode != 0 and "No module named 'models'" in alone.stderr  # why the README says so
    run = subprocess.run([sys.executable, "-c", PROGRAM], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    psnr, exact = run.stdout.split()
    assert abs(float(psnr) - 10 * np.log10(3072)) < 1e-4 and exact == "True"
