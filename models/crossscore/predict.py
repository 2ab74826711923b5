"""What ``crossscore.py predict`` and ``test`` compute (their options: :mod:`models.crossscore.options`).

``predict`` finds the query files, scores them with :class:`models.crossscore.scorer.CrossScore` against real
photos of other viewpoints and merges one map (turbo PNG + float .npy, at the render's size) and one figure per
image into the output folder as each batch is done; ``test``
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
from models.cli import as_flags, flags_of, warnings_as_flags
from models.crossscore.options import PredictConfig, TestConfig
from models.errors import InputError
from models.journal import unit
from models.results import check_creatable, merge_rows, read_json, stamp
from models.runtime import set_threads

log = logging.getLogger(__name__)
SCORE_HELP = "scores are SSIM values in [0, 1] predicted per pixel (1 = identical to the unseen ground truth)"
PRED_COLUMNS = ("image", "pred_ssim", "true_ssim", "width", "height", "working_width", "working_height", "source",
                "references", "map_png", "map_npy", "figure", "attention")
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
        parts = Path(r.get("source") or r["image"]).parts
        out.append({"scene_name": parts[-5] if len(parts) >= 5 else "",
                    "rendered_dir": str(Path(*parts[:-2])) if len(parts) > 2 else "",
                    "image_name": parts[-1].replace("frame_", ""), "pred_ssim_0_1": f"{r['pred_ssim']:.4f}"})
    return out


def _queries(cfg: PredictConfig) -> tuple[list[Path], list[Path], dict[Path, Path]]:
    """(queries, reference pool, ground truth per query), each checked with a one-line error."""
    from models.frames import is_image, list_images

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


def _names(queries: list[Path], query: Path) -> dict[Path, str]:
    """Each query's name, as app.py names sequences: its path relative to the query input (a file: its own name)."""
    return {q: (q.relative_to(query).as_posix() if query.is_dir() else q.name) for q in queries}


def _check_sources(out: Path, names: dict[Path, str]) -> None:
    """Refuse (one line naming both) to put an image's results under a name ``out`` holds for another file."""
    held = {r["image"]: r.get("source") for r in (read_json(out / "scores.json") or {}).get("rows", [])}
    for q, name in names.items():
        old = held.get(name)
        if old is not None and str(Path(old).absolute()) != str(q.absolute()):
            raise InputError(f"{out}: {name!r} holds the maps of {old}, not of {q}; use another --out")


def predict_maps(cfg: PredictConfig) -> Scored:
    """Score every query of ``cfg`` with :class:`CrossScore`, each batch merged into ``cfg.out`` as soon as it is
    scored (one unit per batch: ``maps/<name>.{png,npy}`` at the render's own size, ``figures/<name>.png``,
    ``attention/<name>.png``, and the rows of scores.csv / scores_upstream.csv / scores.json, merged by name);
    returns this run's rows (mean predicted/true SSIM, sizes, references, file names)."""
    from tqdm import tqdm

    from models.crossscore.scorer import CrossScore, attention_patches

    set_threads(cfg.threads)
    attention_patches(cfg.attention)  # a malformed spec fails before anything runs
    queries, pool, gts = _queries(cfg)
    out, names = Path(cfg.out), _names(queries, Path(cfg.query))
    check_creatable(out)  # creates nothing: a failed run leaves no empty folder
    _check_sources(out, names)
    flags = flags_of(PredictConfig)  # the demo model's warning names the library's parameter: show the flag
    with warnings_as_flags(flags):
        cs = CrossScore.from_checkpoint(cfg.checkpoint, cfg.device, cfg.precision, backbone=cfg.backbone,
                                        short_side=cfg.short_side, n_ref=cfg.n_ref, seed=cfg.seed)
    if cs.info.get("warning"):
        cs.info["warning"] = as_flags(cs.info["warning"], flags)  # as recorded in scores.json
    meta = stamp(**cs.info, device=str(cs.device), precision=cfg.precision, pos_interp=cs.net.cfg.pos_interp,
                 config=asdict(cfg))  # fmt: skip
    stems = [Path(n).with_suffix("").as_posix() for n in names.values()]
    rows: list[dict[str, Any]] = []
    for i in tqdm(range(0, len(queries), cfg.batch_size), desc="predict", disable=cfg.quiet):
        group = queries[i:i + cfg.batch_size]
        samples = [cs.sample(q, pool, gts.get(q)) for q in group]
        done, files = [], {}
        for q, sample, m in zip(group, samples, cs.maps(samples), strict=True):
            stem = Path(names[q]).with_suffix("").as_posix()
            stem = stem if stems.count(stem) == 1 else names[q]  # a.png + a.jpg keep their suffixes
            row, outputs = _image_outputs(cfg, cs, names[q], stem, q, sample, m)
            done.append(row)
            files.update(outputs)
        merge_predictions(out, done, files, meta)
        rows += done
    return Scored(out, rows, meta)


