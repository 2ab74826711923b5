"""CrossScore testing: predictors (a network or the constant-map baseline), per-image rows, summary tables.

The metrics of ``crossscore.py test`` and of the demo report: map L1, PSNR from L1 (-10·log10(L1²)), mean
per-image pixel Pearson correlation, and the SRCC of the per-image mean SSIM. Beside them, upstream's test
metrics (``upstream_*``, task/core.py ``on_test_batch_end``): consecutive batches of 24 images, per batch the
L1 of all its pixels, PSNR from that L1 and the Pearson correlation *pooled over all pixels of the batch*, then
averaged over the batches weighted by their size (Lightning's epoch mean): the numbers to compare with the paper.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch

from consts import CROSSSCORE_N_REF
from models.crossscore.checkpoint import checkpoint_meta, load_model
from models.crossscore.data import Item, batches_by_size, collate, load_sample
from models.crossscore.network import CrossScoreNet
from models.errors import InputError
from models.frames import prefetch
from models.runtime import resolve_device
from models.ssim import psnr_from_l1
from models.stats import pearson

Predictor = Callable[[dict[str, Any]], torch.Tensor]
UPSTREAM_BATCH = 24  # upstream's test batch size (config/data/*.yaml, loader.validation.batch_size)
PRECISIONS = ("auto", "fp16", "fp32")  # see autocast_for
_SUMS = ("_n", "_sa", "_sp", "_st", "_spp", "_stt", "_spt")  # per image: pixels, Σ|p−t|, Σp, Σt, Σp², Σt², Σpt


def map_pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pixel Pearson correlation of two maps (nan when either is constant)."""
    return pearson(a.detach().double().flatten().cpu().numpy(), b.detach().double().flatten().cpu().numpy())


def check_precision(precision: str) -> None:
    """Refuse a ``precision`` that is not one of :data:`PRECISIONS` (one line naming the parameter)."""
    if precision not in PRECISIONS:
        raise InputError(f"precision={precision}: unknown; use {', '.join(PRECISIONS)}")


def autocast_for(dev: torch.device, precision: str) -> Any:
    """The autocast context of ``precision``: "auto" = fp16 on CUDA (upstream predicts in 16-mixed), fp32 on
    the CPU; "fp16" = fp16 autocast on any device (on the CPU: slow, only to measure the difference); "fp32"."""
    check_precision(precision)
    if precision == "fp16" or (precision == "auto" and dev.type == "cuda"):
        return torch.autocast(dev.type, dtype=torch.float16)
    return nullcontext()


def net_predictor(net: CrossScoreNet, dev: torch.device, fp16: bool = False, precision: str | None = None
                  ) -> Predictor:
    """Batch -> (B, H, W) float32 score maps on the CPU from ``net`` on ``dev``. ``precision`` (see
    :func:`autocast_for`) wins over ``fp16`` (fp16 autocast on CUDA only)."""
    precision = precision or ("auto" if fp16 else "fp32")

    def predict(batch: dict[str, Any]) -> torch.Tensor:
        with torch.no_grad(), autocast_for(dev, precision):
            refs = batch["refs"].to(dev) if batch["refs"] is not None else None
            valid = batch["ref_valid"].to(dev) if batch["ref_valid"] is not None else None
            return net(batch["query"].to(dev), refs, valid)["score_map"].float().cpu()
    return predict


def constant_predictor(value: float, patch: int = 14) -> Predictor:
    """The constant-map baseline: every pixel of every image gets ``value``."""
    def predict(batch: dict[str, Any]) -> torch.Tensor:
        b, _, h, w = batch["query"].shape
        return torch.full((b, h - h % patch, w - w % patch), float(value))
    return predict


def evaluate(predict: Predictor, items: Sequence[Item], n_ref: int, short_side: int, batch_size: int = 8,
             seed: int | None = None, progress: bool = True) -> list[dict[str, Any]]:
    """One row per query: true and predicted mean SSIM, map L1 and pixel Pearson correlation."""
    from tqdm import tqdm

    loaded = prefetch(((it, load_sample(it, n_ref, short_side, 0, seed)) for it in items), depth=4)
    rows = []
    with tqdm(total=len(items), desc="test", disable=not progress) as bar:
        for group in batches_by_size(loaded, batch_size):
            batch = collate([s for _, s in group])
            if batch["target"] is None:
                raise InputError(f"{group[0][0].query}: no ground truth or SSIM target; test needs one per render")
            pred = predict(batch)
            for (it, _s), p, t in zip(group, pred, batch["target"], strict=True):
                rows.append({"dataset": it.dataset, "method": it.method, "scene": it.scene, "image": str(it.query),
                             "true_ssim": float(t.mean()), "pred_ssim": float(p.mean()),
                             "l1": float((p - t).abs().mean()), "pearson": map_pearson(p, t),
                             **_sums(p, t)})
            bar.update(len(group))
    return rows


