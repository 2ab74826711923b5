"""The run behind evaluate.py: its options, the benchmark tables, the degradation benchmark, the saved regressor.

:func:`run_evaluation` writes ``runs/<name>/`` and returns the lines that the script prints; every bad input
is an :class:`~models.errors.InputError` (one line), raised before the run folder gets its config.json.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

import consts as C
from models.cli import opt
from models.cluster import EXECUTORS, GROUP, SLURM_HELP, SlurmOptions
from models.errors import InputError
from models.evaluation.degrade import DISTORTIONS
from models.results import atomic_write_bytes
from models.runtime import DEVICES, locate

log = logging.getLogger(__name__)
BENCH, DEGRADE = "benchmark", "degradation benchmark"  # the --help sections


@dataclass
class EvalConfig:
    """Options of one evaluation run (all flags of evaluate.py)."""

    name: str = opt("", "run folder runs/<name> (default: benchmark-<model>/degrade-<model>)")
    checkpoint: str | None = opt(None, "checkpoint folder with config.json + model.pth: a path, else a name under "
                                 "checkpoints/ or runs/ (e.g. mine/latest) (default: released v0.0.1)")
    device: str = opt("auto", "auto (cuda if present) | cpu | cuda", choices=DEVICES)
    batch_size: int = opt(0, "frames per network call (default: 2 CPU, 16 CUDA)", min=0)
    threads: int = opt(0, "torch CPU threads (default: one per core; 1 is much faster on a busy machine); results "
                       "are identical either way", min=0)
    quiet: bool = opt(False, "no progress bars or info messages")
    bank: str = opt(str(C.ROOT / "benchmark_bank"), "benchmark bank folder {dataset}/{scene}/{method}/frames/* "
                    "(default: benchmark_bank/)", group=BENCH)
    labels: str = opt(str(C.ROOT / "benchmark_bank" / C.BENCHMARK_LABELS_FILE), "label + authoritative split file "
                      f"(default: benchmark_bank/{C.BENCHMARK_LABELS_FILE})", group=BENCH)
    features: str | None = opt(None, "evaluate precomputed features (.npz, keys dataset+scene+method); no bank or "
                               "model needed", group=BENCH)
    allow_missing: bool = opt(False, "evaluate the sequences present if some are missing", group=BENCH)
    splits: int = opt(0, "also K random scene-wise 50/50 splits (mean ± std)", min=0, metavar="K", group=BENCH)
    seed: int = opt(0, "seed of the random splits and of the degradations", group=BENCH)
    alpha: float = opt(1.0, "ridge alpha, > 0 (default 1.0, as upstream's scikit-learn)", group=BENCH)
    save_regressor: bool = opt(False, "write regressor.json (+ checkpoint/ that app.py --checkpoint loads) into the "
                               "run folder", group=BENCH)
    # positive, so that the flag is --no-cache: argparse reads any "--no-..." option as False (see recorded())
    cache: bool = opt(True, "read and fill the bank feature cache .cache/features (--no-cache: recompute every "
                      "sequence)", group=BENCH)
    degrade: bool = opt(False, "score graded distortions of INPUT (default: examples/) instead of the benchmark",
                        group=DEGRADE)
    inputs: list[str] = opt([str(C.EXAMPLES_DIR)], "with --degrade: frame folders, folders of them, or videos "
                            "(default: examples/)", positional=True, metavar="INPUT")
    regressor: str | None = opt(None, "regressor.json to score with (default: the checkpoint's regressor.json)",
                                group=DEGRADE)
    distortions: str = opt("", f"comma-separated subset of {','.join(DISTORTIONS)} (default: all)", group=DEGRADE)
    frames: int = opt(8, "frames per clip, evenly spaced over the sequence (a shorter sequence gives all its frames, "
                      "with a warning)", min=1, group=DEGRADE)
    max_side: int = opt(320, "longer side of a clip, px", min=1, group=DEGRADE)
    shard: str | None = opt(None, "compute the features of shard I of N of the bank into the feature cache and stop "
                            "(a later run without --shard reads them)", metavar="I/N", group=GROUP)
    executor: str = opt("none", "none: compute here | local, slurm: --shards N cache-filling jobs through submitit, "
                        "then the benchmark here from the cache", choices=("none", *EXECUTORS), group=GROUP)
    shards: int = opt(0, "with --executor: the number of shard jobs", min=0, group=GROUP)
    slurm: SlurmOptions = opt(SlurmOptions(), SLURM_HELP)


def distortion_names(cfg: EvalConfig) -> list[str]:
    """``--distortions`` as a list (empty = all); unknown names are a one-line error."""
    names = [d for d in cfg.distortions.split(",") if d]
    unknown = sorted(set(names) - set(DISTORTIONS))
    if unknown:
        raise InputError(f"--distortions: unknown {unknown}; choose from {','.join(DISTORTIONS)}")
    return names


def check_config(cfg: EvalConfig, inputs_given: bool) -> None:
    """What the flags' own ``min``/``choices`` cannot say; one-line :class:`InputError`."""
    if cfg.alpha <= 0:
        raise InputError(f"--alpha {cfg.alpha}: must be > 0")
    distortion_names(cfg)
    if inputs_given and not cfg.degrade:
        raise InputError("INPUT arguments are for --degrade; the benchmark reads --bank or --features")
    if cfg.regressor and not cfg.degrade:
        raise InputError(f"--regressor {cfg.regressor}: is for --degrade; the benchmark fits its own ridge")
    if cfg.regressor and not Path(cfg.regressor).is_file():
        raise InputError(f"--regressor {cfg.regressor}: no such file; pass a regressor.json (evaluate.py "
                         "--save-regressor writes one), or leave --regressor out to use the checkpoint's")


