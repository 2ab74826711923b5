"""preprocess.py and models.preprocess with fake ns-train / ns-render / ns-download-data executables written into a
temporary folder.

The fakes check their arguments the way nerfstudio's CLI would need them and write plausible outputs
(``outputs/{scene}/{method}/preprocess/config.yml``, zero-padded PNG frames), so the whole job life cycle runs:
commands, layout, markers, skipping, resume after a kill, failures, the dry run and every setup error.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import models.preprocess.run as run_module
import preprocess
from consts import NS_METHODS, ROOT, SKIPPED_PAIRS, TRAIN_METHODS, TRAIN_SCENES
from models import cli
from models.errors import InputError
from models.preprocess.commands import Layout, NsEnv, nerfstudio_device, plan, probe, render_argv, train_argv
from models.preprocess.config import PreprocessConfig
from models.preprocess.jobs import exclusive
from models.preprocess.run import run

FAKE_COMMON = """
import json, os, sys, time
from pathlib import Path

def record(tool):
    with open(os.environ["FAKE_NS_CALLS"], "a") as f:
        f.write(json.dumps([tool, *sys.argv[1:]]) + "\\n")

def options(args):
    assert len(args) % 2 == 0 and all(k.startswith("--") for k in args[::2]), args
    return dict(zip(args[::2], args[1::2]))
"""
FAKE_TRAIN = FAKE_COMMON + """
record("ns-train")
method, args = sys.argv[1], sys.argv[2:]
assert method in {"splatfacto", "nerfacto", "tensorf", "instant-ngp", "kplanes", "nerfacto-huge"}, method
assert args[-1] == "nerfstudio-data", args
o = options(args[:-1])
assert (Path(o["--data"]) / "transforms.json").is_file(), o["--data"]
assert o["--viewer.quit-on-train-completion"] == "True"
if method == "kplanes":
    assert o["--pipeline.model.near-plane"] == "0" and o["--pipeline.model.far-plane"] in {"20", "100", "1000"}
job = o["--experiment-name"] + "__" + o["--method-name"]
if job in os.environ.get("FAKE_NS_FAIL", "").split(","):
    print("RuntimeError: CUDA error: out of memory", file=sys.stderr)
    sys.exit(1)
run = Path(o["--output-dir"]) / o["--experiment-name"] / o["--method-name"] / o["--timestamp"]
run.mkdir(parents=True)  # no exist_ok: a run folder left by an unfinished attempt must have been removed
(run / "config.yml").write_text("method_name: " + o["--method-name"] + "\\n")
print("training finished")
"""
FAKE_RENDER = FAKE_COMMON + """
import numpy as np
from PIL import Image
import shutil
record("ns-render")
assert shutil.which("ffmpeg"), "ns-render needs ffmpeg on its PATH"  # as nerfstudio's check_ffmpeg_installed
assert os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD") == "1"  # else nerfstudio 1.1.5 cannot load its ckpt
assert sys.argv[1] == "interpolate", sys.argv
o = options(sys.argv[2:])
assert Path(o["--load-config"]).is_file(), o["--load-config"]
assert (o["--frame-rate"], o["--image-format"], o["--output-format"]) == ("30", "png", "images"), o
out = Path(o["--output-path"])
out = out.parent / out.stem  # where nerfstudio writes --output-format images
out.mkdir(parents=True, exist_ok=True)
for i in range(int(os.environ.get("FAKE_NS_FRAMES", "4"))):
    if str(i) == os.environ.get("FAKE_NS_HANG_AT") and os.environ.get("FAKE_NS_HANG_JOB", "") in str(out):
        Path(os.environ["FAKE_NS_HANG_FLAG"]).write_text(str(os.getpid()))  # the pid: tests/cluster kills it
        time.sleep(60)
    Image.fromarray(np.full((24, 32, 3), 40 * i + 10, np.uint8)).save(out / f"{i:05d}.png")
