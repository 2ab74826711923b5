"""Benchmark protocol: ridge vs scikit-learn, correlations vs scipy, exact tables, splits, label/feature errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from consts import BENCHMARK_LABELS_FILE, ROOT
from models.errors import InputError
from models.evaluation import protocol as bm
from models.stats import correlations

LABELS = ROOT / "benchmark_bank" / BENCHMARK_LABELS_FILE


@pytest.mark.parametrize("n,d", [(120, 384), (200, 10)])  # dual (d > n, as the benchmark) and primal solve
def test_ridge_matches_sklearn(n, d):
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(n)
    x, y = rng.normal(size=(n, d)) * rng.uniform(0.1, 3, d), rng.normal(size=n)
    ref = Ridge(alpha=1.0).fit(x, y)
    ours = bm.fit_ridge(x, y, alpha=1.0)
    np.testing.assert_allclose(ours.coef, ref.coef_.astype(np.float32), rtol=0, atol=1e-6)
    assert ours.intercept == pytest.approx(ref.intercept_, abs=1e-9)
    np.testing.assert_allclose(ours.predict(x), ref.predict(x), atol=2e-5)


def test_ridge_alpha_changes_fit():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(30, 5)), rng.normal(size=30)
    assert not np.allclose(bm.fit_ridge(x, y, 1.0).coef, bm.fit_ridge(x, y, 10.0).coef)


def test_correlations_match_scipy():
    rng = np.random.default_rng(0)
    p = rng.normal(size=40).round(1)  # rounding makes ties, where SRCC/KRCC conventions matter
    t = (p + rng.normal(scale=0.5, size=40)).round(1)
    m = correlations(p, t)
    assert m["srcc"] == pytest.approx(stats.spearmanr(p, t).statistic, abs=1e-12)
    assert m["plcc"] == pytest.approx(stats.pearsonr(p, t).statistic, abs=1e-12)
    assert m["krcc"] == pytest.approx(stats.kendalltau(p, t).statistic, abs=1e-12)
    assert m["rmse"] == pytest.approx(math.sqrt(np.mean((p - t) ** 2)), abs=1e-12)


def test_correlations_small_exact_and_undefined():
    m = correlations(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.array([5.0, 6.0, 7.0, 9.0, 8.0]))
    assert m["srcc"] == pytest.approx(0.9) and m["krcc"] == pytest.approx(0.8)
    assert m["rmse"] == pytest.approx(math.sqrt((16 + 16 + 16 + 25 + 9) / 5))
    const = correlations(np.array([1.0, 1.0, 1.0]), np.array([1.0, 2.0, 3.0]))
    assert math.isnan(const["srcc"]) and math.isnan(const["plcc"]) and const["rmse"] == pytest.approx(math.sqrt(5 / 3))
    assert math.isnan(correlations(np.array([1.0]), np.array([2.0]))["srcc"])


def test_real_label_file_and_exact_linear_features():
    """Features that carry the label linearly: every scene's SRCC = PLCC = 1 under the published protocol."""
    labels = bm.load_labels(LABELS)
    assert len(labels.labels) == 240 and len(labels.train) == len(labels.test) == 120
    v = np.random.default_rng(0).normal(size=384)
    feats = {k: (y * v + 3.0).astype(np.float32) for k, y in labels.labels.items()}
    assert bm.match_features(feats, labels, "f", allow_missing=False) == []
    res = bm.evaluate_split(feats, labels.labels, labels.train, labels.test)
    assert len(res.scenes) == 24 and all(s["n_test"] == 5 for s in res.scenes)
    assert [r["dataset"] for r in res.datasets] == ["fieldwork", "lab", "llff", bm.AVERAGE]
    assert [r["n_scenes"] for r in res.datasets] == [9, 7, 8, 24]
    for r in res.scenes + res.datasets:
        assert r["srcc"] == pytest.approx(1.0, abs=1e-12) and r["krcc"] == pytest.approx(1.0, abs=1e-12)
        assert r["plcc"] == pytest.approx(1.0, abs=1e-9)
    assert res.n_train == 120 and len(res.predictions) == 120


def _tiny_feats():
    """2 datasets x 2 scenes x 4 methods, 2-d features; labels and split chosen by hand."""
    keys = [f"{d}+{s}+m{i}" for d in ("da", "db") for s in ("s1", "s2") for i in range(4)]
    rng = np.random.default_rng(3)
    feats = {k: rng.normal(size=2).astype(np.float32) for k in keys}
    labels = {k: float(feats[k][0] * 2 - feats[k][1] + (0.3 if k.endswith("m3") else 0.0)) for k in keys}
    train = [k for k in keys if k[-1] in "01"]
    test = [k for k in keys if k[-1] in "23"]
    return feats, bm.Labels(labels, train, test)


def test_evaluate_split_scene_rows_by_hand():
    feats, lab = _tiny_feats()
    res = bm.evaluate_split(feats, lab.labels, lab.train, lab.test)
    reg = bm.fit_ridge(np.stack([feats[k] for k in lab.train]), np.array([lab.labels[k] for k in lab.train]))
    for s in res.scenes:
        keys = [f"{s['dataset']}+{s['scene']}+m{i}" for i in (2, 3)]
        pred = reg.predict(np.stack([feats[k] for k in keys]))
        assert s["n_test"] == 2
        assert s["rmse"] == pytest.approx(math.sqrt(np.mean((pred - [lab.labels[k] for k in keys]) ** 2)))
        assert s["srcc"] == (1.0 if (pred[1] - pred[0]) * (lab.labels[keys[1]] - lab.labels[keys[0]]) > 0 else -1.0)
    da = [s for s in res.scenes if s["dataset"] == "da"]
    assert res.datasets[0]["rmse"] == pytest.approx((da[0]["rmse"] + da[1]["rmse"]) / 2)
    assert res.datasets[-1]["srcc"] == pytest.approx((res.datasets[0]["srcc"] + res.datasets[1]["srcc"]) / 2)


