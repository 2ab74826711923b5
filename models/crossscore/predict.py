"""What ``crossscore.py predict`` and ``test`` compute (their options: :mod:`models.crossscore.options`).

``predict`` finds the query files, scores them with :class:`models.crossscore.scorer.CrossScore` against real
photos of other viewpoints and writes one map (turbo PNG + float .npy) and one figure per image; ``test``
scores a dataset with ground truth and tabulates L1, PSNR, pixel Pearson and SRCC. Both return rows and
provenance; the script writes the tables and prints.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from consts import RUNS_DIR
from models.crossscore.options import PredictConfig, TestConfig
from models.errors import InputError
from models.results import check_creatable, stamp
from models.runtime import set_threads

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


def _queries(cfg: PredictConfig) -> tuple[list[Path], list[Path], dict[Path, Path]]:
    """(queries, reference pool, ground truth per query), each checked with a one-line error."""
    from models.crossscore.data import list_images
    from models.frames import is_image

    if not cfg.query:
        raise InputError("query: none given; pass a rendered image or a folder of them")
    qpath, rdir = Path(cfg.query), Path(cfg.references)
    if not qpath.exists():
        raise InputError(f"{qpath}: no such image or folder; give a rendered image or a folder of them")
    queries = list_images(qpath) if qpath.is_dir() else [qpath]
    if not queries or not all(is_image(q) for q in queries):
        raise InputError(f"{qpath}: no .png/.jpg/.jpeg image to score")
    if not cfg.references or not rdir.is_dir():
        raise InputError(f"{rdir}: reference folder not found; give a folder of real photos of the scene")
    gts: dict[Path, Path] = {}
    if cfg.gt:
        g = Path(cfg.gt)
        for q in queries:
            gts[q] = g if g.is_file() and len(queries) == 1 else g / q.name
            if not gts[q].is_file():
                raise InputError(f"{gts[q]}: ground truth for {q.name} not found; the ground truth is an image or a "
                                 "folder holding the query file names")
    return queries, list_images(rdir), gts


def predict_maps(cfg: PredictConfig) -> Scored:
    """Score every query of ``cfg`` with :class:`CrossScore`: writes ``maps/<stem>.{png,npy}``,
    ``figures/<stem>.png`` (and ``attention/<stem>.png``) under ``cfg.out`` and returns one row per image (mean
    predicted/true SSIM, size, references, file names)."""
    from tqdm import tqdm

    from models.crossscore.scorer import CrossScore, attention_patches

    set_threads(cfg.threads)
    attention_patches(cfg.attention)  # a malformed spec fails before anything runs
    queries, pool, gts = _queries(cfg)
    out = Path(cfg.out)
    check_creatable(out)  # creates nothing: a failed run leaves no empty folder
    cs = CrossScore.from_checkpoint(cfg.checkpoint, cfg.device, cfg.precision, backbone=cfg.backbone,
                                    short_side=cfg.short_side, n_ref=cfg.n_ref, seed=cfg.seed)
    stems = [q.stem for q in queries]
    rows = []
    for i in tqdm(range(0, len(queries), cfg.batch_size), desc="predict", disable=cfg.quiet):
        group = queries[i:i + cfg.batch_size]
        samples = [cs.sample(q, pool, gts.get(q)) for q in group]
        for q, s, m in zip(group, samples, cs.maps(samples), strict=True):
            stem = q.stem if stems.count(q.stem) == 1 else q.name  # a.png + a.jpg
            rows.append(_write_image(cfg, cs, out, stem, q, s, m))
    return Scored(out, rows, stamp(**cs.info, device=str(cs.device), precision=cfg.precision,
                                   pos_interp=cs.net.cfg.pos_interp, config=asdict(cfg)))


def _write_image(cfg: PredictConfig, cs: Any, out: Path, stem: str, query: Path, s: Any, m: Any) -> dict[str, Any]:
    """The files of one scored image (map PNG + .npy, figure, attention figure) and its row; ``cs``: the
    :class:`CrossScore` that scored it, ``s``: its ``Sample``, ``m``: its (H', W') map."""
    import numpy as np

    from models.crossscore.figures import to_hwc, turbo, write_attention_figure, write_figure, write_npy, write_png

    attn_file = f"attention/{stem}.png" if cfg.attention else ""
    if cfg.attention:  # computed first: a bad patch or head leaves no file of this image
        patches, attn = cs.attention(s, cfg.attention, cfg.attn_head)
        write_attention_figure(out / attn_file, to_hwc(s.query), [to_hwc(r) for r in s.refs], attn, patches,
                               cs.net.patch, [p.name for p in s.ref_paths])
    write_png(out / "maps" / f"{stem}.png", turbo(m))
    write_npy(out / "maps" / f"{stem}.npy", m)
    true = s.target.numpy() if s.target is not None else None
    write_figure(out / "figures" / f"{stem}.png", to_hwc(s.query), m, [to_hwc(r) for r in s.refs], true,
                 title=query.name, ref_names=[p.name for p in s.ref_paths])
    return {"image": str(query), "pred_ssim": float(np.mean(m)),
            "true_ssim": float(np.mean(true)) if true is not None else "", "width": m.shape[1],
            "height": m.shape[0], "references": ";".join(str(p) for p in s.ref_paths), "map_png": f"maps/{stem}.png",
            "map_npy": f"maps/{stem}.npy", "figure": f"figures/{stem}.png", "attention": attn_file}


def output_folder(cfg: TestConfig) -> Path:
    """``--out``, or ``runs/crossscore-test-<checkpoint name>-<baseline>``."""
    return Path(cfg.out or RUNS_DIR / f"crossscore-test-{Path(cfg.checkpoint).name}-{cfg.baseline}")


def score_dataset(cfg: TestConfig) -> Scored:
    """Score every render of ``cfg.data`` that has a ground truth; rows per image and the summary table."""
    from models.crossscore.checkpoint import short_side_for
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
