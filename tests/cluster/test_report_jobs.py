"""report.py with one job per method (the one-node SLURM of tests/cluster/conftest.py, else submitit's local
executor): the jobs fill the cache, the page made here equals the one made without jobs."""

from __future__ import annotations

import pytest

from report import main
from tests.report.test_report import METRICS, noisy
from tests.sequences import make_smooth, rows_of


@pytest.mark.slow
def test_jobs_fill_the_cache_and_give_the_same_report(executor_kind, tmp_path):
    gt = make_smooth(tmp_path / "gt", n=6, size=(40, 48))
    s = tmp_path / "scene"
    for name, sigma in (("a", 2.0), ("b", 12.0)):
        noisy(gt, s / name, sigma, seed=int(sigma))
    here, jobs = tmp_path / "here", tmp_path / "jobs"
    assert main([str(s), "--gt", str(gt), "--out", str(here), *METRICS, "--quiet"]) == 0
    assert main([str(s), "--gt", str(gt), "--out", str(jobs), *METRICS, "--quiet", "--executor", executor_kind,
                 "--cluster-dir", str(tmp_path / "submitit")]) == 0
    assert len(list((jobs / "cache").glob("fullref-*.json"))) == 2
    assert len(list((tmp_path / "submitit").rglob("*_result.pkl"))) == 2  # one job per method, each finished
    assert rows_of(here / "report.csv") == rows_of(jobs / "report.csv")
