"""Plan the nerfstudio render jobs of the unlabelled training set: one job per scene x method.

A job trains the method on ``{datasets}/nerfstudio/{scene}`` with ``ns-train`` (fixed output folder
``{outputs}/{scene}/{method}/preprocess/``), renders the interpolated eval path with ``ns-render interpolate``
into a hidden staging folder, writes an mp4 of the frames, and publishes atomically:

    renders/{scene}__{method}/00000.png …      the frames (what train.py reads)
    renders/{scene}__{method}/.preprocess.json the done-marker: commands, nerfstudio version, frames, durations
    renders/videos/{scene}__{method}.mp4       the frames as a video (RENDER_FPS)
    renders/logs/{scene}__{method}.log         the job's log (the previous attempt's as .log.1)

The frame folder appears (by one rename) only when everything above is complete, so ``renders/`` never holds a
half-written sequence. nerfstudio lives in the user's own CUDA environment: we only call its commands.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consts import NS_INSTALL_HINT, NS_METHODS, RENDER_FPS, NsMethod
from models.preprocess.jobs import Job, JobError, Step
from models.results import atomic_write_json

log = logging.getLogger(__name__)

MARKER = ".preprocess.json"
TIMESTAMP = "preprocess"  # ns-train --timestamp: a fixed run folder, so the config path is known in advance
TOOLS = ("ns-train", "ns-render", "ns-download-data")
FRAME_RE = re.compile(r"^\d{5}\.png$")  # ns-render's zero-padded frame names
PROBE_TIMEOUT_S = 180
# nerfstudio 1.1.5 loads its own checkpoints with a bare torch.load, which torch >= 2.6 refuses (weights_only
# became the default): ns-render fails on every run. These files are written by the ns-train run just before,
# so they are trusted; torch's documented switch restores the old default for nerfstudio's processes only.
COMMAND_ENV = {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
_PROBE = (
    "import importlib.metadata as m, json\n"
    "try:\n    import torch; cuda, tv = bool(torch.cuda.is_available()), torch.__version__\n"
    "except Exception:\n    cuda, tv = None, 'unknown'\n"
    "print(json.dumps({'nerfstudio': m.version('nerfstudio'), 'cuda': cuda, 'torch': tv}))"
)


@dataclass(frozen=True)
class Layout:
    """Where captures, nerfstudio runs and renders live."""

    datasets: Path  # ns-download-data --save-dir: captures at {datasets}/nerfstudio/{scene}
    outputs: Path  # ns-train --output-dir
    renders: Path

    def capture(self, scene: str) -> Path:
        return self.datasets / "nerfstudio" / scene

    def has_capture(self, scene: str) -> bool:
        return (self.capture(scene) / "transforms.json").is_file()  # what the nerfstudio-data parser reads

    def run_dir(self, scene: str, method: str) -> Path:
        return self.outputs / scene / method

    def config(self, scene: str, method: str) -> Path:
        return self.run_dir(scene, method) / TIMESTAMP / "config.yml"

    def frames(self, job: str) -> Path:
        return self.renders / job

    def staging(self, job: str) -> Path:
        return self.renders / ".partial" / job

    def video(self, job: str) -> Path:
        return self.renders / "videos" / f"{job}.mp4"

    def video_tmp(self, job: str) -> Path:
        return self.renders / "videos" / f".{job}.tmp.mp4"  # cv2 picks the container from the suffix

    def log(self, job: str) -> Path:
        return self.renders / "logs" / f"{job}.log"


@dataclass(frozen=True)
class NsEnv:
    """The user's nerfstudio installation as found on PATH or in --ns-bin."""

    tools: dict[str, str | None]  # command name -> what we run (bare name on PATH, full path in --ns-bin)
    python: str | None  # its interpreter (to ask for the nerfstudio version and CUDA)
    version: str  # "unknown" when it could not be asked
    cuda: bool | None  # None: unknown
    torch: str = "unknown"  # nerfstudio's torch (not ours)
    path: str = ""  # PATH of the commands: --ns-bin first, as if its environment were activated
    ffmpeg: str | None = None  # ns-render refuses to start without it

    def child_env(self) -> dict[str, str]:
        """The commands' environment: ours, PATH with --ns-bin first, and COMMAND_ENV."""
        return {**os.environ, **({"PATH": self.path} if self.path else {}), **COMMAND_ENV}

    def cmd(self, tool: str) -> str:
        return self.tools.get(tool) or tool