def test_markdown_report_layout():
    feats, lab = _tiny_feats()
    res = bm.evaluate_split(feats, lab.labels, lab.train, lab.test)
    summary = bm.summarize_splits([res, res])
    md = bm.markdown_report(res, {"da": {"srcc": 0.5, "plcc": 0.25}}, summary, note="a note")
    lines = md.splitlines()
    assert lines[0] == "> a note"
    heads = [ln for ln in lines if ln.startswith("## ")]
    assert heads == ["## Summary (authoritative split)", "## da", "## db",
                     "## 2 random scene-wise 50/50 splits (mean ± std)"]
    i = lines.index("## da")
    assert lines[i + 2].replace(" ", "") == "|scene|n_test|srcc|plcc|krcc|rmse|"
    assert [ln.split("|")[1].strip() for ln in lines[i + 4:i + 7]] == ["s1", "s2", "**mean**"]
    da = next(ln for ln in lines if ln.startswith("| da "))
    assert [c.strip() for c in da.split("|")[1:-1]] == ["da", "2", "4", "1.0000", "1.0000", "1.0000", "0.5747",
                                                      "0.5000", "0.2500"]
    assert "± 0.0000" in md  # identical splits: zero spread


def test_scene_splits_half_per_scene_and_seeded():
    keys = [f"d+s{s}+m{i}" for s in range(3) for i in range(10)]
    a = bm.scene_splits(keys, 3, seed=7)
    assert a == bm.scene_splits(keys, 3, seed=7) and a[:2] == bm.scene_splits(keys, 2, seed=7)
    assert a[0] != a[1] and a[0] != bm.scene_splits(keys, 1, seed=8)[0]
    for train, test in a:
        assert sorted(train + test) == sorted(keys)
        for s in range(3):
            assert sum(k.startswith(f"d+s{s}+") for k in train) == 5


def _write(tmp_path, obj):
    p = tmp_path / "labels.json"
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


@pytest.mark.parametrize("content,message", [
    (None, "label file not found"),
    ("{not json", "not a readable JSON label file"),
    ({"labels": {"a+b+c": 1.0}, "tr_keys": ["a+b+c"]}, "missing ['tt_keys']"),
    ({"labels": {"a+b": 1.0}, "tr_keys": [], "tt_keys": []}, "keys must be dataset+scene+method"),
    ({"labels": {"a+b+c": "x"}, "tr_keys": [], "tt_keys": []}, "values numbers"),
    ({"labels": {"a+b+c": 1.0}, "tr_keys": ["a+b+d"], "tt_keys": []}, "split keys without a label"),
    ({"labels": {"a+b+c": 1.0}, "tr_keys": ["a+b+c"], "tt_keys": ["a+b+c"]}, "in both tr_keys and tt_keys"),
])  # fmt: skip
def test_label_file_errors(tmp_path, content, message):
    path = tmp_path / "absent.json" if content is None else _write(tmp_path, content)
    with pytest.raises(InputError, match=None) as e:
        bm.load_labels(path)
    assert str(e.value).startswith(str(path)) and message in str(e.value) and "\n" not in str(e.value)


def test_feature_key_errors():
    feats, lab = _tiny_feats()
    with pytest.raises(InputError, match=r"f.npz: 1 key\(s\) are not benchmark keys, e.g. \['Giraffe\+NeRF'\]"):
        bm.match_features({**feats, "Giraffe+NeRF": feats["da+s1+m0"]}, lab, "f.npz", allow_missing=True)
    part = {k: v for k, v in feats.items() if k != "db+s2+m3"}
    with pytest.raises(InputError, match=r"1 of 16 labelled sequences missing, e.g. \['db\+s2\+m3'\].*--allow-missing"):
        bm.match_features(part, lab, "f.npz", allow_missing=False)
    assert bm.match_features(part, lab, "f.npz", allow_missing=True) == ["db+s2+m3"]
    res = bm.evaluate_split(part, lab.labels, lab.train, lab.test)  # the scene left with 1 test method: NaN
    s22 = next(s for s in res.scenes if (s["dataset"], s["scene"]) == ("db", "s2"))
    assert s22["n_test"] == 1 and math.isnan(s22["srcc"])
    db = next(r for r in res.datasets if r["dataset"] == "db")
    assert db["n_undefined"] == 1 and db["srcc"] == next(s["srcc"] for s in res.scenes if s["scene"] == "s1"
                                                          and s["dataset"] == "db")


def test_feature_file_errors(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a readable .npz"):
        bm.load_feature_file(bad)
    ragged = tmp_path / "ragged.npz"
    np.savez(ragged, **{"a+b+c": np.zeros(3), "a+b+d": np.zeros(4)})
    with pytest.raises(InputError, match="one finite 1-d feature vector of one length"):
        bm.load_feature_file(ragged)
    with pytest.raises(InputError, match="features file not found"):
        bm.load_feature_file(tmp_path / "none.npz")
