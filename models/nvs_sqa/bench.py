"""Scorer benchmark: our engine vs the upstream wheel's own inference code, same frames, same run.

    python -m models.nvs_sqa.bench            # (make bench) -> benchmarks/scorer.json and benchmarks/scorer.md

Each engine runs in its own subprocess (so peak RSS is its own) over the example sequences; rounds alternate
upstream/ours and the best round per engine is kept (least disturbed by other load). Upstream's code is the
wheel's ``nvs_sqa`` package, imported from the verified wheel in the cache; its ``torchvision`` import is
satisfied by a minimal stand-in here only (its inference path never calls torchvision). Upstream's regressor
pickle is not loaded: features are compared, scores come from our JSON regressor.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import types
import zipfile
from pathlib import Path

import numpy as np

from consts import CACHE_DIR, EXAMPLES_DIR, RELEASED, ROOT
from models.results import atomic_write_bytes, atomic_write_json, sha256_file, stamp, table

OUT_DIR = ROOT / "benchmarks"


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _upstream_encoder():
    """The release's own model code and weights, loaded from the verified wheel."""
    wheel = CACHE_DIR / "wheels" / RELEASED.wheel_file
    if not wheel.is_file() or sha256_file(wheel) != RELEASED.wheel_sha256:
        raise SystemExit(f"{wheel}: missing or not the release; run `make setup` first")
    src = CACHE_DIR / "upstream-src"
    if not (src / "nvs_sqa").is_dir():
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(src)
    tv = types.ModuleType("torchvision")  # stand-in: upstream imports it, inference never uses it
    tv.transforms = types.SimpleNamespace(ToTensor=lambda: None, Compose=lambda xs: None)
    sys.modules.setdefault("torchvision", tv)
    sys.modules.setdefault("torchvision.transforms", tv.transforms)  # type: ignore[arg-type]
    sys.path.insert(0, str(src))
    import torch
    from nvs_sqa import utils

    return utils.load_model(torch.device("cpu")).eval(), torch  # as QualityAssessor does