def job_name(scene: str, method: str) -> str:
    return f"{scene}__{method}"


def find_tools(ns_bin: Path | None) -> dict[str, str | None]:
    """Resolve the nerfstudio commands: in ``ns_bin`` (full paths) or on PATH (bare names, as typed)."""
    out: dict[str, str | None] = {}
    for tool in TOOLS:
        if ns_bin is not None:
            p = ns_bin / tool
            out[tool] = str(p) if p.is_file() and shutil.which(str(p)) else None
        else:
            out[tool] = tool if shutil.which(tool) else None
    return out


def _interpreter(ns_train: str) -> str | None:
    """The Python that runs ``ns-train``: ``python`` beside it (venv/conda bin/), else its ``#!`` line."""
    path = Path(shutil.which(ns_train) or ns_train)
    beside = path.parent / "python"
    if beside.is_file():
        return str(beside)
    try:
        first = path.read_bytes()[:256].split(b"\n", 1)[0].decode()
    except (OSError, UnicodeDecodeError):
        return None
    exe = first[2:].strip().split(" ")[0] if first.startswith("#!") else ""
    return exe if exe and Path(exe).is_file() else None


def probe(ns_bin: Path | None) -> NsEnv:
    """Find nerfstudio's commands and ask its Python for the nerfstudio version and whether CUDA works."""
    tools = find_tools(ns_bin)
    python = _interpreter(tools["ns-train"]) if tools["ns-train"] else None
    version, cuda, torch = "unknown", None, "unknown"
    if python:
        try:
            out = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S,
                                 stdin=subprocess.DEVNULL)  # fmt: skip
            facts = json.loads(out.stdout.strip().splitlines()[-1])
            version, cuda, torch = str(facts["nerfstudio"]), facts["cuda"], str(facts.get("torch", "unknown"))
        except (OSError, subprocess.TimeoutExpired, ValueError, IndexError, KeyError, TypeError):
            log.warning("could not ask %s for the nerfstudio version / CUDA; recorded as unknown", python)
    if cuda is None and shutil.which("nvidia-smi"):
        cuda = subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0
    path = os.pathsep.join([str(ns_bin), os.environ.get("PATH", "")]) if ns_bin else os.environ.get("PATH", "")
    return NsEnv(tools, python, version, cuda, torch, path, shutil.which("ffmpeg", path=path))


def nerfstudio_device(requested: str, env: NsEnv) -> str:
    """cuda/cpu as asked; auto: what nerfstudio's torch sees (cuda when unknown: the setup the plan is for).

    Not :func:`models.runtime.resolve_device`: the device is nerfstudio's (its own torch), not ours."""
    if requested != "auto":
        return requested
    return "cpu" if env.cuda is False else "cuda"


# --------------------------------------------------------------------------------------------- commands
def train_argv(scene: str, method: str, layout: Layout, device: str, ns_train: str = "ns-train",
               max_iters: int | None = None) -> tuple[str, ...]:
    """``ns-train`` for one scene x method (spec, section Preprocess); ``device`` is "cuda" or "cpu"."""
    m: NsMethod = NS_METHODS[method]
    argv = [ns_train, m.ns_method, "--data", str(layout.capture(scene)), "--output-dir", str(layout.outputs),
            "--experiment-name", scene, "--method-name", method, "--timestamp", TIMESTAMP,
            "--viewer.quit-on-train-completion", "True"]  # fmt: skip
    if max_iters:
        argv += ["--max-num-iterations", str(max_iters)]
    # On CUDA the training images are cached on the GPU, as upstream (splatfacto: also its cache-images, the
    # method's cuda_args); on the CPU nerfstudio must be told.
    argv += ["--pipeline.datamanager.images-on-gpu", "True", *m.cuda_args] if device == "cuda" \
        else ["--machine.device-type", "cpu"]
    return (*argv, *m.args, "nerfstudio-data")


