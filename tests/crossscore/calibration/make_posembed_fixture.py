"""DINOv2 position-embedding interpolation of transformers 4.33.3 (upstream CrossScore's pin), as a test fixture.

Upstream CrossScore runs ``Dinov2Model`` of transformers 4.33.3, whose ``interpolate_pos_encoding`` differs from
the installed 5.x one on every token grid that is not the table's own square grid. This script runs the real
4.33.3 code on a tiny random-weight DINOv2 (seeded) over non-square inputs and writes what it computed:

    .venv/bin/python tests/crossscore/calibration/make_posembed_fixture.py

Run by the project's Python (transformers 5.x), it first builds a separate venv, ``.cache/transformers-4.33.3``
(git-ignored): transformers==4.33.3 and the three of its dependencies whose 5.x-era versions it refuses
(tokenizers, huggingface_hub, requests + its own), installed with ``--no-deps``; torch, numpy, safetensors and
the rest come from the project venv through a ``.pth`` line, so both sides run the same torch 2.13.0. Then it
runs itself again inside that venv. Writes (committed), next to this file:

- ``posembed_hf433.npz``: the tiny model's tensors (4.33.3 parameter names) and, per case ``HxW`` (pixels),
  ``pos/HxW`` (the interpolated position table, CLS first) and ``tokens/HxW`` (``last_hidden_state``, every 3rd token);
- ``posembed_hf433.json``: the cases and their token grids, versions, and the parameter names and shapes of a
  4.33.3 ``Dinov2Model`` of DINOv2-S (the backbone part of upstream's checkpoint key layout).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
VENV = ROOT / ".cache" / "transformers-4.33.3"
PINS = ("transformers==4.33.3", "tokenizers==0.13.3", "huggingface_hub==0.17.3", "requests==2.32.3",
        "urllib3==2.2.3", "idna==3.10", "charset-normalizer==3.4.0", "certifi==2024.8.30")
SEED = 0
# The tiny model keeps DINOv2's 37x37 table (image 518, patch 14) so the grids are those predict meets: short
# side 518 at 4:3, 3:4, 16:9, a square image of another size, a near-square one (37x37 grid, different pixels:
# 4.33.3 still interpolates), a size that is no multiple of 14, and a small grid.
TINY = {"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "mlp_ratio": 2, "image_size": 518,
        "patch_size": 14, "layer_norm_eps": 1e-6, "layerscale_value": 1.0, "qkv_bias": True,
        "use_swiglu_ffn": False, "hidden_act": "gelu"}
CASES = ((518, 690), (690, 518), (518, 921), (560, 560), (518, 524), (523, 700), (112, 140), (518, 518))


def pattern(h: int, w: int) -> np.ndarray:
    """A deterministic (1, 3, h, w) float32 input, the same in both venvs without any RNG."""
    y, x = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    chans = [np.sin(0.05 * x + 0.3 * c) * np.cos(0.07 * y - 0.2 * c) + 0.1 * np.sin(0.9 * (x + 2 * y) + c)
             for c in range(3)]
    return np.stack(chans)[None].astype(np.float32)


def build_venv() -> Path:
    """The 4.33.3 venv (made once); returns its Python."""
    py = VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        # before the .pth exists, so pip sees an empty venv and touches nothing of the project's
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", *PINS], check=True)
        site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True).stdout.strip()
        Path(site, "zz_project_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return py


def generate() -> None:
    import torch
    import transformers
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(SEED)
    model = Dinov2Model(Dinov2Config(**TINY)).eval()
    with torch.no_grad():  # random, not the init's zeros/ones, so every tensor matters
        for p in model.parameters():
            p.copy_(torch.randn(p.shape) * 0.5)
    arrays = {f"param/{k}": v.numpy().copy() for k, v in model.state_dict().items()}
    cases = []
    for h, w in CASES:
        x = torch.from_numpy(pattern(h, w))
        with torch.no_grad():
            emb = model.embeddings.patch_embeddings(x)
            dummy = torch.zeros(1, emb.shape[1] + 1, emb.shape[2])
            arrays[f"pos/{h}x{w}"] = model.embeddings.interpolate_pos_encoding(dummy, h, w).numpy().copy()
            # every 3rd token (CLS first) keeps the fixture small; all grid rows and columns are hit
            arrays[f"tokens/{h}x{w}"] = model(pixel_values=x).last_hidden_state[:, ::3].numpy().copy()
        cases.append({"height": h, "width": w, "grid": [h // 14, w // 14]})
    small = Dinov2Model(Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, mlp_ratio=4,
                                     image_size=518, patch_size=14, layer_norm_eps=1e-6, layerscale_value=1.0))
    keys = {k: list(v.shape) for k, v in small.state_dict().items()}
    np.savez_compressed(HERE / "posembed_hf433.npz", **arrays)
    meta = {"transformers": transformers.__version__, "torch": torch.__version__, "seed": SEED, "tiny": TINY,
            "cases": cases, "dinov2_small_state_dict": keys,
            "made_by": "tests/crossscore/calibration/make_posembed_fixture.py"}
    (HERE / "posembed_hf433.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {HERE / 'posembed_hf433.npz'} and .json: {len(cases)} cases, transformers {transformers.__version__}")


def main() -> None:
    try:
        import transformers

        version = transformers.__version__
    except ImportError:
        version = ""
    if version == "4.33.3":
        generate()
        return
    py = build_venv()
    env = {**os.environ, "PYTHONNOUSERSITE": "1", "HF_HUB_OFFLINE": "1"}
    sys.exit(subprocess.run([str(py), __file__], env=env).returncode)


if __name__ == "__main__":
    main()
