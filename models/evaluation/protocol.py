"""The NVS-SQA benchmark protocol: labels, ridge regression, correlations, per-scene tables, random splits.

Protocol (upstream, ../shared/specs/nvs-sqa.md "Evaluation"): the 384-d features of the labelled sequences
-> one ``Ridge(alpha=1)`` (with intercept) fitted on the train keys of all three datasets -> predictions of
the test keys -> SRCC and PLCC per scene over its test methods -> mean per dataset -> mean of the datasets.
KRCC (Kendall tau-b) and RMSE (JOD) are added. Keys are ``dataset+scene+method``.

No scikit-learn at run time: the ridge is solved in closed form (tests check it against scikit-learn).
"""

from __future__ import annotations

import json
import logging
import math
import zipfile
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from consts import BENCHMARK_LABELS_FILE as LABELS_FILE
from models.errors import InputError
from models.nvs_sqa import Regressor
from models.stats import correlations

log = logging.getLogger(__name__)
METRICS = ("srcc", "plcc", "krcc", "rmse")
AVERAGE = "average"  # the row averaging the datasets


# --------------------------------------------------------------------------------------------- labels
def parse_key(key: str) -> tuple[str, str, str]:
    """``dataset+scene+method`` -> (dataset, scene, method)."""
    parts = key.split("+")
    if len(parts) != 3 or not all(parts):
        raise ValueError(key)
    return parts[0], parts[1], parts[2]


@dataclass
class Labels:
    """JOD labels and the scene-wise train/test split of the benchmark."""

    labels: dict[str, float]
    train: list[str]
    test: list[str]
    source: str = ""


def load_labels(path: Path) -> Labels:
    """Read ``flat_labels_offset_by_ref_scenewise_split_11.json`` (keys labels, tr_keys, tt_keys), validated."""
    if path.is_dir():
        raise InputError(f"{path}: is a folder; --labels takes the JSON label file (e.g. {path}/{LABELS_FILE})")
    if not path.is_file():
        raise InputError(f"{path}: label file not found; pass --labels, or copy it from ../shared/benchmark")
    try:
        d = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"{path}: not a readable JSON label file ({type(e).__name__}); re-copy it") from None
    missing = [k for k in ("labels", "tr_keys", "tt_keys") if not isinstance(d, dict) or k not in d]
    if missing:
        raise InputError(f"{path}: malformed label file, missing {missing}; expected keys labels, tr_keys, tt_keys")
    labels, train, test = d["labels"], d["tr_keys"], d["tt_keys"]
    if not isinstance(labels, dict) or not isinstance(train, list) or not isinstance(test, list):
        raise InputError(f"{path}: malformed label file: labels must be an object, tr_keys/tt_keys lists")
    bad = [k for k, v in labels.items() if not _is_key(k) or not _is_number(v)]
    if bad:
        raise InputError(f"{path}: malformed labels {bad[:3]}: keys must be dataset+scene+method, values numbers")
    unknown = [k for k in train + test if k not in labels]
    if unknown:
        raise InputError(f"{path}: split keys without a label: {unknown[:3]} ({len(unknown)} in all)")
    both = sorted(set(train) & set(test))
    if both:
        raise InputError(f"{path}: keys in both tr_keys and tt_keys: {both[:3]} ({len(both)} in all)")
    return Labels({k: float(v) for k, v in labels.items()}, list(train), list(test), str(path))