def recorded(cfg: EvalConfig) -> dict[str, Any]:
    """The config as the run's files have always recorded it: ``no_cache`` and the list of ``distortions``."""
    fixed = {"cache": ("no_cache", not cfg.cache), "distortions": ("distortions", distortion_names(cfg))}
    where = ("shard", "executor", "shards", "slurm")  # where it ran, not what it computed: not recorded
    return dict(fixed.get(k, (k, v)) for k, v in asdict(cfg).items() if k not in where)


def model_label(cfg: EvalConfig) -> str:
    """The model's short name: the features file, the checkpoint folder, or the released version."""
    if cfg.features and not cfg.degrade:
        return Path(cfg.features).stem
    return Path(cfg.checkpoint).resolve().name if cfg.checkpoint else C.RELEASED.version


def run_folder(cfg: EvalConfig) -> Path:
    return C.RUNS_DIR / (cfg.name or f"{'degrade' if cfg.degrade else 'benchmark'}-{model_label(cfg)}")


def _load_model(cfg: EvalConfig) -> tuple[Any, int]:
    """(NVSSQA, frames per network call)."""
    from models.nvs_sqa import NVSSQA

    model = NVSSQA.from_checkpoint(cfg.checkpoint, cfg.device)
    return model, cfg.batch_size or (16 if model.device.type == "cuda" else 2)


