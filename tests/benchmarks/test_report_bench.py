"""make bench-report's stage timing (benchmarks/report_bench.py): a wrapped function is timed wherever the report's
modules hold it, a call inside another of its stage counts once, everything is restored; the verdict's arithmetic."""

import sys
import time

import report  # noqa: F401 - loads every module of the report
from benchmarks import report_bench
from models.report import summary


def test_wrapped_functions_are_timed_under_every_name_once_and_restored(monkeypatch):
    monkeypatch.setattr(report_bench, "WRAPPED", {"statistics": ["models.report.summary:scene_summary"]})
    real = summary.scene_summary
    holders = [m for n, m in sys.modules.items() if n.startswith("models.report.") and n != summary.__name__
               and getattr(m, "scene_summary", None) is real]  # imported by name: the wrapper must reach it there
    assert holders
    watch = report_bench.Stopwatch()
    with watch.installed():
        assert summary.scene_summary is not real
        assert all(m.scene_summary is summary.scene_summary for m in holders)
    assert summary.scene_summary is real and all(m.scene_summary is real for m in holders)

    def outer():
        time.sleep(0.02)
        return inner() + 1

    def inner():
        time.sleep(0.03)
        return 1

    inner = watch.wrap(inner, "x")
    outer = watch.wrap(outer, "x")
    assert outer() == 2 and 0.05 <= watch.seconds["x"] < 0.09  # once, not 0.05 + 0.03


def test_verdict_is_the_report_per_frame_against_the_mean_sum_of_the_parts():
    runs = {"bench": {"seconds": 21.0, "frames": 20}}
    alone = {"before": {"a": 0.5, "b": 0.5}, "after": {"a": 0.5, "b": 0.3}}
    v = report_bench.verdict(runs, alone)
    assert v["parts_sum_s"] == 0.9 and v["report_s"] == 1.05 and v["met"] is False
    assert report_bench.verdict({"bench": {"seconds": 18.0, "frames": 20}}, alone)["met"] is True
