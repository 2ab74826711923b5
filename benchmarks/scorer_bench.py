"""Scorer benchmark: the authors' inference code, our engine in each precision mode and app.py, same frames, one run.

    python -m benchmarks.scorer_bench            # (make bench) -> benchmarks/scorer.json and benchmarks/scorer.md

Every engine runs in its own subprocess (so peak RSS and page faults are its own) over the two example sequences;
the engines take turns within each round (the order rotates from round to round), so load from other users of
the machine falls on all of them alike; the machine load is recorded before every run. Per engine: ms/frame
min/median/max over the rounds, and the speed-up read two ways: median against median, and the spread of the
per-round ratios (authors' time / engine's time in the same round). The authors' code is the wheel's ``nvs_sqa``
package, imported from the verified wheel in the cache; its ``torchvision`` import is satisfied by a minimal
stand-in here only (its inference path never calls torchvision). ``app`` is ``app.py`` itself (scores, validity
checks, written results), timed by the ``seconds`` of its scores.json rows; its whole-process wall time is kept
too. ``mixed``/``bf16`` run only on a CPU with native bfloat16 (elsewhere they would run exact: precision.py).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import types
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from consts import CACHE_DIR, EXAMPLE_SEQUENCES, EXAMPLES_DIR, REFERENCE_FEATURES, RELEASED, ROOT
from models import cli
from models.cli import opt
from models.results import atomic_write_json, read_npz, sha256_file, stamp, table, write_report
from models.runtime import cpu_name

OUT_DIR = ROOT / "benchmarks"
GOALS = {"exact": 3.0, "mixed": 4.5, "bf16": 5.0, "app": 3.0}  # × the authors' frames/s (docs/performance.md)
WORKER = "--engine-worker"  # internal: run one engine in this process and write its result file


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


def _n_frames(folder: str | Path) -> int:
    return len([p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg")])


def worker(engine: str, folders: list[str], batch: int, emulated: bool = False) -> dict:
    """Run one engine (``upstream`` or a precision mode of ours) over ``folders``: timings, features, page faults
    and peak RSS of this process. ``emulated``: run the mode even where this CPU lacks native bfloat16."""
    t0 = time.perf_counter()
    precision = "fp32 (authors')"
    if engine == "upstream":
        import contextlib
        import glob
        import io
        import warnings

        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # upstream's nested-tensor UserWarning
            enc, torch = _upstream_encoder()

        def feats(folder: str) -> np.ndarray:
            paths = sorted(p for p in glob.glob(os.path.join(folder, "*.*"))
                           if p.split(".")[-1].lower() in ("png", "jpg", "jpeg"))
            with torch.no_grad():
                return enc.predict_features_from_view_paths(paths, torch.device("cpu")).cpu().numpy()
    else:
        from models.nvs_sqa import NVSSQA
        from models.nvs_sqa.precision import native_bf16

        model = NVSSQA.from_checkpoint(None, device="cpu", precision=engine, emulate=emulated)
        precision = model.precision + (" (emulated)" if emulated and not native_bf16() and engine != "exact" else "")

        def feats(folder: str) -> np.ndarray:
            return model.features(folder, batch_size=batch)
    out = {"engine": engine, "precision": precision, "load_s": time.perf_counter() - t0, "sequences": {}}
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for folder in folders:
        t = time.perf_counter()
        f = feats(folder)
        out["sequences"][Path(folder).name] = {"frames": _n_frames(folder), "seconds": time.perf_counter() - t,
                                               "features": f.tolist()}
    out["minor_page_faults"] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    out["peak_rss_mb"] = _peak_rss_mb()
    return out


def _run_worker(engine: str, folders: list[Path], batch: int, emulated: bool = False) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
        cmd = [sys.executable, "-m", "benchmarks.scorer_bench", WORKER, engine, str(batch), tmp.name,
               "emulated" if emulated else "native", *map(str, folders)]
        subprocess.run(cmd, check=True, cwd=ROOT)
        return json.loads(Path(tmp.name).read_text())


def _run_app(folders: list[Path]) -> dict:
    """app.py as a user runs it (default options, scores written to a fresh --out): per-sequence seconds from its
    scores.json, features from its output_features.npz."""
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        subprocess.run([sys.executable, "app.py", "--quiet", "--out", out, *map(str, folders)], check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t
        rows = json.loads((Path(out) / "scores.json").read_text())
        feats = np.load(Path(out) / "output_features.npz")
        seqs = {r["name"]: {"frames": r["frames"], "seconds": r["seconds"], "features": feats[r["name"]].tolist()}
                for r in rows["rows"]}
    return {"engine": "app", "precision": rows.get("precision", "exact"), "wall_s": wall, "sequences": seqs}


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


def _ms_per_frame(run: dict) -> float:
    seqs = run["sequences"].values()
    return 1000 * sum(s["seconds"] for s in seqs) / sum(s["frames"] for s in seqs)


def _reference() -> dict[str, np.ndarray] | None:
    return read_npz(REFERENCE_FEATURES) or None


def summarize(runs: dict[str, list[dict]], loads: list[float], ref: dict[str, np.ndarray] | None,
              predict) -> list[dict]:
    """One row per engine: ms/frame spread, speed-ups against the authors' code, feature and JOD errors."""
    up = [_ms_per_frame(r) for r in runs["upstream"]]
    exact_feats = runs["exact"][0]["sequences"] if "exact" in runs else None
    rows = []
    for engine, rs in runs.items():
        ms = [_ms_per_frame(r) for r in rs]
        paired = [u / m for u, m in zip(up, ms, strict=True)]
        seqs = rs[0]["sequences"]
        row = {"engine": engine, "precision": rs[0].get("precision", "-"),
               "frames": sum(s["frames"] for s in seqs.values()), "ms_min": min(ms), "ms_median": float(np.median(ms)),
               "ms_max": max(ms), "speedup": float(np.median(up) / np.median(ms)), "speedup_min": min(paired),
               "speedup_max": max(paired)}
        if ref is not None and set(seqs) <= set(ref):
            row["feature_err"] = max(float(np.abs(np.array(s["features"]) - ref[k]).max()) for k, s in seqs.items())
            row["jod_err"] = max(abs(float(predict(np.array(s["features"], np.float32))[0])
                                     - float(predict(ref[k])[0])) for k, s in seqs.items())
        if exact_feats is not None:
            row["vs_exact"] = max(float(np.abs(np.array(s["features"]) - np.array(exact_feats[k]["features"])).max())
                                  for k, s in seqs.items())
        for key in ("peak_rss_mb", "load_s", "wall_s"):
            if key in rs[0]:
                row[key] = max(r[key] for r in rs)
        if "wall_s" in rs[0]:  # app.py's whole process (start-up, the curve and the files included)
            walls = [r["wall_s"] for r in rs]
            row["wall_s_min"], row["wall_s_median"] = min(walls), float(np.median(walls))
        if "minor_page_faults" in rs[0]:
            row["faults_per_frame"] = [round(r["minor_page_faults"] / row["frames"]) for r in rs]
        rows.append(row)
    return rows