"""
FAKE_DOWNLOAD = FAKE_COMMON + """
record("ns-download-data")
assert sys.argv[1] == "nerfstudio", sys.argv
o = options(sys.argv[2:])
capture = Path(o["--save-dir"]) / "nerfstudio" / o["--capture-name"]
capture.mkdir(parents=True)
(capture / "transforms.json").write_text("{}")
"""
FAKE_PYTHON = """#!/bin/sh
echo '{"nerfstudio": "1.1.5-fake", "cuda": '"${FAKE_NS_CUDA:-true}"'}'
"""


def _write_exe(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


@pytest.fixture
def ns(tmp_path, monkeypatch):
    """A fake nerfstudio bin/ folder, a capture of `poster`, and a config rooted in tmp_path."""
    bin_dir = tmp_path / "ns-bin"
    bin_dir.mkdir()
    for name, body in (("ns-train", FAKE_TRAIN), ("ns-render", FAKE_RENDER), ("ns-download-data", FAKE_DOWNLOAD)):
        _write_exe(bin_dir / name, f"#!{sys.executable}\n{body}")
    _write_exe(bin_dir / "python", FAKE_PYTHON)
    _write_exe(bin_dir / "ffmpeg", "#!/bin/sh\n")  # ns-render needs one on its PATH; --ns-bin comes first there
    monkeypatch.setenv("PATH", os.pathsep.join([str(tmp_path / "no-tools"), "/usr/bin", "/bin"]))
    capture = tmp_path / "datasets" / "nerfstudio" / "poster"
    capture.mkdir(parents=True)
    (capture / "transforms.json").write_text("{}")
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_NS_CALLS", str(calls))
    monkeypatch.setattr(run_module, "RUNS_DIR", tmp_path / "runs")
    cfg = PreprocessConfig(
        scenes=["poster"], methods=["splatfacto", "kplanes-20"], datasets=str(tmp_path / "datasets"),
        outputs=str(tmp_path / "outputs"), renders=str(tmp_path / "renders"), ns_bin=str(bin_dir), run_name="t")

    class NS:
        pass

    out = NS()
    out.bin, out.cfg, out.tmp = bin_dir, cfg, tmp_path
    out.renders = tmp_path / "renders"
    out.calls = lambda: [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []
    return out


def _layout(ns) -> Layout:
    return Layout(Path(ns.cfg.datasets), Path(ns.cfg.outputs), Path(ns.cfg.renders))


# --------------------------------------------------------------------------------------------- commands
def test_commands_per_method_family():
    lay = Layout(Path("datasets"), Path("outputs"), Path("renders"))
    common = ("--output-dir", "outputs", "--experiment-name", "poster")
    assert train_argv("poster", "splatfacto", lay, "cuda") == (
        "ns-train", "splatfacto", "--data", "datasets/nerfstudio/poster", *common, "--method-name", "splatfacto",
        "--timestamp", "preprocess", "--viewer.quit-on-train-completion", "True",
        "--pipeline.datamanager.images-on-gpu", "True", "--pipeline.datamanager.cache-images", "gpu",
        "nerfstudio-data")  # fmt: skip
    assert train_argv("poster", "kplanes-100", lay, "cuda", max_iters=500) == (
        "ns-train", "kplanes", "--data", "datasets/nerfstudio/poster", *common, "--method-name", "kplanes-100",
        "--timestamp", "preprocess", "--viewer.quit-on-train-completion", "True", "--max-num-iterations", "500",
        "--pipeline.datamanager.images-on-gpu", "True", "--pipeline.model.near-plane", "0",
        "--pipeline.model.far-plane", "100", "nerfstudio-data")  # fmt: skip
    assert train_argv("poster", "nerfacto-huge", lay, "cpu", "/ns/bin/ns-train") == (
        "/ns/bin/ns-train", "nerfacto-huge", "--data", "datasets/nerfstudio/poster", *common,
        "--method-name", "nerfacto-huge", "--timestamp", "preprocess", "--viewer.quit-on-train-completion", "True",
        "--machine.device-type", "cpu", "nerfstudio-data")  # fmt: skip
    assert render_argv(lay.config("poster", "kplanes-20"), lay.staging("poster__kplanes-20")) == (
        "ns-render", "interpolate", "--load-config", "outputs/poster/kplanes-20/preprocess/config.yml",
        "--frame-rate", "30", "--image-format", "png", "--output-format", "images",
        "--output-path", "renders/.partial/poster__kplanes-20")  # fmt: skip


def test_plan_has_every_pair_upstreams_skip_list_is_history():
    """train.py needs all 17 x 8 renders (spec, item 7.): the pairs upstream's loop skips are planned too."""
    lay = Layout(Path("d"), Path("o"), Path("r"))
    env = NsEnv({}, None, "unknown", None)
    jobs = plan(TRAIN_SCENES, TRAIN_METHODS, lay, env, "cuda")
    assert len(jobs) == 17 * 8 == 136 and not any(j.skip for j in jobs)
    assert {(j.info["scene"], j.info["method"]) for j in jobs} >= SKIPPED_PAIRS and len(SKIPPED_PAIRS) == 21