def run_benchmark(cfg: EvalConfig, out: Path) -> list[str]:
    """The benchmark tables; returns the lines to print."""
    from models.evaluation import protocol as bm
    from models.evaluation.bank import FeatureCache, bank_features, scan_bank
    from models.results import sha256_file, stamp, write_csv, write_json, write_npz

    labels = bm.load_labels(Path(cfg.labels))
    model = None
    if cfg.features:
        src = Path(cfg.features)
        feats = bm.load_feature_file(src)
        provenance: dict[str, Any] = {"features": str(src), "features_sha256": sha256_file(src)}
        source_sha = provenance["features_sha256"]
    else:
        found, absent = scan_bank(Path(cfg.bank), labels.labels)
        if absent and not cfg.allow_missing:
            raise InputError(f"{cfg.bank}: {len(absent)} of {len(labels.labels)} labelled sequences have no frames, "
                             f"e.g. {absent[:3]}; add them or pass --allow-missing")
        model, batch = _load_model(cfg)
        source_sha = model.info["checkpoint_sha256"]
        cache = FeatureCache(C.CACHE_DIR / "features", source_sha) if cfg.cache else None
        if cfg.shard:  # this shard's sequences into the cache, nothing else
            from models.nvs_sqa.shard import parse, shard_of

            i, n = parse(cfg.shard)
            mine = {k: p for k, p in found.items() if shard_of(k, n) == i}
            got, computed = bank_features(model, mine, cache, batch, progress=not cfg.quiet)
            return [f"shard {i}/{n}: features of {len(got)} of {len(found)} sequences in the cache "
                    f"{C.CACHE_DIR / 'features'} ({computed} computed); evaluate.py without --shard reads them"]
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
    atomic_write_bytes(out / "tables.md", f"# Benchmark: {model_label(cfg)}\n\n{report}".encode())
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
        config=recorded(cfg), labels=labels.source, missing=missing, scenes=main.scenes, datasets=main.datasets,
        published=C.PUBLISHED_BENCHMARK, random_splits=summary, predictions=main.predictions, **provenance))
    lines = [save_regressor(cfg, model, main.regressor, out)] if cfg.save_regressor else []
    return lines + [report, f"wrote tables.md, scenes.csv, datasets.csv, predictions.csv, results.json to {out}"]


def save_regressor(cfg: EvalConfig, model: Any, reg: Any, out: Path) -> str:
    """regressor.json in the format app.py loads; from a bank, also checkpoint/ = config + weights + regressor.
    Returns the line to print."""
    from models.nvs_sqa.checkpoint import regressor_dict, save_checkpoint
    from models.results import atomic_write_json

    d = regressor_dict(reg, fitted_by="evaluate.py (train keys of the authoritative split)")
    atomic_write_json(out / C.CKPT_REGRESSOR, d)
    if model is None:
        return (f"wrote {out / C.CKPT_REGRESSOR}; copy it next to config.json + model.pth of the model that made "
                f"{cfg.features} to get JOD scores from app.py")
    ck = save_checkpoint(out / "checkpoint", model.model.config.to_dict(), model.model.state_dict(), d)
    return f"wrote {out / C.CKPT_REGRESSOR} and {ck}/ (python app.py --checkpoint {ck} gives JOD scores)"


def run_degrade(cfg: EvalConfig, out: Path) -> list[str]:
    """The degradation benchmark; returns the lines to print."""
    from models.discovery import discover
    from models.evaluation.degrade import feature_similarity, plot_degradations, prepare_clip, run_degradations
    from models.frames import open_sequence
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
        if len(clip) < cfg.frames:
            log.warning("%s: has %d frames, fewer than --frames %d; its clips use all %d", p, len(clip), cfg.frames,
                        len(clip))
        if min(clip.shape[1:3]) < MIN_FRAME_SIZE:
            raise InputError(f"{p}: --max-side {cfg.max_side} makes frames smaller than {MIN_FRAME_SIZE} px; raise it")
        if p.name in clips:
            raise InputError(f"{p}: another input is also named {p.name}; rename one (results are keyed by name)")
        clips[p.name] = clip
    names = distortion_names(cfg)
    if model.regressor is not None:
        kind = "JOD from the regressor"
        rows, srcc = run_degradations(lambda s, c: model.score(c, batch), clips, cfg.seed, not cfg.quiet, names)
    else:  # a self-trained encoder without a regressor: how far each variant's representation moves from clean
        kind = "cosine similarity of the 384-d features to the clean clip's (no regressor in this checkpoint)"
        clean = {s: model.features(c, batch) for s, c in clips.items()}
        rows, srcc = run_degradations(lambda s, c: feature_similarity(model.features(c, batch), clean[s]), clips,
                                      cfg.seed, not cfg.quiet, names)
    seconds = time.perf_counter() - t0
    mean = float(np.nanmean([r["srcc_mean"] for r in srcc]))
    cols = ["distortion", "param", "levels", *[f"srcc[{s}]" for s in clips], "srcc_mean"]
    n_clips = len(clips) + sum(r["level"] > 0 for r in rows)
    frames_used = {s: len(c) for s, c in clips.items()}
    counts = sorted(set(frames_used.values()))
    shown = str(counts[0]) if len(counts) == 1 else "/".join(f"{n} ({s})" for s, n in frames_used.items())
    text = (f"{table(srcc + [{'distortion': '**mean**', 'srcc_mean': mean}], cols, '.2f', 'github')}\n\n"
            f"{n_clips} clips of {shown} frames, longer side {cfg.max_side} px, "
            f"seed {cfg.seed}, scored in {seconds:.1f} s on {model.device} (batch {batch}); score = {kind}.")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "degrade.md", f"# Degradation benchmark: {model_label(cfg)}\n\n{text}\n".encode())
    write_csv(out / "degrade_scores.csv", rows, ["sequence", "distortion", "level", "param", "score", "seconds"])
    write_csv(out / "degrade_srcc.csv", srcc, cols)
    write_json(out / "degrade.json", stamp(config=recorded(cfg), model=model.info, frames_used=frames_used,
                                            seconds=round(seconds, 2),
                                            cpus=os.cpu_count(), load_average=os.getloadavg(), srcc=srcc,
                                            srcc_mean=mean, scores=rows))  # load: timings on a shared machine
    atomic_write_bytes(out / "degrade.png", plot_degradations(rows, srcc))
    return [text, f"wrote degrade.md, degrade_scores.csv, degrade_srcc.csv, degrade.json, degrade.png to {out}"]


