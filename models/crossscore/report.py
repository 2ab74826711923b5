"""The held-out report of the offline CrossScore model against its two baselines (``make crossscore-demo``).

    python -m models.crossscore.report --data runs/crossscore-demo-data/heldout \\
        --checkpoint checkpoints/crossscore-tiny --noref runs/crossscore-tiny-noref/model

Scores the held-out frames with (1) CrossScore (references of the other split), (2) the no-reference variant
of the same network (trained the same way with ``--n-ref 0``) and (3) a constant map (the mean training
target), and writes ``benchmarks/crossscore_demo.{json,md}`` (per degradation kind and per group: kinds seen in
training vs held-out kinds) and the figure ``docs/crossscore_demo.png``.
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import time
from pathlib import Path
from typing import Any

from consts import ROOT
from models.crossscore.data import discover_items, load_sample
from models.crossscore.demo import HELDOUT_KINDS
from models.crossscore.figures import to_hwc, write_figure
from models.crossscore.train import evaluate, make_predictor, summarise
from models.errors import InputError
from models.results import stamp, table, write_json

log = logging.getLogger(__name__)
COLUMNS = ("model", "subset", "n", "l1", "psnr", "pearson", "srcc", "pred_ssim", "true_ssim")


def _machine() -> str:
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    import os

    return f"{cpu}, {os.cpu_count()} cores, no GPU used"


def report(data: Path, checkpoint: str, noref: str, out: Path, figure: Path, short_side: int = 0,
           progress: bool = True) -> list[dict[str, Any]]:
    """Evaluate the three predictors on ``data`` and write the tables and the figure."""
    items = discover_items(data)
    group = lambda r: ("held-out kinds" if r["method"] in HELDOUT_KINDS else "trained kinds", "")  # noqa: E731
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
        summ += summarise(rows, key=group, overall=True)
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
          "-10·log10(L1²). A constant map has no correlation (nan).", "",
          table(results, COLUMNS, fmt="github"), ""]
    from models.results import atomic_write_bytes

    atomic_write_bytes(out.with_suffix(".md"), "\n".join(md).encode())
    _figure(items, checkpoint, figure, short_side)
    return results


def _figure(items, checkpoint: str, path: Path, short_side: int) -> None:
    """One held-out render of a held-out kind (warp) with its predicted and true maps."""
    predict, n_ref, _ = make_predictor(checkpoint)
    pick = [it for it in items if it.method == "warp"] or list(items)
    it = pick[len(pick) // 2]
    s = load_sample(it, n_ref, short_side)
    from models.crossscore.data import collate

    m = predict(collate([s]))[0].numpy()
    write_figure(path, to_hwc(s.query), m, [to_hwc(r) for r in s.refs], s.target.numpy(),
                 title=f"held-out {it.method} render {it.scene}/{it.query.name}",
                 ref_names=[p.name for p in s.ref_paths], dpi=56)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="held-out dataset root")
    p.add_argument("--checkpoint", required=True, help="the CrossScore model (with references)")
    p.add_argument("--noref", required=True, help="the no-reference variant (trained with --n-ref 0)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "crossscore_demo"), help="tables: OUT.json, OUT.md")
    p.add_argument("--figure", default=str(ROOT / "docs" / "crossscore_demo.png"))
    p.add_argument("--short-side", type=int, default=0, help="resize the short side (default 0: keep the size)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if a.quiet else logging.INFO, format="%(levelname)s: %(message)s")
    if a.threads > 0:
        import torch

        torch.set_num_threads(a.threads)
    try:
        rows = report(Path(a.data), a.checkpoint, a.noref, Path(a.out), Path(a.figure), a.short_side, not a.quiet)
    except InputError as e:
        log.error("%s", e)
        return 2
    print(table(rows, COLUMNS))
    print(f"wrote {a.out}.json, {a.out}.md and {a.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