def test_only_splatfacto_caches_images_on_the_gpu():
    """Upstream's splatfacto command adds ``--pipeline.datamanager.cache-images gpu`` (data: NS_METHODS)."""
    lay = Layout(Path("d"), Path("o"), Path("r"))
    flag = "--pipeline.datamanager.cache-images"
    for method in TRAIN_METHODS:
        argv = train_argv("poster", method, lay, "cuda")
        if method == "splatfacto":
            assert argv[argv.index(flag) + 1] == "gpu" and argv[-1] == "nerfstudio-data"
        else:
            assert flag not in argv, method
        assert flag not in train_argv("poster", method, lay, "cpu")  # nothing on a GPU without one
    assert [m for m, spec in NS_METHODS.items() if spec.cuda_args] == ["splatfacto"]


def test_run_writes_layout_marker_and_mp4(ns):
    assert run(ns.cfg) == 0
    lay = _layout(ns)
    for method in ("splatfacto", "kplanes-20"):
        job = f"poster__{method}"
        folder = ns.renders / job
        assert sorted(p.name for p in folder.iterdir()) == [".preprocess.json", "00000.png", "00001.png",
                                                             "00002.png", "00003.png"]  # fmt: skip
        assert [np.asarray(Image.open(folder / f"{i:05d}.png"))[0, 0, 0] for i in range(4)] == [10, 50, 90, 130]
        marker = json.loads((folder / ".preprocess.json").read_text())
        assert marker["frames"] == 4 and marker["nerfstudio"] == "1.1.5-fake" and marker["device"] == "cuda"
        assert set(marker["durations"]) == {"train", "render", "mp4"}
        planned = [s for j in plan(["poster"], [method], lay, probe(ns.bin), "cuda") for s in j.steps]
        assert marker["commands"] == [s.show() for s in planned]
        assert [c for c in ns.calls() if c[-1] == "nerfstudio-data" and method in c] == \
            [["ns-train", *planned[0].argv[1:]]]  # fmt: skip
        cap = cv2.VideoCapture(str(ns.renders / "videos" / f"{job}.mp4"))
        assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 4 and cap.get(cv2.CAP_PROP_FRAME_WIDTH) == 32
        assert (ns.renders / "logs" / f"{job}.log").read_text().count("# step ") >= 3
        assert lay.config("poster", method).is_file()
    assert not list((ns.renders / ".partial").iterdir())
    summary = json.loads((ns.tmp / "runs" / "t" / "summary.json").read_text())
    assert summary["counts"] == {"done": 2}


