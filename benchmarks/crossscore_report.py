"""The held-out report of the offline CrossScore model against its two baselines (``make crossscore-demo``).

    python -m benchmarks.crossscore_report --data runs/crossscore-demo-data/heldout \\
        --checkpoint checkpoints/crossscore-tiny --noref runs/crossscore-tiny-noref/model

Scores the held-out frames with (1) CrossScore (references of the other split), (2) the no-reference variant
of the same network (trained the same way with ``--n-ref 0``) and (3) a constant map (the mean training
target), and writes ``benchmarks/crossscore_demo.{json,md}`` (per degradation kind and per group: kinds seen in
training vs held-out kinds) and the figure ``docs/crossscore_demo.png``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consts import ROOT
from models import cli
from models.cli import opt
from models.crossscore.data import collate, discover_items, load_sample
from models.crossscore.demo import HELDOUT_KINDS
from models.crossscore.evaluate import evaluate, make_predictor, summarise
from models.crossscore.figures import to_hwc, write_figure
from models.results import atomic_write_bytes, stamp, table, write_json
from models.runtime import cpu_name, set_threads

log = logging.getLogger(__name__)
COLUMNS = ("model", "subset", "n", "l1", "psnr", "pearson", "srcc", "pred_ssim", "true_ssim", "upstream_l1",
           "upstream_psnr", "upstream_pearson")


@dataclass
class ReportConfig:
    """Options of ``python -m benchmarks.crossscore_report``."""

    data: str = opt("", "held-out dataset root", required=True)
    checkpoint: str = opt("", "the CrossScore model (with references)", required=True)
    noref: str = opt("", "the no-reference variant (trained with --n-ref 0)", required=True)
    out: str = opt(str(ROOT / "benchmarks" / "crossscore_demo"), "tables: OUT.json, OUT.md")
    figure: str = opt(str(ROOT / "docs" / "crossscore_demo.png"), "the example figure (PNG)")
    short_side: int = opt(0, "resize the short side (default 0: keep the size)", min=0)
    threads: int = opt(0, "torch CPU threads (0 = torch's default)", min=0)
    quiet: bool = opt(False, "no progress bars or info messages")


def _machine() -> str:
    return f"{cpu_name()}, {os.cpu_count()} cores, no GPU used"


def _kind_group(row: dict[str, Any]) -> tuple[str, str]:
    """The subset of a row: degradation kinds seen in training vs held-out kinds."""
    return ("held-out kinds" if row["method"] in HELDOUT_KINDS else "trained kinds", "")


def report(data: Path, checkpoint: str, noref: str, out: Path, figure: Path, short_side: int = 0,
           progress: bool = True) -> list[dict[str, Any]]:
    """Evaluate the three predictors on ``data`` and write the tables and the figure."""
    items = discover_items(data)
    results: list[dict[str, Any]] = []
    provenance = {}
    for label, ckpt, baseline in (("CrossScore (5 references)", checkpoint, "none"),
                                  ("no-reference variant", noref, "none"),
                                  ("constant map", checkpoint, "constant")):
        predict, n_ref, info = make_predictor(ckpt, baseline)
        t0 = time.perf_counter()
        rows = evaluate(predict, items, n_ref, short_side, 8, None, progress)
        provenance[label] = {**info, "n_ref": n_ref, "seconds": round(time.perf_counter() - t0, 1)}
        summ = summarise(rows, key=lambda r: (r["method"], ""), overall=False)
        summ += summarise(rows, key=_kind_group, overall=True)
        for s in summ:
            subset = "all" if s["dataset"] == "all" else s["dataset"]
            results.append({"model": label, "subset": subset, **{k: s[k] for k in COLUMNS[2:]}})
    order = {"all": 0, "held-out kinds": 1, "trained kinds": 2}
    results.sort(key=lambda r: (order.get(r["subset"], 3), r["subset"], list(provenance).index(r["model"])))
    meta = stamp(machine=_machine(), data=str(data), n_images=len(items), models=provenance)
    write_json(out.with_suffix(".json"), {**meta, "rows": results})
    md = ["# CrossScore offline demo: held-out frames (made by `make crossscore-demo`)", "",
          f"Machine: {meta['machine']}. Data: {data} ({len(items)} renders). Pearson = mean per-image pixel "
          "correlation of predicted and true SSIM maps; SRCC = Spearman of per-image mean SSIM; PSNR = "
          "-10·log10(L1²). A constant map has no correlation (nan). upstream_*: upstream's test metrics (batches "
          "of 24 renders in dataset order, Pearson pooled over a batch's pixels, weighted mean over batches).", "",
          table(results, COLUMNS, fmt="github"), ""]
    atomic_write_bytes(out.with_suffix(".md"), "\n".join(md).encode())
    _figure(items, checkpoint, figure, short_side)
    return results


def _figure(items, checkpoint: str, path: Path, short_side: int) -> None:
    """One held-out render of a held-out kind (warp) with its predicted and true maps."""
    predict, n_ref, _ = make_predictor(checkpoint)
    pick = [it for it in items if it.method == "warp"] or list(items)
    it = pick[len(pick) // 2]
    s = load_sample(it, n_ref, short_side)
    m = predict(collate([s]))[0].numpy()
    write_figure(path, to_hwc(s.query), m, [to_hwc(r) for r in s.refs], s.target.numpy(),
                 title=f"held-out {it.method} render {it.scene}/{it.query.name}",
                 ref_names=[p.name for p in s.ref_paths], dpi=56)


def parse_args(argv: list[str] | None = None) -> ReportConfig:
    """The config of ``argv`` (flags of :class:`ReportConfig`)."""
    return cli.parse(ReportConfig, argv, description=__doc__.split("\n")[0]).config


def run(cfg: ReportConfig) -> int:
    """Write the report of ``cfg``; prints the table."""
    set_threads(cfg.threads)
    rows = report(Path(cfg.data), cfg.checkpoint, cfg.noref, Path(cfg.out), Path(cfg.figure), cfg.short_side,
                  not cfg.quiet)
    print(table(rows, COLUMNS))
    print(f"wrote {cfg.out}.json, {cfg.out}.md and {cfg.figure}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m benchmarks.crossscore_report``."""
    return cli.main(parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