def shard_job(cfg: EvalConfig, cache_dir: Path) -> list[str]:
    """One cache-filling shard job (a SLURM task or a local process), with the submitter's cache folder."""
    C.CACHE_DIR = cache_dir
    return run_evaluation(cfg)


def fill_cache(cfg: EvalConfig) -> None:
    """``--executor local|slurm --shards N``: N ``--shard i/N`` jobs through submitit, waited for."""
    import copy

    from models import cluster

    if cfg.shards < 1:
        raise InputError(f"--executor {cfg.executor}: say how many shards with --shards N")
    folder = Path(cfg.slurm.cluster_dir) if cfg.slurm.cluster_dir else run_folder(cfg).with_name(
        run_folder(cfg).name + "-shards")
    cfgs = []
    for i in range(cfg.shards):
        c = copy.deepcopy(cfg)
        c.executor, c.shards, c.shard, c.quiet = "none", 0, f"{i}/{cfg.shards}", True
        cfgs.append(c)
    job = cluster.Resources("evaluate-shard", cfg.slurm.time_min or 120, gpus_per_node=int(cfg.device == "cuda"),
                            cpus_per_task=cfg.slurm.cpus_per_task or None, array=cfg.shards)
    jobs = cluster.submit(cfg.executor, folder, cfg.slurm, job, shard_job, cfgs, [C.CACHE_DIR] * cfg.shards)
    for lines in cluster.wait(jobs, "evaluate.py shards", progress=not cfg.quiet):
        log.info("%s", lines[0])


def run_evaluation(cfg: EvalConfig) -> list[str]:
    """One evaluate.py run into :func:`run_folder`; returns the lines to print."""
    from models.results import check_creatable, write_json
    from models.runtime import set_threads

    set_threads(cfg.threads)
    if cfg.checkpoint:  # the paths rule: as typed, else a name under checkpoints/ or runs/
        cfg.checkpoint = str(locate(cfg.checkpoint, C.CHECKPOINTS_DIR, C.RUNS_DIR, what="--checkpoint"))
    out = run_folder(cfg)
    check_creatable(out, "--name")  # creates nothing: a run that fails leaves no (empty) run folder
    if (cfg.shard or cfg.executor != "none") and (cfg.degrade or cfg.features or not cfg.cache):
        raise InputError("--shard/--executor fill the bank's feature cache: not with --degrade, --features or "
                         "--no-cache")
    if cfg.executor != "none":
        fill_cache(cfg)
    if cfg.shard:
        return run_benchmark(cfg, out)  # the cache only: no run folder
    lines = run_degrade(cfg, out) if cfg.degrade else run_benchmark(cfg, out)
    write_json(out / "config.json", recorded(cfg))  # last: a failed run leaves no half-written run folder
    return lines
