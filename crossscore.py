"""CrossScore: where is a render wrong? Per-pixel SSIM maps predicted from real photos of other viewpoints.

    python crossscore.py predict render.png --references photos/         # or a folder of renders
    python crossscore.py predict renders/ --references photos/ --gt gt/  # also the true SSIM maps
    python crossscore.py train --data DATASET --backbone tiny --name my-run
    python crossscore.py test  --data DATASET --checkpoint runs/my-run/model
    python crossscore.py demo-data                                        # the offline training set

Default model: checkpoints/crossscore-tiny (made offline by `make crossscore-demo`); the upstream
CrossScore-v1.0.0.ckpt loads with --checkpoint. Exit code: 0 done, 2 bad input (one error line).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from consts import CROSSSCORE_N_REF, CROSSSCORE_PREDICT_SHORT_SIDE, CROSSSCORE_TINY_DIR, EXAMPLES_DIR, RUNS_DIR
from models.crossscore.train import TrainConfig
from models.errors import InputError

log = logging.getLogger("crossscore")
SCORE_HELP = "scores are SSIM values in [0, 1] predicted per pixel (1 = identical to the unseen ground truth)"
PRED_COLUMNS = ("image", "pred_ssim", "true_ssim", "width", "height", "references", "map_png", "map_npy", "figure")
TEST_COLUMNS = ("dataset", "method", "n", "l1", "psnr", "pearson", "srcc", "true_ssim", "pred_ssim")


@dataclass
class PredictConfig:
    """Options of ``crossscore.py predict``."""

    query: str = ""  # an image or a folder of rendered images
    references: str = ""  # folder of real photos of the scene (other viewpoints)
    gt: str | None = None  # optional ground truth: an image, or a folder with the query file names
    out: str = str(RUNS_DIR / "crossscore-predict")
    checkpoint: str = str(CROSSSCORE_TINY_DIR)  # our folder or upstream CrossScore-v1.0.0.ckpt
    backbone: str | None = None  # transformers folder whose config.json shapes an upstream checkpoint
    n_ref: int = CROSSSCORE_N_REF
    seed: int | None = None  # None: deterministic spread over the sorted references; else random draws
    short_side: int = -1  # resize the short side: -1 = as the checkpoint was trained (518 upstream), 0 = keep
    batch_size: int = 8
    device: str = "cpu"  # cpu | cuda | auto (fp16 autocast on CUDA)
    threads: int = 0  # torch CPU threads (0 = torch's default)
    quiet: bool = False


@dataclass
class TestConfig:
    """Options of ``crossscore.py test``."""

    data: str = ""  # dataset root (upstream or simple layout)
    checkpoint: str = str(CROSSSCORE_TINY_DIR)
    backbone: str | None = None
    baseline: str = "none"  # none | constant (the checkpoint's mean training target everywhere)
    n_ref: int = -1  # -1 = what the checkpoint was trained with (5 for upstream)
    short_side: int = -1  # -1 = as the checkpoint was trained (518 upstream), 0 = keep the size
    seed: int | None = None
    batch_size: int = 8
    device: str = "cpu"
    threads: int = 0
    out: str = ""  # default runs/crossscore-test-<checkpoint name>
    quiet: bool = False


@dataclass
class DemoDataConfig:
    """Options of ``crossscore.py demo-data``: the offline training set built from examples/."""

    sources: tuple[str, ...] = tuple(sorted(str(p) for p in EXAMPLES_DIR.iterdir() if p.is_dir())) \
        if EXAMPLES_DIR.is_dir() else ()
    out: str = str(RUNS_DIR / "crossscore-demo-data")
    width: int = 140  # 10 x 8 patches of 14 px: a few minutes of CPU training are meaningful
    height: int = 112
    split_frame: int = 84
    seed: int = 0
    quiet: bool = False


def _short_side(requested: int, checkpoint: str) -> int:
    """-1: the size the checkpoint was trained at (its crop), else upstream's 518."""
    from models.crossscore.checkpoint import checkpoint_meta

    if requested >= 0:
        return requested
    return int(checkpoint_meta(checkpoint).get("predict_short_side", CROSSSCORE_PREDICT_SHORT_SIDE))