def _is_key(k: Any) -> bool:
    try:
        parse_key(k)
        return True
    except (ValueError, AttributeError):
        return False


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def load_feature_file(path: Path) -> dict[str, np.ndarray]:
    """``{key: 1-d feature}`` from an ``.npz`` (app.py's output_features.npz format), all of one length."""
    if path.is_dir():
        raise InputError(f"{path}: is a folder; --features takes an .npz file (app.py writes output_features.npz)")
    if not path.is_file():
        raise InputError(f"{path}: features file not found; check --features")
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise InputError(f"{path}: one array (.npy), not an .npz of named features; save one 1-d feature per "
                             "key dataset+scene+method with numpy.savez")
        with z:
            feats = {k: np.asarray(z[k]) for k in z.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        raise InputError(f"{path}: not a readable .npz of features ({type(e).__name__}; truncated or not an .npz?); "
                         "re-create it") from None
    if not feats:
        raise InputError(f"{path}: holds no features")
    dims = {v.shape for v in feats.values()}
    if len(dims) != 1 or len(next(iter(dims))) != 1 or not all(np.isfinite(v).all() for v in feats.values()):
        raise InputError(f"{path}: every entry must be one finite 1-d feature vector of one length (got {dims})")
    return {k: v.astype(np.float32) for k, v in feats.items()}


def match_features(feats: dict[str, np.ndarray], labels: Labels, source: str, allow_missing: bool) -> list[str]:
    """Check feature keys against the labels; returns the labelled keys that have no feature.

    Unknown keys are an error (a typo or wrong naming would otherwise silently shrink the benchmark); missing
    keys are an error unless ``allow_missing``.
    """
    unknown = sorted(set(feats) - set(labels.labels))
    if unknown:
        raise InputError(
            f"{source}: {len(unknown)} key(s) are not benchmark keys, e.g. {unknown[:3]}; "
            "keys must be dataset+scene+method as in the label file"
        )
    missing = sorted(k for k in labels.labels if k not in feats)
    if missing and not allow_missing:
        raise InputError(
            f"{source}: {len(missing)} of {len(labels.labels)} labelled sequences missing, e.g. {missing[:3]}; "
            "add them or pass --allow-missing to evaluate the rest"
        )
    return missing


# --------------------------------------------------------------------------------------------- regression + metrics
def fit_ridge(x: np.ndarray, y: np.ndarray, alpha: float = 1.0, source_sha256: str = "") -> Regressor:
    """Closed-form ridge with an unpenalised intercept (scikit-learn ``Ridge(alpha)`` semantics).

    Centred data; solved in the dual (n x n) when there are more features than samples, as for 120 x 384.
    The coefficients are stored as float32 like upstream's scikit-learn model fitted on float32 features.
    """
    x64, y64 = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x64.ndim != 2 or len(x64) != len(y64) or len(y64) < 2:
        raise InputError(f"ridge: need >= 2 samples with one label each, got X {x64.shape}, y {y64.shape}")
    xm, ym = x64.mean(0), y64.mean()
    xc, yc = x64 - xm, y64 - ym
    n, d = xc.shape
    if d > n:
        w = xc.T @ np.linalg.solve(xc @ xc.T + alpha * np.eye(n), yc)
    else:
        w = np.linalg.solve(xc.T @ xc + alpha * np.eye(d), xc.T @ yc)
    return Regressor(w.astype(np.float32), float(ym - xm @ w), float(alpha), source_sha256)


# --------------------------------------------------------------------------------------------- protocol
@dataclass
class SplitResult:
    """One fit-and-test: per-scene rows, per-dataset means, the average, predictions and the regressor."""

    scenes: list[dict[str, Any]]
    datasets: list[dict[str, Any]]
    regressor: Regressor
    predictions: dict[str, float] = field(default_factory=dict)
    n_train: int = 0


def evaluate_split(
    feats: dict[str, np.ndarray], labels: dict[str, float], train: list[str], test: list[str], alpha: float = 1.0,
    source_sha256: str = "",
) -> SplitResult:  # fmt: skip
    """Fit on the train keys that have features, predict the test keys that have features, score per scene."""
    tr = [k for k in train if k in feats]
    tt = [k for k in test if k in feats]
    reg = fit_ridge(np.stack([feats[k] for k in tr]), np.array([labels[k] for k in tr]), alpha, source_sha256)
    pred = reg.predict(np.stack([feats[k] for k in tt])) if tt else np.zeros(0)
    by_scene: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, k in enumerate(tt):
        by_scene[parse_key(k)[:2]].append(i)
    scenes = []
    for (ds, sc), idx in sorted(by_scene.items()):
        m = correlations(pred[idx], np.array([labels[tt[i]] for i in idx]))
        scenes.append({"dataset": ds, "scene": sc, "n_test": len(idx), **m})
    return SplitResult(scenes, dataset_means(scenes), reg, dict(zip(tt, map(float, pred), strict=True)), len(tr))


def dataset_means(scenes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean of each metric over the scenes of each dataset, then the average of the datasets.

    Scenes whose correlation is undefined (fewer than 2 test methods, constant prediction) are left out of the
    mean and counted in ``n_undefined``.
    """
    rows = []
    for ds in sorted({s["dataset"] for s in scenes}):
        sc = [s for s in scenes if s["dataset"] == ds]
        row: dict[str, Any] = {"dataset": ds, "n_scenes": len(sc), "n_test": sum(s["n_test"] for s in sc)}
        for m in METRICS:
            vals = [s[m] for s in sc if not math.isnan(s[m])]
            row[m] = float(np.mean(vals)) if vals else math.nan
        row["n_undefined"] = sum(math.isnan(s["srcc"]) for s in sc)
        rows.append(row)
    if rows:
        avg: dict[str, Any] = {"dataset": AVERAGE, "n_scenes": sum(r["n_scenes"] for r in rows),
                               "n_test": sum(r["n_test"] for r in rows)}
        for m in METRICS:
            vals = [r[m] for r in rows if not math.isnan(r[m])]
            avg[m] = float(np.mean(vals)) if vals else math.nan
        avg["n_undefined"] = sum(r["n_undefined"] for r in rows)
        rows.append(avg)
    return rows


def scene_splits(keys: list[str], k: int, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """``k`` random scene-wise 50/50 splits of ``keys``: in every scene, half the methods train, half test.

    Split ``i`` draws from ``numpy.random.default_rng([seed, i])``, so a split does not depend on ``k``.
    With an odd number of methods in a scene, the extra one goes to the test side.
    """
    by_scene: dict[tuple[str, str], list[str]] = defaultdict(list)
    for key in sorted(keys):
        by_scene[parse_key(key)[:2]].append(key)
    out = []
    for i in range(k):
        rng = np.random.default_rng([seed, i])
        train, test = [], []
        for scene in sorted(by_scene):
            members = by_scene[scene]
            perm = rng.permutation(len(members))
            half = len(members) // 2
            train += [members[j] for j in perm[:half]]
            test += [members[j] for j in perm[half:]]
        out.append((train, test))
    return out


def summarize_splits(results: list[SplitResult]) -> list[dict[str, Any]]:
    """Mean and sample std (ddof=1) of each dataset's metrics over repeated splits."""
    rows = []
    for ds in [r["dataset"] for r in results[0].datasets]:
        row: dict[str, Any] = {"dataset": ds, "splits": len(results)}
        for m in METRICS:
            vals = np.array([r[m] for res in results for r in res.datasets if r["dataset"] == ds])
            vals = vals[~np.isnan(vals)]
            row[f"{m}_mean"] = float(vals.mean()) if len(vals) else math.nan
            row[f"{m}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else math.nan
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------- tables
def markdown_report(
    main: SplitResult, published: dict[str, dict[str, float]], splits: list[dict[str, Any]] | None = None,
    note: str = "",
) -> str:  # fmt: skip
    """Tables laid out like the upstream README: a summary per dataset, then one per-scene table per dataset."""
    from models.results import table

    parts = []
    if note:
        parts.append(f"> {note}\n")
    summary = [{**r, **{f"published_{m}": published.get(r["dataset"], {}).get(m, "") for m in ("srcc", "plcc")}}
               for r in main.datasets]
    cols = ["dataset", "n_scenes", "n_test", *METRICS, "published_srcc", "published_plcc"]
    parts += ["## Summary (authoritative split)\n", table(summary, cols, fmt="github"), ""]
    for ds in [r["dataset"] for r in main.datasets if r["dataset"] != AVERAGE]:
        rows = [s for s in main.scenes if s["dataset"] == ds]
        mean = next(r for r in main.datasets if r["dataset"] == ds)
        rows = rows + [{"scene": "**mean**", **{m: mean[m] for m in METRICS}, "n_test": mean["n_test"]}]
        parts += [f"## {ds}\n", table(rows, ["scene", "n_test", *METRICS], fmt="github"), ""]
    if splits:
        fmt = [{"dataset": r["dataset"], "splits": r["splits"],
                **{m: f"{r[f'{m}_mean']:.4f} ± {r[f'{m}_std']:.4f}" for m in METRICS}} for r in splits]
        parts += [f"## {splits[0]['splits']} random scene-wise 50/50 splits (mean ± std)\n",
                  table(fmt, ["dataset", "splits", *METRICS], fmt="github"), ""]
    return "\n".join(parts)