def worker(engine: str, folders: list[str], batch: int) -> dict:
    """Run one engine over ``folders``; returns timings, features and peak RSS of this process."""
    t0 = time.perf_counter()
    if engine == "upstream":
        import contextlib
        import io
        import warnings

        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # upstream's nested-tensor UserWarning
            enc, torch = _upstream_encoder()
        import glob

        def feats(folder: str) -> np.ndarray:
            paths = sorted(p for p in glob.glob(os.path.join(folder, "*.*"))
                           if p.split(".")[-1].lower() in ("png", "jpg", "jpeg"))
            with torch.no_grad():
                return enc.predict_features_from_view_paths(paths, torch.device("cpu")).cpu().numpy()
    else:
        from models.nvs_sqa import NVSSQA

        model = NVSSQA.from_checkpoint(None, device="cpu")

        def feats(folder: str) -> np.ndarray:
            return model.features(folder, batch_size=batch)
    load_s = time.perf_counter() - t0
    out = {"engine": engine, "load_s": load_s, "sequences": {}}
    for folder in folders:
        n = len([p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg")])
        t = time.perf_counter()
        f = feats(folder)
        dt = time.perf_counter() - t
        out["sequences"][Path(folder).name] = {"frames": n, "seconds": dt, "features": f.tolist()}
    out["peak_rss_mb"] = _peak_rss_mb()
    return out


def _run_worker(engine: str, folders: list[Path], batch: int) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
        cmd = [sys.executable, "-m", "models.nvs_sqa.bench", "--worker", engine, "--batch-size", str(batch),
               "--result", tmp.name, *map(str, folders)]
        subprocess.run(cmd, check=True, cwd=ROOT)
        return json.loads(Path(tmp.name).read_text())


def _long_sequence(n_copies: int, dst: Path) -> Path:
    """A 600-frame sequence: the NeRF example repeated, as symlinks (no extra disk)."""
    src = sorted((EXAMPLES_DIR / "Giraffe+NeRF").glob("*.jpg"))
    dst.mkdir(parents=True, exist_ok=True)
    for k in range(n_copies):
        for i, p in enumerate(src):
            link = dst / f"frame{k * len(src) + i:06d}.jpg"
            if not link.exists():
                link.symlink_to(p.resolve())
    return dst


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Benchmark our NVS-SQA engine against the upstream release's code.")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds per engine; best kept (default 2)")
    p.add_argument("--batch-size", type=int, default=2, help="our engine's frames per call (default 2)")
    p.add_argument("--upstream-batch", type=int, default=10, help="upstream's fixed batch (informational)")
    p.add_argument("--worker", choices=["upstream", "ours"], help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("folders", nargs="*", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        atomic_write_json(Path(a.result), worker(a.worker, a.folders, a.batch_size))
        return 0

    examples = [EXAMPLES_DIR / n for n in ("Giraffe+NeRF", "Giraffe+IBRNet-C")]
    runs: dict[str, list[dict]] = {"upstream": [], "ours": []}
    for r in range(a.rounds):
        for engine in ("upstream", "ours"):
            print(f"round {r + 1}/{a.rounds}: {engine} on {len(examples)} sequences ...", flush=True)
            runs[engine].append(_run_worker(engine, examples, a.batch_size))

    def frames_and_time(run: dict) -> tuple[int, float]:
        seqs = run["sequences"].values()
        return sum(s["frames"] for s in seqs), sum(s["seconds"] for s in seqs)

    best = {e: min(rs, key=lambda run: frames_and_time(run)[1]) for e, rs in runs.items()}
    rows = []
    for e, run in best.items():
        n, sec = frames_and_time(run)
        rows.append({"engine": e, "frames": n, "ms_per_frame": 1000 * sec / n, "frames_per_s": n / sec,
                     "peak_rss_mb": max(r["peak_rss_mb"] for r in runs[e]), "load_s": run["load_s"]})
    diff = max(float(np.abs(np.array(best["ours"]["sequences"][k]["features"]) -
                            np.array(best["upstream"]["sequences"][k]["features"])).max())
               for k in best["ours"]["sequences"])
    with tempfile.TemporaryDirectory() as tmp:
        print("ours on a 600-frame sequence ...", flush=True)
        long = _run_worker("ours", [_long_sequence(5, Path(tmp) / "Giraffe+NeRF-x5")], a.batch_size)
    n_long, s_long = frames_and_time(long)
    rows.append({"engine": "ours (600 frames)", "frames": n_long, "ms_per_frame": 1000 * s_long / n_long,
                 "frames_per_s": n_long / s_long, "peak_rss_mb": long["peak_rss_mb"], "load_s": long["load_s"]})
    speedup = rows[0]["ms_per_frame"] / rows[1]["ms_per_frame"]
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    machine = f"{cpu}, {os.cpu_count()} cores, {platform.system()} (no GPU)"
    import torch

    result = stamp(
        machine=machine, torch_threads=torch.get_num_threads(), rounds=a.rounds, batch_size=a.batch_size,
        upstream_batch=a.upstream_batch, rows=rows, speedup=speedup, max_feature_abs_diff=diff,
        goals={"speedup>=3": speedup >= 3, "diff<=1e-4": diff <= 1e-4,
               "rss<=700MB": all(r["peak_rss_mb"] <= 700 for r in rows if r["engine"].startswith("ours"))},
    )
    OUT_DIR.mkdir(exist_ok=True)
    atomic_write_json(OUT_DIR / "scorer.json", result)
    cols = ["engine", "frames", "ms_per_frame", "frames_per_s", "peak_rss_mb", "load_s"]
    md = (f"Measured by `make bench` on {machine}, torch {torch.__version__}, {result['created']}.\n\n"
          + table(rows, cols, floatfmt=".1f", fmt="github")
          + f"\n\nSpeed-up (frames/s, ours vs upstream): **{speedup:.2f}x**; max |feature difference|: "
            f"**{diff:.1e}**.\n")
    atomic_write_bytes(OUT_DIR / "scorer.md", md.encode())
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
