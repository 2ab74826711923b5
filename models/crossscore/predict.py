"""What ``crossscore.py predict`` and ``test`` compute (their options: :mod:`models.crossscore.options`).

``predict`` scores rendered images against real photos of other viewpoints and writes one map (turbo PNG +
float .npy) and one figure per image; ``test`` scores a dataset with ground truth and tabulates L1, PSNR, pixel
Pearson and SRCC. Both return rows and provenance; the script writes the tables and prints.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from consts import CROSSSCORE_PREDICT_SHORT_SIDE, RUNS_DIR
from models.crossscore.options import PredictConfig, TestConfig
from models.errors import InputError
from models.results import check_creatable, stamp
from models.runtime import resolve_device, set_threads

log = logging.getLogger(__name__)
SCORE_HELP = "scores are SSIM values in [0, 1] predicted per pixel (1 = identical to the unseen ground truth)"
PRED_COLUMNS = ("image", "pred_ssim", "true_ssim", "width", "height", "references", "map_png", "map_npy", "figure",
                "attention")
# upstream's predict CSV (SummaryWriterPredictedOnline): the same mean map, named and split as upstream does
UPSTREAM_PRED_COLUMNS = ("scene_name", "rendered_dir", "image_name", "pred_ssim_0_1")
TEST_COLUMNS = ("dataset", "method", "n", "l1", "psnr", "pearson", "srcc", "true_ssim", "pred_ssim", "upstream_l1",
                "upstream_psnr", "upstream_pearson")


@dataclass
class Scored:
    """What ``predict``/``test`` computed: per-image rows, the summary (test), provenance, the output folder."""

    out: Path
    rows: list[dict[str, Any]]
    meta: dict[str, Any]
    summary: list[dict[str, Any]] = field(default_factory=list)


def short_side_for(requested: int, checkpoint: str) -> int:
    """-1: the size the checkpoint was trained at (its crop), else upstream's 518; >= 0: as requested."""
    from models.crossscore.checkpoint import checkpoint_meta

    if requested >= 0:
        return requested
    return int(checkpoint_meta(checkpoint).get("predict_short_side", CROSSSCORE_PREDICT_SHORT_SIDE))


