"""Check planned commands against the real nerfstudio CLI without running them (``preprocess.py --check-cli``).

nerfstudio's commands are tyro CLIs: ``ns-train`` is ``tyro.cli(AnnotatedBaseConfigUnion)``, ``ns-render`` and
``ns-download-data`` are ``tyro.cli(Commands)``. A small program run by nerfstudio's own Python parses each
planned argument list with exactly those calls (no training, no GPU, no data needed) and reports the resulting
config: that the command parses, and that it means what we expect (the run folder where ns-render will look
for config.yml, the kplanes far plane, the nerfstudio-data parser, ...).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from typing import Any

from consts import NS_METHODS, RENDER_FPS
from models.preprocess.commands import Layout, NsEnv
from models.preprocess.jobs import Job

CHECK_TIMEOUT_S = 900
_PROGRAM = r"""
import contextlib, io, json, os, sys, warnings
warnings.filterwarnings("ignore")
import tyro

def parse(argv):
    tool = os.path.basename(argv[0])
    if tool == "ns-train":
        from nerfstudio.configs.method_configs import AnnotatedBaseConfigUnion as cli
    elif tool == "ns-render":
        from nerfstudio.scripts.render import Commands as cli
    elif tool == "ns-download-data":
        from nerfstudio.scripts.downloads.download_data import Commands as cli
    else:
        raise ValueError("not a nerfstudio command: " + tool)
    cfg = tyro.cli(cli, args=list(argv[1:]))
    if tool == "ns-train":
        m, dm = cfg.pipeline.model, cfg.pipeline.datamanager
        return {"config": str(cfg.get_base_dir() / "config.yml"), "method": cfg.method_name,
                "model": type(m).__name__, "dataparser": type(dm.dataparser).__name__, "data": str(cfg.data),
                "near_plane": getattr(m, "near_plane", None), "far_plane": getattr(m, "far_plane", None),
                "images_on_gpu": dm.images_on_gpu, "cache_images": getattr(dm, "cache_images", None),
                "device_type": cfg.machine.device_type,
                "quit": cfg.viewer.quit_on_train_completion, "max_iters": cfg.max_num_iterations}
    if tool == "ns-render":
        return {"command": type(cfg).__name__, "load_config": str(cfg.load_config),
                "output_path": str(cfg.output_path), "frame_rate": cfg.frame_rate,
                "output_format": cfg.output_format, "image_format": cfg.image_format}
    return {"command": type(cfg).__name__, "capture_name": cfg.capture_name, "save_dir": str(cfg.save_dir)}

out = []
for argv in json.load(sys.stdin):
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(err):
            out.append({"ok": True, "facts": parse(argv)})
    except SystemExit:
        out.append({"ok": False, "error": err.getvalue().strip()[:1500]})
    except Exception as e:
        out.append({"ok": False, "error": type(e).__name__ + ": " + str(e)})
print()
print(json.dumps(out))
"""


def parse_commands(python: str, commands: Sequence[Sequence[str]]) -> list[dict[str, Any]]:
    """Parse each argument list with nerfstudio's tyro CLI in ``python``; one ``{"ok", "facts"|"error"}`` each."""
    proc = subprocess.run([python, "-c", _PROGRAM], input=json.dumps([list(c) for c in commands]),
                          capture_output=True, text=True, timeout=CHECK_TIMEOUT_S)  # fmt: skip
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"{python} could not run the CLI check: {' | '.join(tail)}") from None


def expected(job: Job, step: str, layout: Layout) -> dict[str, Any]:
    """What the parsed config of ``job``'s ``step`` must say (a subset of the facts the check returns)."""
    info = job.info
    if step == "download":
        return {"command": "NerfstudioDownload", "capture_name": info["scene"], "save_dir": str(layout.datasets)}
    scene, method = info["scene"], info["method"]
    if step == "render":
        return {"command": "RenderInterpolated", "load_config": str(layout.config(scene, method)),
                "output_path": str(layout.staging(job.name)), "frame_rate": float(RENDER_FPS),
                "output_format": "images", "image_format": "png"}  # fmt: skip
    exp: dict[str, Any] = {"config": str(layout.config(scene, method)), "method": method,
                           "data": str(layout.capture(scene)), "dataparser": "NerfstudioDataParserConfig",
                           "quit": True, "device_type": info["device"],
                           "images_on_gpu": info["device"] == "cuda"}  # fmt: skip
    m = NS_METHODS[method]
    args = (*m.args, *(m.cuda_args if info["device"] == "cuda" else ()))
    for flag, key, cast in (("--pipeline.model.near-plane", "near_plane", float),
                            ("--pipeline.model.far-plane", "far_plane", float),
                            ("--pipeline.datamanager.cache-images", "cache_images", str)):  # fmt: skip
        if flag in args:
            exp[key] = cast(args[args.index(flag) + 1])
    return exp


def summarize(error: str) -> str:
    """The first two lines of tyro's boxed error message, without the box drawing."""
    lines = [ln.strip(" │╭╮╰╯─") for ln in error.splitlines()]
    return " ".join([ln for ln in lines if ln][:2]) or "parse failed"


def check_cli(jobs: Sequence[Job], layout: Layout, env: NsEnv) -> list[dict[str, Any]]:
    """Parse every external command of ``jobs`` (skipped ones too) with the real nerfstudio; one row each."""
    if not env.python:
        raise RuntimeError("nerfstudio's Python was not found; point --ns-bin at the bin/ of its environment")
    todo = [(job, step) for job in jobs for step in job.steps if step.argv]
    parsed = parse_commands(env.python, [step.argv for _, step in todo])
    rows = []
    for (job, step), res in zip(todo, parsed, strict=True):
        row = {"job": job.name, "step": step.name, "ok": res["ok"], "model": res.get("facts", {}).get("model", ""),
               "command": step.show()}
        if res["ok"]:
            got = res["facts"]
            wrong = {k: (v, got.get(k)) for k, v in expected(job, step.name, layout).items() if got.get(k) != v}
            row["ok"] = not wrong
            row["note"] = "; ".join(f"{k}: expected {a!r}, parsed {b!r}" for k, (a, b) in wrong.items())
        else:
            row["note"] = summarize(res["error"])
        rows.append(row)
    return rows

