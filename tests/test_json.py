"""Strict JSON everywhere: every results file is valid JSON (no ``NaN``/``Infinity`` tokens); non-finite numbers are
written as "inf", "-inf", "nan" and read back as floats by the one reader, so a cached value round-trips."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from models import journal, results
from models.training.run_folder import MetricsLog

VALUES = {"psnr": math.inf, "low": -math.inf, "srcc": math.nan, "ok": 1.5, "n": 3, "name": "garden",
          "per_frame": [30.0, math.inf, np.float64(math.nan)], "nested": {"x": [{"y": -math.inf}]}}  # fmt: skip


def strict(text: str):
    """json.loads that refuses the non-standard tokens Python's json writes and reads by default."""
    def refuse(token: str):
        raise AssertionError(f"not strict JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def same(a, b) -> bool:
    """Equality with NaN equal to NaN."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_every_writer_writes_strict_json_that_reads_back_as_it_was(tmp_path):
    results.write_json(tmp_path / "w.json", VALUES)
    results.atomic_write_json(tmp_path / "a.json", VALUES)
    with journal.unit(tmp_path / "u") as u:
        u.write_json(tmp_path / "u" / "j.json", VALUES)
    for path in (tmp_path / "w.json", tmp_path / "a.json", tmp_path / "u" / "j.json"):
        raw = strict(path.read_text())
        assert raw["psnr"] == "inf" and raw["low"] == "-inf" and raw["srcc"] == "nan"
        assert raw["per_frame"] == [30.0, "inf", "nan"] and raw["nested"] == {"x": [{"y": "-inf"}]}
        back = results.read_json(path)
        assert same(back, VALUES), back
        assert isinstance(back["psnr"], float) and back["psnr"] > 0 and math.isnan(back["srcc"])


def test_json_text_fails_loudly_on_a_non_finite_value_it_cannot_spell():
    """A value that becomes a float only inside json.dumps (through ``default``) is not seen by the rule: it must
    fail rather than write NaN."""
    with pytest.raises(ValueError, match="not JSON compliant"):
        results.json_text({"x": np.float32("nan")}, default=float)
    assert results.json_text({"x": np.float32(2.0)}, default=float, indent=None) == '{"x": 2.0}'


def test_the_training_log_writes_strict_json_lines_and_resumes_with_floats(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    log.add({"step": 1, "loss": 0.5, "head_loss": {"strred": math.nan}})
    log.add({"step": 2, "loss": math.inf}, flush=True)
    lines = [strict(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["head_loss"]["strred"] == "nan" and lines[1]["loss"] == "inf"
    resumed = MetricsLog(tmp_path / "metrics.jsonl", resume_step=2)
    assert math.isnan(resumed.rows[0]["head_loss"]["strred"]) and resumed.rows[1]["loss"] == math.inf