def render_argv(config: Path, output: Path, ns_render: str = "ns-render") -> tuple[str, ...]:
    """``ns-render interpolate`` of a trained run into a folder of zero-padded PNG frames."""
    return (ns_render, "interpolate", "--load-config", str(config), "--frame-rate", str(RENDER_FPS),
            "--image-format", "png", "--output-format", "images", "--output-path", str(output))  # fmt: skip


def download_argv(scene: str, layout: Layout, ns_download: str = "ns-download-data") -> tuple[str, ...]:
    return (ns_download, "nerfstudio", "--capture-name", scene, "--save-dir", str(layout.datasets))


# --------------------------------------------------------------------------------------------- outputs
def frame_files(folder: Path) -> list[Path]:
    """The ns-render frames of ``folder`` (00000.png, 00001.png, …), checked to be numbered without gaps."""
    files = sorted(p for p in folder.iterdir() if FRAME_RE.match(p.name)) if folder.is_dir() else []
    if not files:
        raise JobError(f"{folder}: ns-render wrote no frames (expected 00000.png, …)")
    if files[-1].name != f"{len(files) - 1:05d}.png":
        raise JobError(f"{folder}: frames are not numbered 00000..{len(files) - 1:05d} (a gap)")
    return files


def write_mp4(frames: Sequence[Path], out: Path, fps: int = RENDER_FPS) -> tuple[int, int]:
    """Encode ``frames`` (same size) as an MPEG-4 video at ``out``; returns (width, height)."""
    import cv2

    from models.frames import read_image

    first = read_image(frames[0])
    h, w = first.shape[:2]
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise JobError(f"{out}: OpenCV cannot write an mp4 here")
    try:
        for i, path in enumerate(frames):
            img = first if i == 0 else read_image(path)
            if img.shape[:2] != (h, w):
                raise JobError(f"{path}: {img.shape[1]}x{img.shape[0]} differs from the first frame's {w}x{h}")
            writer.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return w, h


def read_marker(layout: Layout, job: str) -> dict[str, Any] | None:
    """The job's marker if the job is complete: marker valid, mp4 present, as many frames as recorded."""
    folder = layout.frames(job)
    try:
        marker = json.loads((folder / MARKER).read_text())
        n = sum(1 for p in folder.iterdir() if FRAME_RE.match(p.name))
    except (OSError, ValueError):
        return None
    ok = isinstance(marker, dict) and marker.get("job") == job and marker.get("frames") == n and n > 0
    return marker if ok and layout.video(job).is_file() else None


def _finish(layout: Layout, job: str, record: dict[str, Any]) -> dict[str, Any]:
    """Verify the staged frames and mp4, write the marker, then publish: mp4 first, frame folder last."""
    staging, video_tmp = layout.staging(job), layout.video_tmp(job)
    frames = frame_files(staging)
    extra = sorted(p.name for p in staging.iterdir() if not FRAME_RE.match(p.name))
    if extra:
        log.warning("%s: ns-render also wrote %s (kept)", staging, ", ".join(extra[:5]))
    if not video_tmp.is_file():
        raise JobError(f"{video_tmp}: the mp4 was not written")
    marker = {**record, "frames": len(frames), "frames_dir": str(layout.frames(job)),
              "video": str(layout.video(job))}  # fmt: skip
    atomic_write_json(staging / MARKER, marker)
    os.replace(video_tmp, layout.video(job))
    os.replace(staging, layout.frames(job))  # the one step that makes the job "done"
    return marker