def test_finished_jobs_are_skipped_and_force_redoes(ns, capsys):
    assert run(ns.cfg) == 0
    n = len(ns.calls())
    assert run(ns.cfg) == 0
    assert len(ns.calls()) == n
    assert "2 already done" in capsys.readouterr().out
    ns.cfg.ns_bin = str(ns.tmp)  # nothing left to run: no nerfstudio needed
    assert run(ns.cfg) == 0
    ns.cfg.ns_bin, ns.cfg.force = str(ns.bin), True
    assert run(ns.cfg) == 0
    assert len(ns.calls()) == 2 * n


def test_incomplete_output_is_redone(ns):
    assert run(ns.cfg) == 0
    (ns.renders / "poster__kplanes-20" / "00002.png").unlink()  # marker says 4 frames: not done any more
    (ns.renders / "videos" / "poster__splatfacto.mp4").unlink()
    n = len(ns.calls())
    assert run(ns.cfg) == 0
    assert len(ns.calls()) == n + 4  # both jobs trained and rendered again
    assert len(list((ns.renders / "poster__kplanes-20").glob("*.png"))) == 4


def test_failed_job_does_not_stop_the_others(ns, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_NS_FAIL", "poster__splatfacto")
    assert run(ns.cfg) == 1
    out = capsys.readouterr().out
    assert "failed" in out and "done" in out
    assert not (ns.renders / "poster__splatfacto").exists()
    assert (ns.renders / "poster__kplanes-20" / ".preprocess.json").is_file()
    assert "CUDA error: out of memory" in (ns.renders / "logs" / "poster__splatfacto.log").read_text()
    summary = json.loads((ns.tmp / "runs" / "t" / "summary.json").read_text())
    assert summary["counts"] == {"failed": 1, "done": 1}
    monkeypatch.delenv("FAKE_NS_FAIL")
    assert run(ns.cfg) == 0  # the rerun does only the failed job
    assert sum(c[0] == "ns-train" for c in ns.calls()) == 3


def _start_and_hang(ns, hang_job_method: str) -> tuple[subprocess.Popen, Path]:
    """Run preprocess.py in a child process whose render of ``hang_job_method`` hangs after 2 frames."""
    flag = ns.tmp / "hanging"
    env = {**os.environ, "FAKE_NS_HANG_AT": "2", "FAKE_NS_HANG_FLAG": str(flag)}
    ns.cfg.methods = [hang_job_method]
    argv = [sys.executable, str(ROOT / "preprocess.py"), "--scenes", "poster", "--methods", hang_job_method,
            "--datasets", ns.cfg.datasets, "--outputs", ns.cfg.outputs, "--renders", ns.cfg.renders,
            "--ns-bin", str(ns.bin), "--run-name", "pytest-preprocess-kill"]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=ns.tmp, env=env, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 60
    while not flag.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()
        time.sleep(0.05)
    return proc, flag


def _session_members(sid: int) -> list[int]:
    """Live processes of session ``sid`` (the test started preprocess.py as a session leader)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == sid and "Z" not in (entry / "stat").read_text().split()[2]:
                    out.append(int(entry.name))
            except (ProcessLookupError, PermissionError, FileNotFoundError):
                pass
    return out


def test_resume_after_kill_half_way(ns):
    proc, _ = _start_and_hang(ns, "kplanes-20")
    os.killpg(proc.pid, signal.SIGKILL)  # preprocess.py and the hanging ns-render die at once: no cleanup
    proc.wait()
    staged = ns.renders / ".partial" / "poster__kplanes-20"
    assert sorted(p.name for p in staged.iterdir()) == ["00000.png", "00001.png"]
    assert not (ns.renders / "poster__kplanes-20").exists()
    assert run(ns.cfg) == 0  # fake ns-train refuses to reuse the old run folder: it must be cleaned
    assert len(list((ns.renders / "poster__kplanes-20").glob("*.png"))) == 4
    assert not staged.exists()
    assert "removed what an unfinished earlier attempt left" in \
        (ns.renders / "logs" / "poster__kplanes-20.log").read_text()  # fmt: skip
    assert (ns.renders / "logs" / "poster__kplanes-20.log.1").is_file()  # the killed attempt's log is kept


def test_sigterm_stops_the_child_and_exits_130(ns):
    proc, _ = _start_and_hang(ns, "kplanes-20")
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=20)[0].decode()
    assert proc.returncode == 130, out
    assert "interrupted" in out
    left = _session_members(proc.pid)
    for pid in left:  # do not leave a sleeping fake behind when the assertion fails
        os.kill(pid, signal.SIGKILL)
    assert left == [], "the hanging ns-render was left running"


# --------------------------------------------------------------------------------------------- before running
def test_dry_run_prints_every_command_and_runs_nothing(ns, capsys):
    ns.cfg.dry_run = True
    ns.cfg.scenes, ns.cfg.methods = ["aspen", "poster"], ["splatfacto", "kplanes-20"]
    assert run(ns.cfg) == 0
    out = capsys.readouterr().out
    lay = _layout(ns)
    for job in plan(["poster"], ["splatfacto", "kplanes-20"], lay, probe(ns.bin), "cuda"):
        for step in job.steps:
            assert step.show() in out
    assert "aspen__splatfacto: to run" in out and "aspen__kplanes-20: to run" in out
    assert "datasets/nerfstudio/aspen/transforms.json missing" in out  # what a real run would stop on
    assert ns.calls() == [] and not ns.renders.exists()


def test_dry_run_on_a_fresh_clone_shows_the_full_plan(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no nerfstudio anywhere
    out = subprocess.run([sys.executable, str(ROOT / "preprocess.py"), "--dry-run"], cwd=ROOT, env=env,
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "nerfstudio: not found" in out.stdout and "[136/136] vegetation__nerfacto-huge: to run" in out.stdout
    assert "\n    ns-train kplanes --data datasets/nerfstudio/Egypt --output-dir outputs" in out.stdout
    assert "[1/136] aspen__splatfacto: to run" in out.stdout and "skipped" not in out.stdout
    assert "total             136                        93.5" in out.stdout


def test_plan_json_estimate(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    cfg = PreprocessConfig(datasets=str(tmp_path / "d"), outputs=str(tmp_path / "o"), renders=str(tmp_path / "r"),
                           dry_run=True, plan_json=str(tmp_path / "p.json"))
    assert run(cfg) == 0
    planned = json.loads((tmp_path / "p.json").read_text())
    assert planned["estimate"][-1] == {"method": "total", "jobs": 136, "GPU hours": 93.5}
    assert {r["method"]: r["GPU hours"] for r in planned["estimate"]}["nerfacto-huge"] == 51.0  # 17 scenes x 3 h
    assert len(planned["jobs"]) == 136 and len(planned["problems"]) == 2  # ns-train and ns-render, captures
    assert planned["problems"][0].startswith("ns-train and ns-render not found: install nerfstudio")


def refused(cfg: PreprocessConfig) -> str:
    """The one-line error (InputError -> ``error: ...``, exit 2) of a run that must not start."""
    with pytest.raises(InputError) as e:
        run(cfg)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_error_missing_nerfstudio(ns, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    ns.cfg.ns_bin = str(empty)
    assert refused(ns.cfg).startswith("ns-train and ns-render not found: install nerfstudio")
    ns.cfg.scenes = ["poster", "kitchen"]  # two problems: one line, numbered
    err = refused(ns.cfg)
    assert err.startswith("2 problems stop the run: (1) ns-train and ns-render not found: ") and "--ns-bin" in err
    assert " (2) " + f"{tmp_path}/datasets/nerfstudio/kitchen/transforms.json missing: run `ns-download-data" in err
    ns.cfg.ns_bin = str(tmp_path / "nope")
    assert refused(ns.cfg) == (f"--ns-bin {tmp_path / 'nope'}: no such folder; point it at the bin/ of nerfstudio's "
                               "environment")
    assert ns.calls() == []


def test_error_missing_ffmpeg(ns, monkeypatch):
    (ns.bin / "ffmpeg").unlink()
    monkeypatch.setenv("PATH", str(ns.tmp / "no-tools"))  # no system ffmpeg either
    assert refused(ns.cfg).startswith("ffmpeg not found: ns-render refuses to start without it")
    assert ns.calls() == []


def test_error_missing_capture_and_download(ns):
    ns.cfg.scenes = ["kitchen"]
    err = refused(ns.cfg)
    assert "nerfstudio/kitchen/transforms.json missing" in err
    assert "ns-download-data nerfstudio --capture-name kitchen --save-dir" in err
    assert ns.calls() == []
    ns.cfg.download = True
    assert run(ns.cfg) == 0
    assert ns.calls()[0] == ["ns-download-data", "nerfstudio", "--capture-name", "kitchen", "--save-dir",
                             ns.cfg.datasets]  # fmt: skip
    assert (ns.renders / "kitchen__kplanes-20" / ".preprocess.json").is_file()


def test_error_cuda_methods_without_cuda(ns, monkeypatch):
    monkeypatch.setenv("FAKE_NS_CUDA", "false")
    ns.cfg.methods = ["splatfacto", "instant-ngp", "nerfacto"]
    err = refused(ns.cfg)
    assert "instant-ngp, splatfacto need CUDA" in err and "--methods nerfacto" in err
    ns.cfg.device = "cuda"
    assert "--device cuda: nerfstudio's torch" in refused(ns.cfg)
    assert ns.calls() == []
    ns.cfg.device, ns.cfg.methods = "auto", ["nerfacto"]  # CPU-capable: runs, told to use the CPU
    assert run(ns.cfg) == 0
    assert ns.calls()[0][-3:] == ["--machine.device-type", "cpu", "nerfstudio-data"]


def test_error_renders_not_writable(ns):
    (ns.tmp / "a-file").write_text("")
    ns.cfg.renders = str(ns.tmp / "a-file" / "renders")
    assert refused(ns.cfg).startswith(f"{ns.tmp}/a-file/renders: cannot write results here") and ns.calls() == []


def test_error_second_run_on_the_same_renders(ns):
    with exclusive(ns.renders, "preprocess.py"):
        assert "another preprocess.py is running" in refused(ns.cfg)


def test_plan_json_that_cannot_be_written_is_refused_first(ns, capsys):
    """--plan-json under a file, or a folder: one line before anything is planned; a place that refuses the file
    only when written (/proc) is the same one line."""
    (ns.tmp / "a-file").write_text("")
    ns.cfg.dry_run = True
    for path, why in ((ns.tmp / "a-file" / "p.json", f"{ns.tmp}/a-file is not a folder"), (ns.tmp, "is a folder")):
        ns.cfg.plan_json = str(path)
        assert refused(ns.cfg) == f"--plan-json {path}: cannot write this file ({why}); choose another path"
        assert capsys.readouterr().out == ""  # refused before the plan
    if os.access("/proc", os.W_OK):  # root: /proc looks writable, and refuses the file when it is written
        ns.cfg.plan_json = "/proc/p.json"
        assert refused(ns.cfg).startswith("--plan-json /proc/p.json: cannot write this file (")


def test_unknown_scene_is_refused_unless_its_capture_exists(tmp_path, capsys):
    from consts import TRAIN_SCENES

    with pytest.raises(SystemExit) as e:
        preprocess.parse_args(["--scenes", "poster,nosuch", "--datasets", str(tmp_path)])
    assert e.value.code == 2 and capsys.readouterr().err.split(": error: ", 1)[1] == (  # after the program name
        f"--scenes: unknown scene(s) nosuch (not a training scene, and no custom capture "
        f"{tmp_path}/nerfstudio/nosuch/); known scenes: {', '.join(TRAIN_SCENES)} (see --help)\n")
    (tmp_path / "nerfstudio" / "nosuch").mkdir(parents=True)  # a custom capture: accepted
    assert preprocess.parse_args(["--scenes", "nosuch", "--datasets", str(tmp_path)]).scenes == ["nosuch"]


def test_unknown_method_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        preprocess.parse_args(["--methods", "nerfacto,mipnerf"])
    assert e.value.code == 2 and "unknown method(s) mipnerf" in capsys.readouterr().err
    assert preprocess.parse_args(["--scenes", "poster,kitchen", "aspen"]).scenes == ["poster", "kitchen", "aspen"]
    with pytest.raises(SystemExit) as e:
        preprocess.parse_args(["--max-iters", "-1"])
    assert e.value.code == 2 and "--max-iters -1: must be >= 0" in capsys.readouterr().err


def test_flags_round_trip_and_defaults():
    assert preprocess.parse_args([]) == PreprocessConfig()
    cfg = preprocess.parse_args(["--methods", "nerfacto,kplanes-20", "--max-iters", "5", "--download", "--dry-run",
                                 "--ns-bin", "/ns/bin", "--device", "cpu"])
    assert cfg.methods == ["nerfacto", "kplanes-20"] and cfg.download and cfg.ns_bin == "/ns/bin"
    assert preprocess.parse_args(cli.to_argv(cfg)) == cfg
    assert not preprocess.parse_args(["--download", "--no-download"]).download
    with pytest.raises(InputError, match="unknown method"):
        PreprocessConfig(methods=["nerfacto", "mipnerf"])


def test_nerfstudio_device():
    env = NsEnv({}, None, "unknown", None)
    assert nerfstudio_device("auto", env) == "cuda"  # unknown: the plan is for a GPU machine
    assert nerfstudio_device("auto", NsEnv({}, None, "unknown", False)) == "cpu"
    assert nerfstudio_device("cpu", NsEnv({}, None, "unknown", True)) == "cpu"


def test_check_cli_compares_the_parsed_config_with_the_plan(ns, monkeypatch):
    from models.preprocess import cli_check as chk

    lay, env = _layout(ns), probe(ns.bin)
    jobs = plan(["poster"], ["kplanes-20"], lay, env, "cuda")
    exp = chk.expected(jobs[0], "train", lay)
    assert (exp["near_plane"], exp["far_plane"], exp["images_on_gpu"]) == (0.0, 20.0, True)
    assert "cache_images" not in exp  # only splatfacto's command sets it, and on CUDA only
    splat = plan(["poster"], ["splatfacto"], lay, env, "cuda")[0]
    assert chk.expected(splat, "train", lay)["cache_images"] == "gpu"
    assert exp["config"] == str(ns.tmp / "outputs/poster/kplanes-20/preprocess/config.yml")

    def parse(python: str, commands: list) -> list:
        assert python == str(ns.bin / "python") and [c[1] for c in commands] == ["kplanes", "interpolate"]
        return [{"ok": True, "facts": {**exp, "far_plane": 6.0, "model": "KPlanesModelConfig"}},
                {"ok": False, "error": "╭─ Parsing error ──╮\n│ Argument --frame-rate: invalid │\n╰────╯"}]

    monkeypatch.setattr(chk, "parse_commands", parse)
    rows = chk.check_cli(jobs, lay, env)
    assert rows[0] == {"job": "poster__kplanes-20", "step": "train", "ok": False, "model": "KPlanesModelConfig",
                       "command": jobs[0].steps[0].show(), "note": "far_plane: expected 20.0, parsed 6.0"}
    assert rows[1]["note"] == "Parsing error Argument --frame-rate: invalid" and not rows[1]["ok"]