# --------------------------------------------------------------------------------------------- predict
def run_predict(cfg: PredictConfig) -> int:
    import numpy as np
    import torch

    from models.crossscore.checkpoint import load_model
    from models.crossscore.data import Item, collate, list_images, load_sample
    from models.crossscore.figures import to_hwc, turbo, write_figure, write_npy, write_png
    from models.crossscore.train import net_predictor
    from models.frames import is_image
    from models.results import check_writable, stamp, table, write_csv, write_json
    from models.runtime import resolve_device

    qpath, rdir = Path(cfg.query), Path(cfg.references)
    if not qpath.exists():
        raise InputError(f"{qpath}: no such image or folder; check QUERY")
    queries = list_images(qpath) if qpath.is_dir() else [qpath]
    if not queries or not all(is_image(q) for q in queries):
        raise InputError(f"{qpath}: no .png/.jpg/.jpeg image to score")
    if not rdir.is_dir():
        raise InputError(f"{rdir}: reference folder not found; pass --references with real photos of the scene")
    pool = list_images(rdir)
    gts: dict[Path, Path] = {}
    if cfg.gt:
        g = Path(cfg.gt)
        for q in queries:
            gts[q] = g if g.is_file() and len(queries) == 1 else g / q.name
            if not gts[q].is_file():
                raise InputError(f"{gts[q]}: ground truth for {q.name} not found; --gt takes an image or a folder "
                                 "holding the query file names")
    out = Path(cfg.out)
    check_writable(out)
    dev = resolve_device(cfg.device)
    net, info = load_model(cfg.checkpoint, cfg.backbone)
    net.to(dev)
    short = _short_side(cfg.short_side, cfg.checkpoint)
    predict = net_predictor(net, dev, fp16=True)
    items = [Item(q, pool, gts.get(q)) for q in queries]
    stems = [q.stem for q in queries]
    rows = []
    from tqdm import tqdm

    for i in tqdm(range(0, len(items), cfg.batch_size), desc="predict", disable=cfg.quiet):
        group = items[i:i + cfg.batch_size]
        samples = []
        for it in group:
            s = load_sample(it, cfg.n_ref, short, 0, cfg.seed)
            if cfg.n_ref > 0 and not s.ref_paths:
                raise InputError(f"{it.query}: no reference image in {rdir} (besides the query itself); give real "
                                 "photos of the scene from other viewpoints")
            samples.append(s)
        by_size: dict[tuple, list[int]] = {}
        for j, s in enumerate(samples):
            by_size.setdefault(tuple(s.query.shape), []).append(j)
        maps: dict[int, torch.Tensor] = {}
        for idx in by_size.values():
            for j, m in zip(idx, predict(collate([samples[j] for j in idx])), strict=True):
                maps[j] = m
        for j, (it, s) in enumerate(zip(group, samples, strict=True)):
            m = maps[j].numpy()
            stem = it.query.stem if stems.count(it.query.stem) == 1 else it.query.name  # a.png + a.jpg
            write_png(out / "maps" / f"{stem}.png", turbo(m))
            write_npy(out / "maps" / f"{stem}.npy", m)
            true = s.target.numpy() if s.target is not None else None
            write_figure(out / "figures" / f"{stem}.png", to_hwc(s.query), m, [to_hwc(r) for r in s.refs], true,
                         title=it.query.name, ref_names=[p.name for p in s.ref_paths])
            rows.append({"image": str(it.query), "pred_ssim": float(np.mean(m)),
                         "true_ssim": float(np.mean(true)) if true is not None else "",
                         "width": m.shape[1], "height": m.shape[0],
                         "references": ";".join(str(p) for p in s.ref_paths), "map_png": f"maps/{stem}.png",
                         "map_npy": f"maps/{stem}.npy", "figure": f"figures/{stem}.png"})
    write_csv(out / "scores.csv", rows, PRED_COLUMNS)
    write_json(out / "scores.json", {**stamp(**info, device=str(dev), config=asdict(cfg)), "help": SCORE_HELP,
                                     "rows": rows})
    print(table([{**r, "image": Path(r["image"]).name} for r in rows], ["image", "pred_ssim", "true_ssim"]))
    print(f"{SCORE_HELP}\nwrote maps/, figures/, scores.csv, scores.json to {out}")
    return 0


# --------------------------------------------------------------------------------------------- test
def run_test(cfg: TestConfig) -> int:
    from models.crossscore.data import discover_items
    from models.crossscore.train import evaluate, make_predictor, summarise
    from models.results import check_writable, stamp, table, write_csv, write_json

    items = discover_items(Path(cfg.data))
    out = Path(cfg.out or RUNS_DIR / f"crossscore-test-{Path(cfg.checkpoint).name}-{cfg.baseline}")
    check_writable(out)
    predict, n_ref, info = make_predictor(cfg.checkpoint, cfg.baseline, cfg.backbone, cfg.device, cfg.n_ref)
    t0 = time.perf_counter()
    short = _short_side(cfg.short_side, cfg.checkpoint)
    rows = evaluate(predict, items, n_ref, short, cfg.batch_size, cfg.seed, progress=not cfg.quiet)
    summary = summarise(rows)
    write_csv(out / "per_image.csv", rows, list(rows[0]))
    write_csv(out / "summary.csv", summary, TEST_COLUMNS)
    write_json(out / "summary.json", {**stamp(**info, n_ref=n_ref, config=asdict(cfg),
                                              seconds=round(time.perf_counter() - t0, 1)), "rows": summary})
    print(table(summary, TEST_COLUMNS))
    print("L1 and PSNR (= -10·log10(L1²)) of the maps, mean per-image pixel Pearson, SRCC of per-image means; "
          f"wrote per_image.csv, summary.csv, summary.json to {out}")
    return 0


