"""Shared test fixtures, and the rule that puts the ``parity`` and ``slow`` markers on tests.

Tests that need ../shared skip without it on a user's machine, but fail under CI.

Markers are given here, by :func:`pytest_collection_modifyitems`, not by hand in each file:

* ``parity``: the test uses the fixture ``released_dir``, ``released_model`` or ``shared_dir``, directly or
  through another fixture (``item.fixturenames`` is the closure of everything it requests).
* ``slow``: the test runs something in another process. Its module's source must mention ``subprocess`` or
  ``spawn``, and the test function, a fixture it uses that is defined in the same module, or a function of
  that module they call (followed transitively through the names their code loads) must call
  ``subprocess.<anything>(`` or ``<something>.spawn(`` (``torch.multiprocessing.spawn``, ``mp.spawn``).

``make test-fast`` deselects both: ``pytest -m "not parity and not slow"``.

``--cpu-durations=FILE``: each test's CPU seconds (user + system: this process and the subprocesses it waited for,
not SLURM's jobs; setup, call and teardown together, so a session fixture counts where it is first built), its main
thread's, its wall seconds and the seconds this process's threads waited for a CPU, one JSON line per test
(docs/development.md, "Test time").
"""

from __future__ import annotations

import inspect
import json
import os
import re
import resource
import sys
import time
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may come from a hub during tests
# Idle OpenMP threads sleep instead of spinning (as app.py does), here and in the scripts the tests start: set before
# torch loads. On a shared 2-core machine a spinning thread burns the CPU its sibling waits for: the training tests
# took 3-5x the CPU and wall with the default policy at load ~8 (docs/development.md, "Test time").
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(ROOT))

from consts import CHECKPOINTS_DIR, RELEASED, SHARED_DIR  # noqa: E402

PARITY_FIXTURES = frozenset({"released_dir", "released_model", "shared_dir", "fullref_weights"})
_MODULE_HINT = re.compile(r"\bsubprocess\b|\bspawn\b")
_RUNS_A_PROCESS = re.compile(r"\bsubprocess\.\w+\(|\.spawn\(")


def _source(fn) -> str:
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        return ""


def _loaded_names(code: types.CodeType) -> set[str]:
    """Every global/attribute name the code (and the functions, lambdas, comprehensions inside it) loads."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _loaded_names(const)
    return names


def runs_a_process(fns, module: types.ModuleType) -> bool:
    """Whether any of ``fns``, or a function of ``module`` they call (transitively), starts a process."""
    if not _MODULE_HINT.search(_source(module)):
        return False
    todo, seen = list(fns), set()
    while todo:
        fn = inspect.unwrap(todo.pop())
        code = getattr(fn, "__code__", None)
        if code is None or code in seen:
            continue
        seen.add(code)
        if _RUNS_A_PROCESS.search(_source(fn)):
            return True
        for name in _loaded_names(code):
            other = getattr(module, name, None)
            if inspect.isfunction(other) and other.__module__ == module.__name__:
                todo.append(other)
    return False


def _module_fixture_funcs(item: pytest.Function) -> list:
    """The functions of the fixtures the test uses that its own module defines."""
    info = getattr(item, "_fixtureinfo", None)
    funcs = []
    for defs in (info.name2fixturedefs.values() if info else ()):
        for fixturedef in defs:
            func = getattr(fixturedef, "func", None)
            if func is not None and getattr(func, "__module__", None) == item.module.__name__:
                funcs.append(func)
    return funcs


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        if PARITY_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.parity)
        if item.get_closest_marker("slow") is None and item.module is not None \
                and runs_a_process([item.function, *_module_fixture_funcs(item)], item.module):  # fmt: skip
            item.add_marker(pytest.mark.slow)


def pytest_addoption(parser) -> None:
    parser.addoption("--cpu-durations", metavar="FILE", default="",
                     help="append one JSON line per test to FILE: its CPU seconds (this process + the subprocesses it "
                     "waited for), its main thread's, wall seconds, and the seconds this process waited for a CPU")


def _counters() -> dict[str, float]:
    """Seconds: wall clock; CPU of this process and of its reaped children (getrusage); CPU and run-queue wait of
    its main thread and run-queue wait of all its threads (Linux /proc schedstat)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    c = {"wall": time.perf_counter(), "cpu_self": own.ru_utime + own.ru_stime,
         "cpu_children": kids.ru_utime + kids.ru_stime, "cpu_main": 0.0, "queue_wait": 0.0, "queue_wait_main": 0.0}
    for task in Path("/proc/self/task").glob("*/schedstat"):
        try:
            run_ns, wait_ns = map(int, task.read_text().split()[:2])
        except (OSError, ValueError):
            continue
        c["queue_wait"] += wait_ns / 1e9
        if task.parent.name == str(os.getpid()):
            c["cpu_main"], c["queue_wait_main"] = run_ns / 1e9, wait_ns / 1e9
    return c


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    out = item.config.getoption("cpu_durations", "")
    if not out:
        yield
        return
    before = _counters()
    yield
    d = {k: round(v - before[k], 3) for k, v in _counters().items()}
    with open(out, "a") as f:
        f.write(json.dumps({"test": item.nodeid, "cpu": round(d["cpu_self"] + d["cpu_children"], 3), **d}) + "\n")


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        msg = f"{path} missing ({what})"
        if os.environ.get("CI"):
            pytest.fail(msg + " — required under CI")
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the repo (specs, examples, reference values, benchmark labels)."""
    return _need(SHARED_DIR, "../shared beside the repo")


@pytest.fixture(scope="session")
def released_dir() -> Path:
    """checkpoints/v0.0.1, made by `make setup`."""
    return _need(RELEASED.dir / "model.pth", "run `make setup`").parent


@pytest.fixture(scope="session")
def released_model(released_dir):
    """The released scorer on the CPU, loaded once per session."""
    from models.nvs_sqa import NVSSQA

    return NVSSQA.from_checkpoint(None, device="cpu")


@pytest.fixture(scope="session")
def checkpoints_dir() -> Path:
    return CHECKPOINTS_DIR


@pytest.fixture
def tmpfs(tmp_path):
    """``tmpfs(size)``: a real file system of ``size`` ("64k", "1m") mounted in tmp, for full-disk tests (root only;
    under CI it must work); unmounted after the test."""
    import subprocess

    mounted = []

    def mount(size: str) -> Path:
        mnt = tmp_path / f"tmpfs-{len(mounted)}"
        mnt.mkdir()
        made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True)
        if made.returncode != 0:
            if os.environ.get("CI"):
                pytest.fail(f"cannot mount a tmpfs for a full-disk test: {made.stderr.decode().strip()}")
            pytest.skip("cannot mount a tmpfs (not root?)")
        mounted.append(mnt)
        return mnt

    yield mount
    for mnt in mounted:
        subprocess.run(["umount", str(mnt)], check=False)