# --------------------------------------------------------------------------------------------- plan
def render_job(scene: str, method: str, layout: Layout, env: NsEnv, device: str, max_iters: int | None = None) -> Job:
    """The job that trains ``method`` on ``scene`` and publishes its renders (see the module docstring).

    Every pair is a job: upstream's loop skips some (``consts.SKIPPED_PAIRS``), but its train.py needs all 136
    renders, so that list is history (docs/preprocess.md), not a rule."""
    name = job_name(scene, method)
    staging = layout.staging(name)

    def mp4() -> None:
        write_mp4(frame_files(staging), layout.video_tmp(name))

    steps = (
        Step("train", train_argv(scene, method, layout, device, env.cmd("ns-train"), max_iters)),
        Step("render", render_argv(layout.config(scene, method), staging, env.cmd("ns-render"))),
        Step("mp4", action=mp4, what=f"write {layout.video(name)} from the frames at {RENDER_FPS} fps"),
    )
    return Job(
        name=name, steps=steps, log=layout.log(name), done=lambda: read_marker(layout, name),
        finish=lambda record: _finish(layout, name, record),
        clean=(staging, layout.frames(name), layout.video(name), layout.video_tmp(name), layout.run_dir(scene, method)),
        info={"scene": scene, "method": method, "device": device, "gpu_minutes": NS_METHODS[method].gpu_minutes},
    )  # fmt: skip


def download_job(scene: str, layout: Layout, env: NsEnv) -> Job:
    """``ns-download-data`` of one capture; done when its transforms.json is there."""

    def finish(record: dict[str, Any]) -> dict[str, Any]:
        if not layout.has_capture(scene):
            raise JobError(f"{layout.capture(scene)}/transforms.json missing after ns-download-data")
        return record

    name = f"download__{scene}"
    return Job(name=name, steps=(Step("download", download_argv(scene, layout, env.cmd("ns-download-data"))),),
               log=layout.log(name), done=lambda: {} if layout.has_capture(scene) else None, finish=finish,
               info={"scene": scene})  # fmt: skip


def plan(scenes: Sequence[str], methods: Sequence[str], layout: Layout, env: NsEnv, device: str,
         max_iters: int | None = None, download: bool = False) -> list[Job]:
    """Download jobs (with ``download``, for missing captures) then every scene x method render job."""
    jobs = [download_job(s, layout, env) for s in scenes if download and not layout.has_capture(s)]
    return jobs + [render_job(s, m, layout, env, device, max_iters) for s in scenes for m in methods]


def problems(jobs: Sequence[Job], layout: Layout, env: NsEnv, device: str, download: bool,
             force: bool = False) -> list[str]:
    """Everything that would make the run fail, one line each naming the path and what to do (only the jobs
    that would run count: a finished set needs no nerfstudio)."""
    todo = [j for j in jobs if not j.skip and "method" in j.info and (force or j.done() is None)]
    absent = [tool for tool in ("ns-train", "ns-render") if todo and not env.tools.get(tool)]
    out = [f"{' and '.join(absent)} not found: {NS_INSTALL_HINT}"] if absent else []
    if todo and env.tools.get("ns-render") and not env.ffmpeg:
        out.append("ffmpeg not found: ns-render refuses to start without it; `apt-get install ffmpeg` (or "
                   "`conda install ffmpeg` in nerfstudio's environment)")
    missing = [s for s in dict.fromkeys(j.info["scene"] for j in todo) if not layout.has_capture(s)]
    if missing and download and not env.tools.get("ns-download-data"):
        out.append(f"ns-download-data not found (needed by --download): {NS_INSTALL_HINT}")
    elif missing and not download:
        more = f" (and {len(missing) - 1} more: {', '.join(missing[1:])})" if len(missing) > 1 else ""
        out.append(f"{layout.capture(missing[0])}/transforms.json missing{more}: run `"
                   f"{shlex.join(download_argv(missing[0], layout))}` for each scene, or pass --download")
    if device == "cuda" and env.cuda is False:
        out.append(f"--device cuda: nerfstudio's torch ({env.python}) sees no CUDA GPU; run on a GPU machine or use "
                   "--device cpu (CPU-capable methods only, slow)")
    if device == "cpu":
        cuda_only = sorted({j.info["method"] for j in todo if NS_METHODS[j.info["method"]].needs_cuda})
        if cuda_only:
            others = [m for m in dict.fromkeys(j.info["method"] for j in todo) if m not in cuda_only]
            why = f"nerfstudio's torch ({env.python}) sees no CUDA GPU" if env.cuda is False else "--device cpu"
            out.append(f"{', '.join(cuda_only)} need CUDA (gsplat/nerfacc kernels) but {why}: run on a GPU machine"
                       + (f", or leave them out with --methods {','.join(others)}" if others else ""))
    return out

