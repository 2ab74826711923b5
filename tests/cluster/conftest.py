"""The executor the cluster tests submit to: the one-node SLURM that ``.ci/slurm-up`` starts (``make test`` runs it
before pytest; the fixture runs it once more, it reuses a running SLURM), else submitit's local executor.

``CLUSTER_TESTS=local`` asks for the fallback (to check it where SLURM runs). The fallback is said in the test
output (a line in the terminal report and a warning in the summary); under CI
(env ``CI`` set) there is no fallback: the tests fail when SLURM does not take jobs.
"""

from __future__ import annotations

import os
import subprocess
import warnings
from pathlib import Path

import pytest

from models.cluster import slurm_ready

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def executor_kind(request) -> str:
    """``"slurm"`` when the one-node SLURM takes jobs, else ``"local"`` (never under CI)."""
    why = slurm_ready() if os.environ.get("CLUSTER_TESTS") != "local" else "CLUSTER_TESTS=local asks for the fallback"
    if why is not None and os.environ.get("CLUSTER_TESTS") != "local":
        subprocess.run([str(ROOT / ".ci" / "slurm-up")], capture_output=True, timeout=300)
        why = slurm_ready()
    if why is None:
        return "slurm"
    msg = f"cluster tests: SLURM is not available ({why}); using submitit's LOCAL executor instead"
    if os.environ.get("CI"):
        pytest.fail(msg + " — not allowed under CI (.ci/slurm-up must start the one-node SLURM)")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"\n{msg}", yellow=True)
    warnings.warn(msg, stacklevel=1)
    return "local"
