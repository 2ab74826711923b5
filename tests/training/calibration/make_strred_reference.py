"""Reference ST-RRED values from scikit-video (the implementation upstream NVS-SQA used), as a test fixture.

scikit-video 1.1.11 needs numpy<1.24, so this runs in its own venv, never in the project's:

    python3.11 -m venv /tmp/skvideo-venv
    /tmp/skvideo-venv/bin/pip install numpy==1.23.5 scipy==1.10.1 scikit-video==1.1.11 pillow==10.4.0
    /tmp/skvideo-venv/bin/python tests/training/calibration/make_strred_reference.py

Writes (committed): tests/training/calibration/strred_clips.npz (the luminance clips, uint8, so both venvs see the
same pixels whatever their JPEG decoder), tests/training/calibration/strred_reference.json (skvideo's strred values and
its time per clip pair) and models/sp5_filters.json (the three steerable-pyramid filters ST-RRED uses, taken
from skvideo's load_sp5filters: matlabPyrTools' sp5Filters).
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
import scipy
import skvideo
from PIL import Image, ImageFilter
from skvideo.measure import strred
from skvideo.utils.stpyr import load_sp5filters

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
T, H, W = 4, 128, 160  # frames, crop: the level-4 band is 16x20 -> 5x6 non-overlapping 3x3 blocks


def luma(path: Path, box: tuple[int, int], blur: float = 0.0) -> np.ndarray:
    im = Image.open(path).convert("RGB")
    if blur:
        im = im.filter(ImageFilter.GaussianBlur(blur))
    a = np.asarray(im, dtype=np.float64)
    y = 0.2989 * a[..., 0] + 0.5870 * a[..., 1] + 0.1140 * a[..., 2]  # skvideo.utils.rgb2gray weights
    x, y0 = box
    return np.clip(np.rint(y[y0:y0 + H, x:x + W]), 0, 255).astype(np.uint8)


def clip(method: str, start: int, box: tuple[int, int], blur: float = 0.0) -> np.ndarray:
    folder = ROOT / "examples" / method
    return np.stack([luma(folder / f"frame{start + i:07d}.jpg", box, blur) for i in range(T)])


def main() -> None:
    rng = np.random.default_rng(0)
    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    pairs["nerf_vs_ibrnet"] = (clip("Giraffe+NeRF", 10, (400, 300)), clip("Giraffe+IBRNet-C", 10, (400, 300)))
    pairs["nerf_vs_ibrnet_b"] = (clip("Giraffe+NeRF", 60, (100, 500)), clip("Giraffe+IBRNet-C", 60, (100, 500)))
    ref = clip("Giraffe+NeRF", 30, (600, 200))
    noisy = np.clip(ref + rng.normal(0, 8, ref.shape), 0, 255).round().astype(np.uint8)
    pairs["gaussian_noise"] = (ref, noisy)
    pairs["blur"] = (ref, clip("Giraffe+NeRF", 30, (600, 200), blur=1.5))
    shifted = clip("Giraffe+NeRF", 90, (250, 420))
    frozen = np.repeat(shifted[:1], T, axis=0)  # temporal distortion: a frozen frame
    pairs["frozen"] = (shifted, frozen)
    pairs["ibrnet_vs_nerf_late"] = (clip("Giraffe+IBRNet-C", 100, (700, 560)), clip("Giraffe+NeRF", 100, (700, 560)))

    results = {}
    for name, (a, b) in pairs.items():
        times = []
        for _ in range(3):  # best of 3: the machine is shared
            t0 = time.perf_counter()
            _, value, value_sn = strred(a[..., None].astype(np.float64), b[..., None].astype(np.float64))
            times.append(time.perf_counter() - t0)
        results[name] = {"strred": float(value), "strredssn": float(value_sn), "seconds": round(min(times), 4)}
        print(f"{name:24s} strred={value:.6f} strredssn={value_sn:.6f} {results[name]['seconds']:.3f}s")

    np.savez_compressed(HERE / "strred_clips.npz", **{f"{k}__ref": v[0] for k, v in pairs.items()},
                        **{f"{k}__dis": v[1] for k, v in pairs.items()})
    meta = {"scikit_video": skvideo.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "python": platform.python_version(), "machine": platform.processor() or platform.machine(),
            "clip_shape": [T, H, W], "input": "uint8 luminance (0.2989 R + 0.5870 G + 0.1140 B), passed as float",
            "pairs": results}
    (HERE / "strred_reference.json").write_text(json.dumps(meta, indent=2) + "\n")
    lo0filt, _, lofilt, bfilts, _, _ = load_sp5filters()
    filters = {"source": "scikit-video 1.1.11 skvideo.utils.stpyr.load_sp5filters (matlabPyrTools sp5Filters)",
               "lo0filt": lo0filt.tolist(), "lofilt": lofilt.tolist(), "bfilt0": bfilts[0].tolist()}
    (ROOT / "models" / "training" / "sp5_filters.json").write_text(json.dumps(filters) + "\n")


if __name__ == "__main__":
    main()
