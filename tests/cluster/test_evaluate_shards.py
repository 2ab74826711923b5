"""evaluate.py --shard I/N fills the bank feature cache; --executor (the one-node SLURM of tests/cluster/conftest.py)
runs the shard jobs, then the benchmark reads every feature from the cache: the same tables as a run without."""

from __future__ import annotations

import json

import numpy as np
import pytest

import consts
from models.nvs_sqa.shard import shard_of
from tests.evaluation.test_evaluate_script import KEYS, _keep_threads, run, world  # noqa: F401 - fixtures


@pytest.mark.slow
def test_shards_fill_the_cache_that_the_benchmark_reads(world, run, executor_kind, tmp_path):  # noqa: F811
    rc, plain, _ = run("--checkpoint", world["ckpt"], "--no-cache", name="plain")
    assert rc == 0
    rc, out, _ = run("--checkpoint", world["ckpt"], "--executor", executor_kind, "--shards", "2",
                     "--cluster-dir", tmp_path / "jobs", name="sharded")
    assert rc == 0
    res, ref = (json.loads((d / "results.json").read_text()) for d in (out, plain))
    assert res["computed"] == 0  # every feature came from the cache the two shard jobs filled
    a, b = dict(np.load(plain / "features.npz")), dict(np.load(out / "features.npz"))
    assert a.keys() == b.keys() and max(np.abs(a[k] - b[k]).max() for k in a) <= 1e-6
    assert [r["scene"] for r in res["scenes"]] == [r["scene"] for r in ref["scenes"]]
    for ra, rb in zip(res["scenes"], ref["scenes"], strict=True):
        assert ra == pytest.approx(rb, abs=1e-6, nan_ok=True)
    logs = sorted((tmp_path / "jobs").rglob("*_log.out"))
    assert len(logs) == 2 and all("features of " in p.read_text() or "shard" in p.read_text() for p in logs)


def test_each_shard_fills_its_part_of_the_cache(world, run, monkeypatch, tmp_path):  # noqa: F811
    monkeypatch.setattr(consts, "CACHE_DIR", tmp_path / "cache")
    n0 = sum(shard_of(k, 2) == 0 for k in KEYS)
    assert 0 < n0 < len(KEYS)
    rc, out, _ = run("--checkpoint", world["ckpt"], "--shard", "0/2", name="s0")
    assert rc == 0 and not out.exists()  # no run folder: the cache only
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == n0
    assert run("--checkpoint", world["ckpt"], "--shard", "1/2", name="s1")[0] == 0
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == len(KEYS)
    rc, out, _ = run("--checkpoint", world["ckpt"], name="all")
    assert rc == 0 and json.loads((out / "results.json").read_text())["computed"] == 0