# --------------------------------------------------------------------------------------------- CLI
def _add_common(p: argparse.ArgumentParser, model: bool = True) -> None:
    if model:
        p.add_argument("--checkpoint", default=str(CROSSSCORE_TINY_DIR),
                       help="checkpoint folder (config.json + model.pth) or upstream CrossScore-v1.0.0.ckpt "
                            "(default: checkpoints/crossscore-tiny, made by `make crossscore-demo`)")
        p.add_argument("--backbone", help="for an upstream .ckpt: a transformers DINOv2 folder whose config.json "
                                          "gives the backbone shape (default: inferred, DINOv2-S)")
        p.add_argument("--short-side", type=int, default=-1,
                       help="resize the short side to this before scoring (default: as the checkpoint was "
                            "trained, 518 for upstream; 0 keeps the size)")
        p.add_argument("--seed", type=int, help="draw references at random with this seed (default: deterministic "
                                                "spread over the sorted reference folder)")
        p.add_argument("--batch-size", type=int, default=8, help="images per network call (default 8)")
        p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"],
                       help="default cpu; cuda runs fp16 autocast")
        p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or info messages")


def _field_comments(cls: type) -> dict[str, str]:
    """``name: type = default  # comment`` lines of a dataclass -> {name: comment}, for --help."""
    import inspect

    out = {}
    for line in inspect.getsource(cls).splitlines():
        head, sep, note = line.partition("  # ")
        if sep and ":" in head:
            out[head.split(":")[0].strip()] = note.strip()
    return out


def parse_args(argv: list[str] | None = None) -> tuple[str, object]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=SCORE_HELP,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("predict", help="score maps for rendered images, given real reference photos")
    pp.add_argument("query", help="a rendered image or a folder of them")
    pp.add_argument("--references", required=True, help="folder of real photos of the same scene")
    pp.add_argument("--gt", help="ground truth (an image, or a folder with the query file names): adds the true map")
    pp.add_argument("--n-ref", type=int, default=CROSSSCORE_N_REF, help="references per query (default 5); fewer "
                                                                         "available are masked, not padded")
    pp.add_argument("--out", default=PredictConfig.out, help="output folder (default runs/crossscore-predict)")
    _add_common(pp)
    pt = sub.add_parser("test", help="L1, PSNR, pixel Pearson and SRCC on a dataset with ground truth")
    pt.add_argument("--data", required=True, help="dataset root (see README: upstream or simple layout)")
    pt.add_argument("--baseline", default="none", choices=["none", "constant"],
                    help="constant: the checkpoint's mean training target as the map (a baseline)")
    pt.add_argument("--n-ref", type=int, default=-1, help="references per query (default: as trained)")
    pt.add_argument("--out", default="", help="output folder (default runs/crossscore-test-<checkpoint>-<baseline>)")
    _add_common(pt)
    pr = sub.add_parser("train", help="train (or resume) runs/<name>/")
    notes = _field_comments(TrainConfig)
    for f in fields(TrainConfig):  # one flag per TrainConfig field, documented by the field's comment
        flag, note = "--" + f.name.replace("_", "-"), f"{notes.get(f.name, '')} (default {f.default})".strip()
        if isinstance(f.default, bool):
            pr.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=note)
        else:
            kind = {"int": int, "float": float}.get(str(f.type), str)
            pr.add_argument(flag, type=kind, default=f.default, required=f.name == "data", help=note)
    pr.add_argument("--quiet", action="store_true", help="no progress bars")
    pd = sub.add_parser("demo-data", help="build the offline training set from examples/")
    pd.add_argument("--out", default=DemoDataConfig.out)
    pd.add_argument("--seed", type=int, default=0)
    pd.add_argument("--quiet", action="store_true")
    a = vars(p.parse_args(argv))
    cmd = a.pop("cmd")
    quiet = a.pop("quiet")
    if cmd == "predict":
        return cmd, PredictConfig(**a, quiet=quiet)
    if cmd == "test":
        return cmd, TestConfig(**a, quiet=quiet)
    if cmd == "train":
        return cmd, (TrainConfig(**a), quiet)
    return cmd, DemoDataConfig(out=a["out"], seed=a["seed"], quiet=quiet)


def main(argv: list[str] | None = None) -> int:
    cmd, cfg = parse_args(argv)
    quiet = cfg[1] if isinstance(cfg, tuple) else getattr(cfg, "quiet", False)
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(levelname)s: %(message)s")
    threads = cfg[0].threads if isinstance(cfg, tuple) else getattr(cfg, "threads", 0)
    if threads > 0:
        import torch

        torch.set_num_threads(threads)
    try:
        if cmd == "predict":
            return run_predict(cfg)  # type: ignore[arg-type]
        if cmd == "test":
            return run_test(cfg)  # type: ignore[arg-type]
        if cmd == "train":
            from models.crossscore.train import train

            tcfg, quiet = cfg  # type: ignore[misc]
            print(f"model written to {train(tcfg, progress=not quiet)}")
            return 0
        from models.crossscore.demo import build_demo_dataset

        d: DemoDataConfig = cfg  # type: ignore[assignment]
        counts = build_demo_dataset([Path(s) for s in d.sources], Path(d.out), d.width, d.height, d.split_frame,
                                    d.seed)
        print(f"demo dataset written to {d.out}: {counts}")
        return 0
    except InputError as e:
        log.error("%s", e)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