def upstream_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Upstream's columns from our rows: for ``.../<scene>/<split>/ours_<iter>/renders/<frame>`` the scene is
    the 5th part from the end, ``rendered_dir`` the path without its last two parts, ``frame_`` dropped from the
    name, the score with 4 decimals (upstream's ``float_format``); shorter paths leave the missing parts empty."""
    out = []
    for r in rows:
        parts = Path(r["image"]).parts
        out.append({"scene_name": parts[-5] if len(parts) >= 5 else "",
                    "rendered_dir": str(Path(*parts[:-2])) if len(parts) > 2 else "",
                    "image_name": parts[-1].replace("frame_", ""), "pred_ssim_0_1": f"{r['pred_ssim']:.4f}"})
    return out


def attention_patches(spec: str | None, grid: tuple[int, int] | None = None) -> list[tuple[int, int]]:
    """``--attention``: "centre" (upstream: the patch (Nh // 2, Nw // 2)) or "ROW,COL[;ROW,COL...]"; checked
    against the token ``grid`` when given. No spec: []."""
    if not spec:
        return []
    if spec == "centre":
        return [(grid[0] // 2, grid[1] // 2)] if grid else [(0, 0)]
    try:
        patches = [tuple(int(v) for v in p.split(",")) for p in spec.split(";") if p.strip()]
    except ValueError:
        patches = []
    if not patches or any(len(p) != 2 for p in patches):
        raise InputError(f"--attention {spec}: use 'centre' or token coordinates 'ROW,COL[;ROW,COL...]'")
    if grid and any(not (0 <= r < grid[0] and 0 <= c < grid[1]) for r, c in patches):
        raise InputError(f"--attention {spec}: the token grid is {grid[0]} rows x {grid[1]} columns (14-px "
                         "patches of the resized query); give coordinates inside it")
    return patches  # type: ignore[return-value]


def _attention(net: Any, dev: Any, precision: str, sample: Any, spec: str, head: int) -> tuple[list, Any]:
    """The chosen patches and their cross-attention (P, N_ref, Nh, Nw) for one sample (a network call alone)."""
    import torch

    from models.crossscore.data import collate
    from models.crossscore.evaluate import autocast_for

    n_heads = net.cfg.n_heads
    if head >= n_heads:
        raise InputError(f"--attn-head {head}: the decoder has {n_heads} heads (0..{n_heads - 1})")
    if not sample.ref_paths:
        raise InputError("--attention needs references (the no-reference variant attends to the query itself)")
    b = collate([sample])
    with torch.no_grad(), autocast_for(dev, precision):
        a = net(b["query"].to(dev), b["refs"].to(dev), b["ref_valid"].to(dev), need_attn=True, attn_head=head)["attn"]
    a = a[0].float().cpu().numpy()  # (Nh, Nw, N, Nh, Nw)
    patches = attention_patches(spec, a.shape[:2])
    return patches, a[tuple(zip(*patches, strict=True))] if patches else a[:0, 0]


def _queries(cfg: PredictConfig) -> tuple[list[Path], list[Path], dict[Path, Path]]:
    """(queries, reference pool, ground truth per query), each checked with a one-line error."""
    from models.crossscore.data import list_images
    from models.frames import is_image

    if not cfg.query:
        raise InputError("predict: no QUERY given; pass a rendered image or a folder of them")
    qpath, rdir = Path(cfg.query), Path(cfg.references)
    if not qpath.exists():
        raise InputError(f"{qpath}: no such image or folder; check QUERY")
    queries = list_images(qpath) if qpath.is_dir() else [qpath]
    if not queries or not all(is_image(q) for q in queries):
        raise InputError(f"{qpath}: no .png/.jpg/.jpeg image to score")
    if not cfg.references or not rdir.is_dir():
        raise InputError(f"{rdir}: reference folder not found; pass --references with real photos of the scene")
    gts: dict[Path, Path] = {}
    if cfg.gt:
        g = Path(cfg.gt)
        for q in queries:
            gts[q] = g if g.is_file() and len(queries) == 1 else g / q.name
            if not gts[q].is_file():
                raise InputError(f"{gts[q]}: ground truth for {q.name} not found; --gt takes an image or a folder "
                                 "holding the query file names")
    return queries, list_images(rdir), gts


def predict_maps(cfg: PredictConfig) -> Scored:
    """Score every query of ``cfg``: writes ``maps/<stem>.{png,npy}`` and ``figures/<stem>.png`` under
    ``cfg.out`` and returns one row per image (mean predicted/true SSIM, size, references, file names)."""
    import numpy as np
    import torch
    from tqdm import tqdm

    from models.crossscore.checkpoint import load_model
    from models.crossscore.data import Item, collate, load_sample
    from models.crossscore.evaluate import net_predictor
    from models.crossscore.figures import to_hwc, turbo, write_attention_figure, write_figure, write_npy, write_png

    set_threads(cfg.threads)
    attention_patches(cfg.attention)  # a malformed --attention fails before anything runs
    queries, pool, gts = _queries(cfg)
    out = Path(cfg.out)
    check_creatable(out)  # creates nothing: a failed run leaves no empty folder
    dev = resolve_device(cfg.device)
    net, info = load_model(cfg.checkpoint, cfg.backbone)
    net.to(dev)
    short = short_side_for(cfg.short_side, cfg.checkpoint)
    predict = net_predictor(net, dev, precision=cfg.precision)
    items = [Item(q, pool, gts.get(q)) for q in queries]
    stems = [q.stem for q in queries]
    rows = []
    for i in tqdm(range(0, len(items), cfg.batch_size), desc="predict", disable=cfg.quiet):
        group = items[i:i + cfg.batch_size]
        samples = []
        for it in group:
            s = load_sample(it, cfg.n_ref, short, 0, cfg.seed)
            if cfg.n_ref > 0 and not s.ref_paths:
                raise InputError(f"{it.query}: no reference image in {cfg.references} (besides the query itself); "
                                 "give real photos of the scene from other viewpoints")
            samples.append(s)
        by_size: dict[tuple, list[int]] = {}  # one network call per image size
        for j, s in enumerate(samples):
            by_size.setdefault(tuple(s.query.shape), []).append(j)
        maps: dict[int, torch.Tensor] = {}
        for idx in by_size.values():
            for j, m in zip(idx, predict(collate([samples[j] for j in idx])), strict=True):
                maps[j] = m
        for j, (it, s) in enumerate(zip(group, samples, strict=True)):
            m = maps[j].numpy()
            stem = it.query.stem if stems.count(it.query.stem) == 1 else it.query.name  # a.png + a.jpg
            attn_file = f"attention/{stem}.png" if cfg.attention else ""
            if cfg.attention:  # computed first: a bad --attention leaves no file of this image
                patches, attn = _attention(net, dev, cfg.precision, s, cfg.attention, cfg.attn_head)
                write_attention_figure(out / attn_file, to_hwc(s.query), [to_hwc(r) for r in s.refs], attn,
                                       patches, net.patch, [p.name for p in s.ref_paths])
            write_png(out / "maps" / f"{stem}.png", turbo(m))
            write_npy(out / "maps" / f"{stem}.npy", m)
            true = s.target.numpy() if s.target is not None else None
            write_figure(out / "figures" / f"{stem}.png", to_hwc(s.query), m, [to_hwc(r) for r in s.refs], true,
                         title=it.query.name, ref_names=[p.name for p in s.ref_paths])
            rows.append({"image": str(it.query), "pred_ssim": float(np.mean(m)),
                         "true_ssim": float(np.mean(true)) if true is not None else "",
                         "width": m.shape[1], "height": m.shape[0],
                         "references": ";".join(str(p) for p in s.ref_paths), "map_png": f"maps/{stem}.png",
                         "map_npy": f"maps/{stem}.npy", "figure": f"figures/{stem}.png",
                         "attention": attn_file})
    return Scored(out, rows, stamp(**info, device=str(dev), precision=cfg.precision,
                                   pos_interp=net.cfg.pos_interp, config=asdict(cfg)))


def output_folder(cfg: TestConfig) -> Path:
    """``--out``, or ``runs/crossscore-test-<checkpoint name>-<baseline>``."""
    return Path(cfg.out or RUNS_DIR / f"crossscore-test-{Path(cfg.checkpoint).name}-{cfg.baseline}")


def score_dataset(cfg: TestConfig) -> Scored:
    """Score every render of ``cfg.data`` that has a ground truth; rows per image and the summary table."""
    from models.crossscore.data import discover_items
    from models.crossscore.evaluate import evaluate, make_predictor, summarise

    set_threads(cfg.threads)
    items = discover_items(Path(cfg.data))
    out = output_folder(cfg)
    check_creatable(out)
    predict, n_ref, info = make_predictor(cfg.checkpoint, cfg.baseline, cfg.backbone, cfg.device, cfg.n_ref,
                                          cfg.precision)
    t0 = time.perf_counter()
    short = short_side_for(cfg.short_side, cfg.checkpoint)
    rows = evaluate(predict, items, n_ref, short, cfg.batch_size, cfg.seed, progress=not cfg.quiet)
    meta = stamp(**info, n_ref=n_ref, config=asdict(cfg), seconds=round(time.perf_counter() - t0, 1))
    return Scored(out, rows, meta, summarise(rows))
