"""preprocess.py --executor slurm against the one-node SLURM (tests/cluster/conftest.py), with the fake nerfstudio
executables of tests/preprocess: the array tasks, a task killed with scancel (its job shows as failed with its
log), the resubmission that redoes only that job, --status, and the dry run's sbatch settings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from models import cluster
from models.cluster import SlurmOptions, slurm_state
from models.preprocess import cluster as pc
from models.preprocess.commands import read_marker
from models.preprocess.run import run
from tests.preprocess.test_preprocess import _layout, ns  # noqa: F401 - ns is the fixture of the fake nerfstudio

pytestmark = pytest.mark.slow


def _cancel(kind: str, task_id: str, pid: int) -> None:
    """What a user's scancel does to a running array task; without SLURM, the task's ns-render gets its SIGTERM."""
    if kind == "slurm":
        subprocess.run(["scancel", task_id], check=True)
        for _ in range(60):
            if slurm_state(task_id) not in ("RUNNING", "COMPLETING", "PENDING"):
                return
            time.sleep(1)
        raise AssertionError(f"{task_id} still {slurm_state(task_id)} a minute after scancel")
    os.kill(pid, signal.SIGTERM)


def _wait_for(path: Path, seconds: float = 120) -> None:
    for _ in range(int(seconds * 4)):
        if path.exists() and path.read_text():
            return
        time.sleep(0.25)
    raise AssertionError(f"{path} never appeared")


def test_array_tasks_scancel_status_and_resubmit(ns, executor_kind, monkeypatch, capsys):  # noqa: F811
    cfg = ns.cfg
    cfg.executor, cfg.gpus_per_job = "slurm", 0  # the test SLURM has no GPUs
    cfg.slurm = SlurmOptions(cluster_dir=str(ns.tmp / "submitit"))
    if executor_kind == "local":  # the same array tasks, one local process each (submitit's local executor)
        monkeypatch.setattr(cluster, "submit", _local_submit(cluster.submit))
    flag = ns.tmp / "hanging"
    monkeypatch.setenv("FAKE_NS_HANG_AT", "2")
    monkeypatch.setenv("FAKE_NS_HANG_JOB", "poster__kplanes-20")
    monkeypatch.setenv("FAKE_NS_HANG_FLAG", str(flag))

    assert run(cfg) == 0  # submits and returns
    out = capsys.readouterr().out
    # longest first: kplanes-20 (30 GPU min -> 2 x 30 + 15 = 75 min) before splatfacto (5 -> 25 min)
    assert out.index("submitted preprocess-kplanes-20") < out.index("submitted preprocess-splatfacto")
    assert "--time 75 min" in out and "--time 25 min" in out
    ids = json.loads((ns.tmp / "submitit" / "submitted.json").read_text())
    assert set(ids) == {"poster__splatfacto", "poster__kplanes-20"}
    if executor_kind == "slurm":  # what --dry-run prints is what submitit wrote into the submission files
        for job, method in (("poster__splatfacto", "splatfacto"), ("poster__kplanes-20", "kplanes-20")):
            array = ids[job].split("_")[0]
            sub = (ns.tmp / "submitit" / array / f"{array}_submission.sh").read_text()
            written = sorted(ln[len("#SBATCH "):] for ln in sub.splitlines() if ln.startswith("#SBATCH "))
            expected = cluster.sbatch_settings(cfg.slurm, pc.resources(method, [job_of(ns, job)], 0))
            assert [w for w in written if not w.startswith(("--output", "--error", "--open-mode"))] == expected

    _wait_for(flag)  # kplanes-20 hangs half-way through ns-render
    _cancel(executor_kind, ids["poster__kplanes-20"], int(flag.read_text()))
    lay = _layout(ns)
    for _ in range(240):
        if read_marker(lay, "poster__splatfacto") is not None:
            break
        time.sleep(0.5)
    cfg.status = True
    assert run(cfg) == 1  # not everything is done
    status = capsys.readouterr().out
    rows = {line.split()[0]: line for line in status.splitlines() if line.startswith("poster__")}
    assert rows["poster__splatfacto"].split()[1] == "done", status
    assert rows["poster__kplanes-20"].split()[1] == "failed" and str(lay.log("poster__kplanes-20")) in rows[
        "poster__kplanes-20"], status
    assert "render failed" in rows["poster__kplanes-20"], status
    assert (lay.staging("poster__kplanes-20")).exists()  # what the killed attempt left, cleaned by the next one

    # resubmit: only the unfinished job is submitted; it is cleaned and redone, the finished one is not touched
    monkeypatch.delenv("FAKE_NS_HANG_AT")
    cfg.status, cfg.wait = False, True
    splat_marker = read_marker(lay, "poster__splatfacto")
    assert run(cfg) == 0
    out = capsys.readouterr().out
    assert "submitted preprocess-kplanes-20" in out and "submitted preprocess-splatfacto" not in out
    for job in ("poster__splatfacto", "poster__kplanes-20"):
        marker = read_marker(lay, job)
        assert marker is not None and marker["frames"] == 4 and lay.video(job).is_file()
    assert read_marker(lay, "poster__splatfacto") == splat_marker
    assert not lay.staging("poster__kplanes-20").exists()
    log = lay.log("poster__kplanes-20").read_text()
    assert "removed what an unfinished earlier attempt left" in log and "# job poster__kplanes-20 done" in log
    assert "# FAILED: render failed" in lay.log("poster__kplanes-20").with_suffix(".log.1").read_text()
    trains = [c for c in ns.calls() if c[0] == "ns-train"]
    assert sorted(c[c.index("--method-name") + 1] for c in trains) == ["kplanes-20", "kplanes-20", "splatfacto"]

    cfg.status = True
    assert run(cfg) == 0
    assert "2 done" in capsys.readouterr().out


def job_of(ns, name):  # noqa: F811
    from models.preprocess.commands import plan, probe

    lay = _layout(ns)
    return next(j for j in plan(["poster"], ["splatfacto", "kplanes-20"], lay, probe(ns.bin), "cuda") if j.name == name)


def _local_submit(real):
    def submit(kind, *args, **kw):
        return real("local", *args, **kw)

    return submit


def test_dry_run_prints_every_array_tasks_sbatch_settings(ns, capsys):  # noqa: F811
    cfg = ns.cfg
    cfg.executor, cfg.dry_run = "slurm", True
    cfg.slurm = SlurmOptions(partition="gpu", account="lab", qos="high", constraint="a100", max_parallel=1,
                             sbatch=["mem=32G", "exclusive"])
    cfg.scenes += ["aspen"]  # an array of 2 per method (no capture: the dry run lists the problem, runs nothing)
    assert run(cfg) == 0
    out = capsys.readouterr().out
    lines = [ln.strip() for ln in out.splitlines() if ": array preprocess-" in ln]
    common = ("--account=lab --array=0-1%1 --constraint=a100 --exclusive --gpus-per-node=1 --job-name=preprocess-{} "
              "--mem=32G --nodes=1 --ntasks-per-node=1 --partition=gpu --qos=high --signal=USR2@120 --time={} "
              "--wckey=submitit")
    assert lines == [
        f"{scene}__{method}: array preprocess-{method}[{i}]  sbatch " + common.format(method, minutes)
        for method, minutes in (("kplanes-20", 75), ("splatfacto", 25)) for i, scene in enumerate(["poster", "aspen"])
    ]
    assert ns.calls() == []  # nothing ran, nothing submitted