@dataclass
class ScorerBenchConfig:
    """Flags of ``python -m benchmarks.scorer_bench`` (make bench)."""

    rounds: int = opt(5, "rounds; each runs every engine once", min=1)
    batch_size: int = opt(1, "our engine's frames per call (1, as app.py on a CPU)", min=1)
    emulated: bool = opt(False, "also run mixed/bf16 without native bfloat16 (slow)")
    long: bool = opt(True, "the 600-frame memory run")
    sequences: list[str] = opt([], "frame folders (default: the two examples)", metavar="DIR")
    out: str = opt(str(OUT_DIR), "folder for scorer.json and scorer.md")


def run(cfg: ScorerBenchConfig) -> int:
    import torch

    from models.nvs_sqa.checkpoint import load_checkpoint
    from models.nvs_sqa.precision import native_bf16

    native = native_bf16()
    engines = ["upstream", "exact", "app"] + (["mixed", "bf16"] if native or cfg.emulated else [])
    examples = [Path(p) for p in cfg.sequences] or [EXAMPLES_DIR / n for n in EXAMPLE_SEQUENCES]
    runs, loads = _rounds(engines, examples, cfg)
    rows = summarize(runs, loads, _reference(), load_checkpoint(None).regressor.predict)
    long_row = _long_run(cfg.batch_size) if cfg.long else None
    capability = torch.backends.cpu.get_cpu_capability()  # the kernels torch runs here (AVX2, AVX512, ...)
    machine = f"{cpu_name()} ({capability}{', native bfloat16' if native else ''}), {os.cpu_count()} cores, " \
        f"{platform.system()} (no GPU)"  # fmt: skip
    lv = [x["load_1min"] for x in loads]
    skipped = {} if native or cfg.emulated else {
        m: "not run: this CPU has no native bfloat16 (AVX512_BF16/AMX); --precision mixed/bf16 run exact here"
        for m in ("mixed", "bf16")}  # fmt: skip
    result = stamp(machine=machine, cpu_capability=capability, cpu_native_bf16=native,
                   torch_threads=torch.get_num_threads(), rounds=cfg.rounds,
                   batch_size=cfg.batch_size, rows=rows, long=long_row, skipped=skipped, goals=goals(rows, long_row),
                   load={"min": min(lv), "median": float(np.median(lv)), "max": max(lv), "per_run": loads})
    write_report(Path(cfg.out), "scorer", result, render_md(result, torch.__version__))
    return 0


