"""A small resumable job runner: commands as data, one log per job, a done-marker per finished job.

A :class:`Job` is a list of :class:`Step` s (an external command as an argument list, never a shell string, or an
in-process action) plus three hooks supplied by the planner: ``done()`` reads the job's marker (``None`` unless
the job finished and its outputs are intact), ``clean`` lists what an earlier, unfinished attempt may have left
(removed before the job runs again), and ``finish(record)`` verifies the outputs, writes the marker and
publishes them. The runner guarantees: finished jobs are skipped (unless ``force``); an unfinished job is cleaned
and redone from scratch; each attempt logs to its own file (the previous attempt's log is kept as ``.log.1``);
one failing job does not stop the others; Ctrl-C / SIGTERM stops the child, marks the job interrupted and ends
the run with the summary of what was done.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.errors import InputError

log = logging.getLogger(__name__)

# Statuses of a job in a run's summary.
DONE, ALREADY, SKIPPED, FAILED, INTERRUPTED, NOT_RUN = "done", "already done", "skipped", "failed", "interrupted", \
    "not run"  # fmt: skip
KILL_GRACE_S = 10.0  # after SIGTERM, how long a child gets to exit before SIGKILL


class JobError(Exception):
    """A job's step failed or its outputs are incomplete; the message is one line for the summary."""


@dataclass(frozen=True)
class Step:
    """One step of a job: an external command (``argv``) or an in-process ``action`` described by ``what``."""

    name: str
    argv: tuple[str, ...] = ()
    action: Callable[[], None] | None = None
    what: str = ""  # what the action does, for the plan and the marker

    def show(self) -> str:
        """The step as the plan prints it: a copy-pasteable command line, or ``(what the action does)``."""
        return shlex.join(self.argv) if self.argv else f"({self.what})"


@dataclass
class Job:
    """A unit of work that is either finished (``done()`` returns its marker) or redone from scratch."""

    name: str
    steps: tuple[Step, ...]
    log: Path
    done: Callable[[], dict[str, Any] | None]
    finish: Callable[[dict[str, Any]], dict[str, Any]]  # verify + write marker + publish; returns the marker
    clean: tuple[Path, ...] = ()
    skip: str | None = None  # reason this job is not run at all (shown in plan and summary)
    info: dict[str, Any] = field(default_factory=dict)  # planner facts copied into the marker and the summary


@dataclass
class JobResult:
    """What happened to one job in this run (one row of the summary table)."""

    job: str
    status: str
    durations: dict[str, float] = field(default_factory=dict)
    frames: int | None = None
    note: str = ""

    def row(self) -> dict[str, Any]:
        total = sum(self.durations.values())
        return {"job": self.job, "status": self.status, "frames": self.frames,
                **{f"{k} s": round(v, 1) for k, v in self.durations.items()},
                "total s": round(total, 1) if self.durations else None, "note": self.note}  # fmt: skip


def remove(path: Path) -> bool:
    """Remove a file, symlink or folder tree; returns whether something was there."""
    if path.is_symlink() or path.is_file():
        path.unlink()
        return True
    if path.is_dir():
        shutil.rmtree(path)
        return True
    return False


def now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _run_command(argv: Sequence[str], logf: Any, env: Mapping[str, str] | None = None) -> int:
    """Run one command with its output appended to ``logf``; on Ctrl-C/SIGTERM stop it before re-raising."""
    logf.flush()
    proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, env=env)
    try:
        return proc.wait()
    except BaseException:  # KeyboardInterrupt (or SIGTERM turned into one): never leave an orphan training run
        proc.terminate()
        try:
            proc.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise


def run_job(job: Job, context: dict[str, Any], env: Mapping[str, str] | None = None) -> JobResult:
    """Clean what an earlier attempt left, run the steps (logging each), then ``job.finish``; never raises
    ``JobError`` (it becomes a failed result). ``context`` (tool versions, ...) goes into the marker; ``env`` is
    the commands' environment (default: ours)."""
    stale = [p for p in job.clean if remove(p)]
    job.log.parent.mkdir(parents=True, exist_ok=True)
    if job.log.exists():
        os.replace(job.log, job.log.with_name(job.log.name + ".1"))
    result = JobResult(job.name, FAILED)
    record: dict[str, Any] = {"job": job.name, **job.info, **context, "started": now(),
                              "commands": [s.show() for s in job.steps]}  # fmt: skip
    with open(job.log, "w", buffering=1) as logf:
        logf.write(f"# job {job.name} started {record['started']}\n")
        for p in stale:
            logf.write(f"# removed what an unfinished earlier attempt left: {p}\n")
        try:
            for step in job.steps:
                logf.write(f"\n# step {step.name}: {step.show()}\n")
                t0 = time.monotonic()
                if step.argv:
                    rc = _run_command(step.argv, logf, env)
                    if rc != 0:
                        raise JobError(f"{step.name} failed (exit code {rc}); see {job.log}")
                else:
                    assert step.action is not None
                    step.action()
                result.durations[step.name] = time.monotonic() - t0
                logf.write(f"# step {step.name} finished in {result.durations[step.name]:.1f} s\n")
            record.update(durations={k: round(v, 3) for k, v in result.durations.items()}, finished=now())
            marker = job.finish(record)
        except JobError as e:
            logf.write(f"# FAILED: {e}\n")
            result.note = str(e)
            return result
        except KeyboardInterrupt:
            logf.write("# INTERRUPTED: the job will be cleaned and redone by the next run\n")
            result.status, result.note = INTERRUPTED, "interrupted; redone by the next run"
            raise _Interrupted(result) from None
        except Exception as e:  # noqa: BLE001 - an in-process step's bug must not stop the other jobs
            logf.write(f"# FAILED: {type(e).__name__}: {e}\n")
            result.note = f"{type(e).__name__}: {e}; see {job.log}"
            return result
        logf.write(f"# job {job.name} done {record['finished']}\n")
    result.status, result.frames = DONE, marker.get("frames")
    return result


class _Interrupted(Exception):
    def __init__(self, result: JobResult) -> None:
        super().__init__(result.job)
        self.result = result


def run_jobs(jobs: Sequence[Job], context: dict[str, Any], force: bool = False, progress: bool = True,
             env: Mapping[str, str] | None = None) -> tuple[list[JobResult], bool]:
    """Run ``jobs`` in order (a tqdm bar over jobs; each job's own output goes to its log).
    Returns (one result per job, whether the run was interrupted)."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    results: list[JobResult] = []
    interrupted = False
    with logging_redirect_tqdm(), tqdm(jobs, unit="job", disable=not progress, dynamic_ncols=True) as bar:
        for job in bar:
            bar.set_postfix_str(job.name)
            if interrupted:
                results.append(JobResult(job.name, NOT_RUN))
                continue
            if job.skip:
                res = JobResult(job.name, SKIPPED, note=job.skip)
            elif not force and (marker := job.done()) is not None:
                res = JobResult(job.name, ALREADY, {k: float(v) for k, v in marker.get("durations", {}).items()},
                                marker.get("frames"), "finished earlier")
            else:
                log.info("%s: running (log: %s)", job.name, job.log)
                try:
                    res = run_job(job, context, env)
                except _Interrupted as e:
                    res, interrupted = e.result, True
                if res.status == FAILED:
                    log.error("%s: %s", job.name, res.note)
                else:
                    log.info("%s: %s in %.1f s", job.name, res.status, sum(res.durations.values()))
            results.append(res)
    return results, interrupted


@contextmanager
def exclusive(folder: Path, what: str, shared: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (a ``.lock`` file in it): two runs never work on the same jobs.
    ``shared``: the lock of one cluster task (tasks share it; each job has its own lock too), which a local run's
    exclusive lock excludes."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as f:
        try:
            fcntl.flock(f, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"{folder}: another {what} is running on this folder; wait for it or use "
                             "another folder") from None
        yield