def _sums(p: torch.Tensor, t: torch.Tensor) -> dict[str, float]:
    p, t = p.detach().double().flatten(), t.detach().double().flatten()
    vals = (p.numel(), (p - t).abs().sum(), p.sum(), t.sum(), (p * p).sum(), (t * t).sum(), (p * t).sum())
    return {k: float(v) for k, v in zip(_SUMS, vals, strict=True)}


def upstream_metrics(rows: Sequence[dict[str, Any]], batch: int = UPSTREAM_BATCH) -> dict[str, float]:
    """Upstream's aggregate over ``rows`` in their order: L1, PSNR from L1 and pooled Pearson per batch of
    ``batch`` images, averaged over batches weighted by their size (see the module docstring)."""
    l1s, psnrs, corrs, sizes = [], [], [], []
    for i in range(0, len(rows), batch):
        n, sa, sp, st, spp, stt, spt = (sum(r[k] for r in rows[i:i + batch]) for k in _SUMS)
        l1 = sa / n
        cov, vp, vt = spt - sp * st / n, spp - sp * sp / n, stt - st * st / n
        l1s.append(l1)
        psnrs.append(psnr_from_l1(l1))
        flat = vp <= 1e-12 * max(spp, 1e-300) or vt <= 1e-12 * max(stt, 1e-300)  # constant up to rounding
        corrs.append(float("nan") if flat else cov / math.sqrt(vp * vt))
        sizes.append(len(rows[i:i + batch]))
    if not sizes:
        return {"upstream_l1": float("nan"), "upstream_psnr": float("nan"), "upstream_pearson": float("nan")}
    w = np.asarray(sizes, np.float64) / sum(sizes)
    return {"upstream_l1": float(np.dot(w, l1s)), "upstream_psnr": float(np.dot(w, psnrs)),
            "upstream_pearson": float(np.dot(w, corrs))}  # nan when a batch is constant (upstream: nan too)


def summarise(rows: Sequence[dict[str, Any]], key: Callable[[dict[str, Any]], tuple[str, str]] | None = None,
              overall: bool = True) -> list[dict[str, Any]]:
    """Per group (default: dataset, method) and overall: n, L1, PSNR from L1, mean pixel Pearson, SRCC of the
    per-image means (nan for a constant prediction, whose correlation is undefined)."""
    from scipy.stats import spearmanr

    key = key or (lambda r: (r["dataset"], r["method"]))
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(key(r), []).append(r)
    if overall:
        groups[("all", "all")] = list(rows)
    out = []
    for (ds, m), rs in groups.items():
        l1 = float(np.mean([r["l1"] for r in rs]))
        pr = [r["pearson"] for r in rs if not math.isnan(r["pearson"])]
        pred, true = [r["pred_ssim"] for r in rs], [r["true_ssim"] for r in rs]
        srcc = float(spearmanr(pred, true).statistic) if len(rs) > 2 and np.ptp(pred) > 0 else float("nan")
        out.append({"dataset": ds, "method": m, "n": len(rs), "l1": l1, "psnr": psnr_from_l1(l1),
                    "pearson": float(np.mean(pr)) if pr else float("nan"), "srcc": srcc,
                    "true_ssim": float(np.mean(true)), "pred_ssim": float(np.mean(pred)),
                    **(upstream_metrics(rs) if all("_n" in r for r in rs) else {})})
    return out


def make_predictor(checkpoint: str, baseline: str = "none", backbone: str | None = None, device: str = "cpu",
                   n_ref: int = -1, precision: str = "auto") -> tuple[Predictor, int, dict[str, Any]]:
    """The predictor of ``test``: a checkpoint's network, or (``baseline="constant"``) its mean training target
    as a constant map. Returns (predictor, references per query, provenance)."""
    net, info = load_model(checkpoint, backbone)
    meta = checkpoint_meta(checkpoint)
    n = n_ref if n_ref >= 0 else int(meta.get("n_ref", CROSSSCORE_N_REF))
    if baseline == "constant":
        if "train_target_mean" not in meta:
            raise InputError(f"{checkpoint}: no train_target_mean in config.json; the constant baseline needs a "
                             "checkpoint written by crossscore.py train")
        value = float(meta["train_target_mean"])
        return constant_predictor(value, net.patch), n, {**info, "baseline": "constant", "constant": value}
    if baseline != "none":
        raise InputError(f"baseline={baseline}: unknown; use none or constant")
    dev = resolve_device(device)
    return net_predictor(net.to(dev), dev, precision=precision), n, {**info, "device": str(dev),
                                                                      "precision": precision}
