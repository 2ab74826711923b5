"""train.py through submitit (the one-node SLURM of tests/cluster/conftest.py): a 2-process gloo DDP job that gets
SLURM's preemption/timeout signal mid-run saves, requeues itself and ends with the weights of an uninterrupted run,
bit for bit."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import torch

from models import cluster
from models.cluster import SlurmOptions
from models.training.cluster import TrainCluster, TrainJob
from tests.training.test_training import _flat, _state, make_renders, tiny

pytestmark = pytest.mark.slow


def _steps(run: Path) -> int:
    try:
        return sum(json.loads(x)["kind"] == "step" for x in (run / "metrics.jsonl").read_text().splitlines())
    except (OSError, ValueError):
        return 0


def _tasks(pid: int) -> list[int]:
    """The submitit task processes (python -m submitit.core._submit) below ``pid``, from /proc."""
    parent = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    below, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p and c not in below]
        below.update(kids)
        todo += kids
    out = []
    for c in below:
        try:
            if b"submitit.core._submit" in Path(f"/proc/{c}/cmdline").read_bytes():
                out.append(c)
        except OSError:
            continue
    return out


def _weights(run: Path) -> tuple[dict[str, torch.Tensor], dict]:
    return _state(run), torch.load(run / "latest" / "train_state.pth", map_location="cpu", weights_only=True)


def test_signalled_job_saves_requeues_and_matches_the_uninterrupted_run(tmp_path, executor_kind):
    renders = make_renders(tmp_path / "renders", {"sceneA": 2, "sceneB": 3})
    # 2 DDP processes x 2 pairs, 4 epochs of 2 steps; saves only at epoch ends (and where the signal stops it)
    cfg = tiny(tmp_path / "runs", renders, epochs=4, batch_size=4, scene_repeats=4, threads=1)
    opts = TrainCluster(executor=executor_kind, tasks_per_node=2)
    res = cluster.Resources("train-test", 10, tasks_per_node=2)

    def submit(name: str):
        c = tiny(tmp_path / "runs", renders, epochs=4, batch_size=4, scene_repeats=4, threads=1, name=name)
        folder = tmp_path / f"jobs-{name}"
        return cluster.submit(executor_kind, folder, SlurmOptions(), res, TrainJob(), [c], [str(tmp_path / "runs" /
                              name)], [False])[0]  # fmt: skip

    assert opts.tasks_per_node == 2 and cfg.batch_size == 4
    ref = submit("ref")
    cluster.wait([ref], "reference training", progress=False)
    cut = submit("cut")
    run = tmp_path / "runs" / "cut"
    for _ in range(1200):  # signal after the first step, well before the end (8 steps)
        if _steps(run) >= 1 or (run / "latest").exists():
            break
        time.sleep(0.05)
    if executor_kind == "slurm":
        import subprocess

        subprocess.run(["scancel", "--signal=USR2", cut.job_id], check=True)
        for _ in range(600):  # SLURM makes a requeued job wait 2 min (BeginTime): let it start now
            if "BeginTime" in subprocess.run(["squeue", "-h", "-j", cut.job_id, "-o", "%r"], capture_output=True,
                                             text=True).stdout:  # fmt: skip
                subprocess.run(["scontrol", "update", f"JobId={cut.job_id}", "StartTime=now"], check=True)
                break
            if cut.paths.result_pickle.exists() or (tmp_path / "jobs-cut" / cut.job_id / f"{cut.job_id}_0_result.pkl"
                                                     ).exists():  # fmt: skip
                break
            time.sleep(0.1)
    else:  # submitit's local executor: the same USR2 to the tasks (children of its controller process)
        for pid in _tasks(int(cut.job_id)):
            os.kill(pid, signal.SIGUSR2)
    out = cluster.wait([cut], "signalled training", progress=False)[0]
    assert out == str(run)
    log = Path(cut.paths.stdout).read_text() if Path(cut.paths.stdout).exists() else ""
    logs = "".join(p.read_text() for p in (tmp_path / "jobs-cut").rglob("*log*"))
    assert "caught SIGUSR2" in logs and "requeueing job" in logs, log
    assert logs.count("global_rank=0(2))") == 2, logs  # rank 0 started twice: the signalled attempt, the requeued
    (ea, sa), (eb, sb) = _weights(tmp_path / "runs" / "ref"), _weights(run)
    assert ea.keys() == eb.keys() and all(torch.equal(ea[k], eb[k]) for k in ea)
    assert all(torch.equal(sa["projector"][k], sb["projector"][k]) for k in sa["projector"])
    assert all(torch.equal(x, y) for x, y in zip(_flat(sa["optimizer"]), _flat(sb["optimizer"]), strict=True))
    assert (sa["epoch"], sa["step"]) == (sb["epoch"], sb["step"]) == (4, 8)


def test_train_cluster_flags_are_not_training_config(capsys):
    import train as train_script

    flags = ["--preset", "cpu-smoke", "--epochs", "3"]
    where = ["--executor", "slurm", "--nodes", "2", "--gpus-per-node", "4", "--partition", "gpu",
             "--sbatch", "mem=200G"]
    cfg, resume, _, opts = train_script.parse_job([*flags, *where])
    assert cfg == train_script.parse_args(flags)[0] and resume is None  # the same training config
    assert (opts.executor, opts.nodes, opts.gpus_per_node, opts.slurm.partition) == ("slurm", 2, 4, "gpu")
    res = cluster.Resources("train-x", 1440, opts.gpus_per_node, opts.nodes, opts.gpus_per_node)
    assert cluster.sbatch_settings(opts.slurm, res) == [
        "--gpus-per-node=4", "--job-name=train-x", "--mem=200G", "--nodes=2", "--ntasks-per-node=4",
        "--partition=gpu", "--signal=USR2@120", "--time=1440", "--wckey=submitit"]
    with pytest.raises(SystemExit) as e:
        train_script.parse_job([*flags, "--executor", "nope"])
    assert e.value.code == 2 and "--executor" in capsys.readouterr().err