def merge_predictions(out: Path, rows: list[dict[str, Any]], files: dict[str, bytes | None],
                      meta: dict[str, Any]) -> None:  # fmt: skip
    """One unit into ``out``: ``files`` (relative path -> bytes, None = remove a stale one) and ``rows`` merged by
    image name into the three tables (rows of other names kept)."""
    with unit(out) as u:
        for rel, data in files.items():
            u.remove(out / rel) if data is None else u.write_bytes(out / rel, data)
        merged = merge_rows((read_json(out / "scores.json") or {}).get("rows", []), rows, key="image")
        u.write_csv(out / "scores.csv", merged, PRED_COLUMNS)
        u.write_csv(out / "scores_upstream.csv", upstream_rows(merged), UPSTREAM_PRED_COLUMNS)
        u.write_json(out / "scores.json", {**meta, "help": SCORE_HELP, "rows": merged})


def _image_outputs(cfg: PredictConfig, cs: Any, name: str, stem: str, query: Path, s: Any, m: Any
                   ) -> tuple[dict[str, Any], dict[str, bytes | None]]:  # fmt: skip
    """The row and files of one scored image; ``cs``: the :class:`CrossScore` that scored it, ``s``: its
    ``Sample``, ``m``: its map at the working size (H', W'), written at the render's own size."""
    import numpy as np

    from models.crossscore.data import map_to_render
    from models.crossscore.figures import attention_png, figure_png, png_bytes, to_hwc, turbo
    from models.pixels import image_size
    from models.results import npy_bytes

    files: dict[str, bytes | None] = {}
    attn_file = f"attention/{stem}.png" if cfg.attention else ""
    if cfg.attention:  # computed first: a bad patch or head leaves no file of this image
        patches, attn = cs.attention(s, cfg.attention, cfg.attn_head)
        files[attn_file] = attention_png(to_hwc(s.query), [to_hwc(r) for r in s.refs], attn, patches, cs.net.patch,
                                         [p.name for p in s.ref_paths])  # fmt: skip
    else:
        files[f"attention/{stem}.png"] = None  # a map re-made without --attention loses its old attention figure
    w, h = image_size(query)
    full = map_to_render(m, (h, w), cs.short_side)
    files[f"maps/{stem}.png"], files[f"maps/{stem}.npy"] = png_bytes(turbo(full)), npy_bytes(full)
    true = s.target.numpy() if s.target is not None else None
    files[f"figures/{stem}.png"] = figure_png(to_hwc(s.query), m, [to_hwc(r) for r in s.refs], true,
                                              title=query.name, ref_names=[p.name for p in s.ref_paths])
    row = {"image": name, "source": str(query), "pred_ssim": float(np.mean(m)),
           "true_ssim": float(np.mean(true)) if true is not None else "", "width": w, "height": h,
           "working_width": m.shape[1], "working_height": m.shape[0],
           "references": ";".join(str(p) for p in s.ref_paths), "map_png": f"maps/{stem}.png",
           "map_npy": f"maps/{stem}.npy", "figure": f"figures/{stem}.png", "attention": attn_file}  # fmt: skip
    return row, files


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
