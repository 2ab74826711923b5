"""Evaluate an NVS-SQA model: the published SRCC/PLCC benchmark, and a graded-degradation sanity benchmark.

    python evaluate.py                                # benchmark_bank/ with the released model
    python evaluate.py --checkpoint runs/train/ckpt   # ... with your own model (features cached per checkpoint)
    python evaluate.py --features feats.npz           # precomputed features {dataset+scene+method: 384-d}
    python evaluate.py --splits 100                   # + mean ± std over 100 random scene-wise 50/50 splits
    python evaluate.py --save-regressor               # + the fitted ridge, so app.py gives JOD scores
    python evaluate.py --degrade [INPUT ...]          # degradation benchmark (default: examples/)

Writes runs/<name>/: config.json, tables.md, scenes.csv, datasets.csv, predictions.csv, results.json
(+ features.npz from a bank, splits.csv with --splits, regressor.json and checkpoint/ with --save-regressor);
with --degrade: degrade.md, degrade_scores.csv, degrade_srcc.csv, degrade.json, degrade.png.
Exit code: 0 done, 2 bad input (one line saying which file and what to do).
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

import consts as C
from models.errors import InputError
from models.results import atomic_write_bytes

log = logging.getLogger("evaluate")


@dataclass
class EvalConfig:
    """Options of one evaluation run (all flags of evaluate.py)."""

    name: str = ""  # run folder runs/<name>; default benchmark-<model> or degrade-<model>
    checkpoint: str | None = None  # checkpoint folder; default: released v0.0.1
    device: str = "auto"  # auto | cpu | cuda
    batch_size: int = 0  # frames per view-encoder call; 0 = auto (2 on CPU, 16 on CUDA)
    threads: int = 0  # torch CPU threads; 0 = torch's default (one per core); results are identical either way
    quiet: bool = False  # no progress bars or info logs
    # --- benchmark
    bank: str = str(C.ROOT / "benchmark_bank")  # {dataset}/{scene}/{method}/frames/* (or a video per method)
    labels: str = str(C.ROOT / "benchmark_bank" / C.BENCHMARK_LABELS_FILE)  # labels + authoritative split
    features: str | None = None  # .npz {dataset+scene+method: feature}; replaces the bank and the model
    allow_missing: bool = False  # evaluate the sequences present when some are missing
    splits: int = 0  # extra random scene-wise 50/50 splits (mean ± std)
    seed: int = 0  # seed of the random splits and of the degradations
    alpha: float = 1.0  # ridge regularisation (upstream: scikit-learn's default 1.0)
    save_regressor: bool = False  # write the fitted regressor (+ a checkpoint folder app.py loads)
    no_cache: bool = False  # recompute bank features instead of reading .cache/features
    # --- degradation benchmark
    degrade: bool = False  # run the degradation benchmark instead of the benchmark tables
    inputs: list[str] = field(default_factory=lambda: [str(C.EXAMPLES_DIR)])  # sequences to degrade
    regressor: str | None = None  # regressor.json to score with (default: the checkpoint's own)
    distortions: list[str] = field(default_factory=list)  # subset of models.evaluation.degrade.DISTORTIONS; empty = all
    frames: int = 8  # frames per clip, evenly spaced over the sequence
    max_side: int = 320  # clips resized so that the longer side is at most this many pixels


def parse_args(argv: list[str] | None = None) -> EvalConfig:
    d = EvalConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog="Layout, protocol: README 'Evaluation'.",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="with --degrade: frame folders, folders of them, or videos (default: examples/)")
    p.add_argument("--name", default="", help="run folder runs/<name> (default: benchmark-<model>/degrade-<model>)")
    p.add_argument("--checkpoint", help="checkpoint folder with config.json + model.pth (default: released v0.0.1)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--batch-size", type=int, default=0, help="frames per network call (default: 2 CPU, 16 CUDA)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (default: one per core; 1 is much faster on a busy machine)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or info messages")
    b = p.add_argument_group("benchmark")
    b.add_argument("--bank", default=d.bank, help="benchmark bank folder (default: benchmark_bank/)")
    b.add_argument("--labels", default=d.labels,
                   help=f"label + split file (default: benchmark_bank/{C.BENCHMARK_LABELS_FILE})")
    b.add_argument("--features", help="evaluate precomputed features (.npz, keys dataset+scene+method); no bank needed")
    b.add_argument("--allow-missing", action="store_true", help="evaluate the sequences present if some are missing")
    b.add_argument("--splits", type=int, default=0, metavar="K", help="also K random scene-wise 50/50 splits")
    b.add_argument("--seed", type=int, default=0, help="seed of the random splits and of the degradations")
    b.add_argument("--alpha", type=float, default=1.0, help="ridge alpha (default 1.0, as upstream)")
    b.add_argument("--save-regressor", action="store_true",
                   help="write regressor.json (+ checkpoint/ that app.py --checkpoint loads) into the run folder")
    b.add_argument("--no-cache", action="store_true", help="recompute bank features (ignore .cache/features)")
    g = p.add_argument_group("degradation benchmark")
    g.add_argument("--degrade", action="store_true", help="score graded distortions of INPUT (default: examples/)")
    g.add_argument("--regressor", help="regressor.json to score with (default: the checkpoint's regressor.json)")
    g.add_argument("--distortions", default="", help="comma-separated subset of "
                   "blur,jpeg,noise,flicker,ghosting,floaters,downup (default: all)")
    g.add_argument("--frames", type=int, default=d.frames, help=f"frames per clip (default {d.frames})")
    g.add_argument("--max-side", type=int, default=d.max_side, help=f"longer side of a clip, px (default {d.max_side})")
    a = p.parse_args(argv)
    if a.batch_size < 0 or a.threads < 0 or a.splits < 0 or a.frames < 1 or a.max_side < 1 or a.alpha <= 0:
        p.error("--batch-size, --threads, --splits must be >= 0; --frames, --max-side, --alpha > 0")
    from models.evaluation.degrade import DISTORTIONS

    distortions = [d for d in a.distortions.split(",") if d]
    if set(distortions) - set(DISTORTIONS):
        p.error(f"--distortions: unknown {sorted(set(distortions) - set(DISTORTIONS))}; choose from "
                f"{','.join(DISTORTIONS)}")
    if a.inputs and not a.degrade:
        p.error("INPUT arguments are for --degrade; the benchmark reads --bank or --features")
    return EvalConfig(a.name, a.checkpoint, a.device, a.batch_size, a.threads, a.quiet, a.bank, a.labels, a.features,
                      a.allow_missing, a.splits, a.seed, a.alpha, a.save_regressor, a.no_cache, a.degrade,
                      a.inputs or d.inputs, a.regressor, distortions, a.frames, a.max_side)


def _model_label(cfg: EvalConfig) -> str:
    if cfg.features and not cfg.degrade:
        return Path(cfg.features).stem
    return Path(cfg.checkpoint).resolve().name if cfg.checkpoint else C.RELEASED.version


def _load_model(cfg: EvalConfig):
    from models.nvs_sqa import NVSSQA

    model = NVSSQA.from_checkpoint(cfg.checkpoint, cfg.device)
    return model, cfg.batch_size or (16 if model.device.type == "cuda" else 2)


def run_benchmark(cfg: EvalConfig, out: Path) -> int:
    """The benchmark tables; returns the exit code."""
    from models.evaluation import protocol as bm
    from models.evaluation.bank import FeatureCache, bank_features, scan_bank
    from models.results import sha256_file, stamp, write_csv, write_json, write_npz

    labels = bm.load_labels(Path(cfg.labels))
    provenance: dict = {}
    model = None
    if cfg.features:
        src = Path(cfg.features)
        feats = bm.load_feature_file(src)
        provenance = {"features": str(src), "features_sha256": sha256_file(src)}
        source_sha = provenance["features_sha256"]
    else:
        found, absent = scan_bank(Path(cfg.bank), labels.labels)
        if absent and not cfg.allow_missing:
            raise InputError(f"{cfg.bank}: {len(absent)} of {len(labels.labels)} labelled sequences have no frames, "
                             f"e.g. {absent[:3]}; add them or pass --allow-missing")
        model, batch = _load_model(cfg)
        source_sha = model.info["checkpoint_sha256"]
        cache = None if cfg.no_cache else FeatureCache(C.CACHE_DIR / "features", source_sha)
        t0 = time.perf_counter()
        feats, computed = bank_features(model, found, cache, batch, progress=not cfg.quiet)
        log.info("features of %d sequences (%d computed, %d from the cache) in %.1f s",
                 len(feats), computed, len(feats) - computed, time.perf_counter() - t0)
        provenance = {**{f"checkpoint_{k}": v for k, v in model.info.items()}, "computed": computed}
        write_npz(out / "features.npz", feats)
    missing = bm.match_features(feats, labels, cfg.features or cfg.bank, cfg.allow_missing)
    main = bm.evaluate_split(feats, labels.labels, labels.train, labels.test, cfg.alpha, source_sha)
    splits = [bm.evaluate_split(feats, labels.labels, tr, tt, cfg.alpha)
              for tr, tt in bm.scene_splits(sorted(feats), cfg.splits, cfg.seed)]
    summary = bm.summarize_splits(splits) if splits else None
    note = (f"evaluated on {len(feats)} of {len(labels.labels)} labelled sequences "
            f"({main.n_train} train, {len(main.predictions)} test); missing: {', '.join(missing[:10])}"
            f"{' …' if len(missing) > 10 else ''}") if missing else ""
    report = bm.markdown_report(main, C.PUBLISHED_BENCHMARK, summary, note)

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "tables.md", f"# Benchmark: {_model_label(cfg)}\n\n{report}".encode())
    write_csv(out / "scenes.csv", main.scenes, ["dataset", "scene", "n_test", *bm.METRICS])
    write_csv(out / "datasets.csv", main.datasets, ["dataset", "n_scenes", "n_test", *bm.METRICS, "n_undefined"])
    split_of = {**dict.fromkeys(labels.train, "train"), **dict.fromkeys(labels.test, "test")}
    preds = main.regressor.predict(np.stack([feats[k] for k in sorted(feats)]))
    write_csv(out / "predictions.csv",
              [{"key": k, "split": split_of.get(k, ""), "label": labels.labels[k], "prediction": float(p)}
               for k, p in zip(sorted(feats), preds, strict=True)], ["key", "split", "label", "prediction"])
    if summary:
        write_csv(out / "splits.csv", summary, list(summary[0]))
    write_json(out / "results.json", stamp(
        config=asdict(cfg), labels=labels.source, missing=missing, scenes=main.scenes, datasets=main.datasets,
        published=C.PUBLISHED_BENCHMARK, random_splits=summary, predictions=main.predictions, **provenance))
    if cfg.save_regressor:
        _save_regressor(cfg, model, main.regressor, out)
    print(report)
    print(f"wrote tables.md, scenes.csv, datasets.csv, predictions.csv, results.json to {out}")
    return 0


def _save_regressor(cfg: EvalConfig, model, reg, out: Path) -> None:
    """regressor.json in the format app.py loads; from a bank, also checkpoint/ = config + weights + regressor."""
    import torch

    from models.results import atomic_write_json

    d = {"coef": [float(c) for c in reg.coef], "intercept": reg.intercept, "alpha": reg.alpha, "dtype": "float32",
         "source_sha256": reg.source_sha256, "fitted_by": "evaluate.py (train keys of the authoritative split)"}
    atomic_write_json(out / C.CKPT_REGRESSOR, d)
    if model is None:
        print(f"wrote {out / C.CKPT_REGRESSOR}; copy it next to config.json + model.pth of the model that made "
              f"{cfg.features} to get JOD scores from app.py")
        return
    buf = io.BytesIO()
    torch.save(model.model.state_dict(), buf)
    ck = out / "checkpoint"
    atomic_write_json(ck / C.CKPT_CONFIG, model.model.config.to_dict())
    atomic_write_bytes(ck / C.CKPT_WEIGHTS, buf.getvalue())
    atomic_write_json(ck / C.CKPT_REGRESSOR, d)
    print(f"wrote {out / C.CKPT_REGRESSOR} and {ck}/ (python app.py --checkpoint {ck} gives JOD scores)")


def run_degrade(cfg: EvalConfig, out: Path) -> int:
    """The degradation benchmark; returns the exit code."""
    from models.evaluation.degrade import feature_similarity, plot_degradations, prepare_clip, run_degradations
    from models.frames import discover, open_sequence
    from models.nvs_sqa import MIN_FRAME_SIZE
    from models.nvs_sqa.checkpoint import load_regressor
    from models.results import stamp, table, write_csv, write_json

    paths = [p for item in cfg.inputs for p in discover(Path(item))]
    model, batch = _load_model(cfg)
    if cfg.regressor:
        model.regressor = load_regressor(Path(cfg.regressor))
        if model.regressor.coef.shape != (model.model.config.angular_feat_size,):
            raise InputError(f"{cfg.regressor}: {model.regressor.coef.shape[0]} coefficients, the model outputs "
                             f"{model.model.config.angular_feat_size}; use the regressor fitted on this model")
    t0 = time.perf_counter()
    clips = {}
    for p in paths:
        clip = prepare_clip(open_sequence(p, MIN_FRAME_SIZE), cfg.frames, cfg.max_side)
        if min(clip.shape[1:3]) < MIN_FRAME_SIZE:
            raise InputError(f"{p}: --max-side {cfg.max_side} makes frames smaller than {MIN_FRAME_SIZE} px; raise it")
        if p.name in clips:
            raise InputError(f"{p}: another input is also named {p.name}; rename one (results are keyed by name)")
        clips[p.name] = clip
    if model.regressor is not None:
        kind = "JOD from the regressor"
        rows, srcc = run_degradations(lambda s, c: model.score(c, batch), clips, cfg.seed, not cfg.quiet,
                                      cfg.distortions)
    else:  # a self-trained encoder without a regressor: how far each variant's representation moves from clean
        kind = "cosine similarity of the 384-d features to the clean clip's (no regressor in this checkpoint)"
        clean = {s: model.features(c, batch) for s, c in clips.items()}
        rows, srcc = run_degradations(lambda s, c: feature_similarity(model.features(c, batch), clean[s]), clips,
                                      cfg.seed, not cfg.quiet, cfg.distortions)
    seconds = time.perf_counter() - t0
    mean = float(np.nanmean([r["srcc_mean"] for r in srcc]))
    cols = ["distortion", "param", "levels", *[f"srcc[{s}]" for s in clips], "srcc_mean"]
    n_clips = len(clips) + sum(r["level"] > 0 for r in rows)
    text = (f"{table(srcc + [{'distortion': '**mean**', 'srcc_mean': mean}], cols, '.2f', 'github')}\n\n"
            f"{n_clips} clips of {cfg.frames} frames, longer side {cfg.max_side} px, "
            f"seed {cfg.seed}, scored in {seconds:.1f} s on {model.device} (batch {batch}); score = {kind}.")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "degrade.md", f"# Degradation benchmark: {_model_label(cfg)}\n\n{text}\n".encode())
    write_csv(out / "degrade_scores.csv", rows, ["sequence", "distortion", "level", "param", "score", "seconds"])
    write_csv(out / "degrade_srcc.csv", srcc, cols)
    write_json(out / "degrade.json", stamp(config=asdict(cfg), model=model.info, seconds=round(seconds, 2),
                                            cpus=os.cpu_count(), load_average=os.getloadavg(), srcc=srcc,
                                            srcc_mean=mean, scores=rows))  # load: timings on a shared machine
    atomic_write_bytes(out / "degrade.png", plot_degradations(rows, srcc))
    print(text)
    print(f"wrote degrade.md, degrade_scores.csv, degrade_srcc.csv, degrade.json, degrade.png to {out}")
    return 0


def run(cfg: EvalConfig) -> int:
    """One evaluate.py run; returns the process exit code."""
    from models.results import check_writable, write_json

    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    out = C.RUNS_DIR / (cfg.name or f"{'degrade' if cfg.degrade else 'benchmark'}-{_model_label(cfg)}")
    try:
        check_writable(out)
        rc = run_degrade(cfg, out) if cfg.degrade else run_benchmark(cfg, out)
        write_json(out / "config.json", asdict(cfg))  # last: a failed run leaves no half-written run folder
        return rc
    except InputError as e:
        log.error("%s", e)
        return 2


def main(argv: list[str] | None = None) -> int:
    from models.cli import main as cli_main

    return cli_main(parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