def _rounds(engines: list[str], examples: list[Path], cfg: ScorerBenchConfig) -> tuple[dict, list[dict]]:
    """Every engine once per round, the order rotated from round to round (nobody always runs first)."""
    runs: dict[str, list[dict]] = {e: [] for e in engines}
    loads: list[dict] = []
    for r in range(cfg.rounds):
        for engine in engines[r % len(engines):] + engines[:r % len(engines)]:
            load = os.getloadavg()[0]
            print(f"round {r + 1}/{cfg.rounds}: {engine} (load {load:.2f}) ...", flush=True)
            one = _run_app(examples) if engine == "app" else _run_worker(engine, examples, cfg.batch_size,
                                                                           cfg.emulated)  # fmt: skip
            one["load"] = load
            loads.append({"round": r + 1, "engine": engine, "load_1min": load, "ms_per_frame": _ms_per_frame(one)})
            runs[engine].append(one)
    return runs, loads


def _long_run(batch: int) -> dict:
    """Exact on a 600-frame sequence: memory must not grow with the length."""
    with tempfile.TemporaryDirectory() as tmp:
        print("exact on a 600-frame sequence ...", flush=True)
        long = _run_worker("exact", [_long_sequence(5, Path(tmp) / "Giraffe+NeRF-x5")], batch)
    return {"engine": "exact (600 frames)", "frames": 600, "ms_per_frame": _ms_per_frame(long),
            "peak_rss_mb": long["peak_rss_mb"], "load_s": long["load_s"]}


def goals(rows: list[dict], long_row: dict | None) -> dict[str, bool]:
    """Each speed goal (× the authors' frames/s), the 1e-4 feature bound and the memory bound: met or not."""
    by = {r["engine"]: r for r in rows}
    out = {f"{e}>={g}x": by[e]["speedup"] >= g for e, g in GOALS.items() if e in by}
    out.update({f"{e} feature_err<=1e-4": by[e].get("feature_err", 1) <= 1e-4 for e in ("exact", "app", "mixed")
                if e in by})  # fmt: skip
    if long_row:
        out["rss<=700MB"] = all(r.get("peak_rss_mb", 0) <= 700 for r in [*rows[1:], long_row])
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [WORKER]:  # one engine in this process (internal: see _run_worker)
        engine, batch, result, emulated, *folders = argv[1:]
        atomic_write_json(Path(result), worker(engine, folders, int(batch), emulated == "emulated"))
        return 0
    desc = "Benchmark our NVS-SQA engine against the upstream release's code -> benchmarks/scorer.{json,md}"
    return cli.main(lambda a: cli.parse(ScorerBenchConfig, a, description=desc).config, run, argv)


def render_md(result: dict, torch_version: str) -> str:
    """benchmarks/scorer.md (the table docs/performance.md shows)."""
    rows = [{**r, "speedup": f"{r['speedup']:.2f}x ({r['speedup_min']:.2f}–{r['speedup_max']:.2f})",
             "feature_err": f"{r['feature_err']:.1e}" if "feature_err" in r else "-",
             "jod_err": f"{r['jod_err']:.1e}" if "jod_err" in r else "-"} for r in result["rows"]]
    cols = ["engine", "precision", "frames", "ms_min", "ms_median", "ms_max", "speedup", "feature_err", "jod_err",
            "peak_rss_mb"]
    ld = result["load"]
    up = next(r for r in result["rows"] if r["engine"] == "upstream")
    app = next((r for r in result["rows"] if r["engine"] == "app"), None)
    md = (f"Measured by `make bench` on {result['machine']}, torch {torch_version}, {result['created']}; "
          f"{result['rounds']} interleaved rounds, machine load (1-min average) {ld['min']:.1f}–{ld['max']:.1f} "
          f"(median {ld['median']:.1f}).\n\n"
          + table(rows, cols, floatfmt=".1f", fmt="github", text=("speedup", "feature_err", "jod_err")) + "\n\n"
          "ms = ms/frame end to end (decoding included) over the rounds; speedup = the authors' median / the "
          "engine's median (in brackets: the lowest and highest ratio within one round); feature_err / jod_err = "
          "max |difference| from the release's own features (`../shared/reference`) and their JOD.\n"
          f"The authors' code: {', '.join(map(str, up['faults_per_frame']))} minor page faults per frame "
          "in the rounds.\n")
    spread = 100 * (up["ms_max"] - up["ms_min"]) / up["ms_median"]
    md += (f"Noise of the baseline: the authors' code took {up['ms_min']:.1f}–{up['ms_max']:.1f} ms/frame over the "
           f"rounds (median {up['ms_median']:.1f}, spread {spread:.0f} % of it); the bracketed per-round ratios carry "
           "it.\n")
    if app:
        md += (f"`app.py` (whole process: start-up, scoring, curves and files): {app['wall_s_median']:.1f} s median "
               f"({app['wall_s_min']:.1f}–{app['wall_s']:.1f}) for the {app['frames']} frames.\n")
    if result.get("long"):
        lr = result["long"]
        md += f"Exact on 600 frames: {lr['ms_per_frame']:.1f} ms/frame, peak RSS {lr['peak_rss_mb']:.0f} MB.\n"
    for m, why in result.get("skipped", {}).items():
        md += f"`{m}`: {why}.\n"
    md += "Goals: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in result["goals"].items()) + ".\n"
    return md


if __name__ == "__main__":
    sys.exit(main())
