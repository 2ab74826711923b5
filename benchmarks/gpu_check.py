"""``make gpu-check``: what only a CUDA machine can measure, in one command that fits the lent GPU machine.

    python3 -m benchmarks.gpu_check --reference .gpu/reference --out $OUT   # there (PYTHONPATH=.gpu/site)
    python -m benchmarks.gpu_check --preset rehearse --device cpu            # here: make gpu-rehearse

That machine has its own ``python3`` (torch + CUDA), no venv and no network: what it lacks travels in ``.gpu/``
(``make gpu-prepare``, benchmarks/gpu_travel.py). The parts, in this order, each in its own try/except so one
failure does not lose the rest, and ``gpu.json`` + ``gpu.md`` rewritten (atomically) after each:

1. ``environment``: Python, torch, CUDA, cuDNN, NCCL, transformers, NumPy, pyfvvdp, submitit; the ``nvidia-smi``
   line; the CPU;
2. ``scorer``: the released scorer on the two examples in each precision mode (exact, fp16, bf16, mixed) at batch
   16: the mode that ran, frames/s, peak GPU memory, feature and JOD error against the release's own
   (benchmarks/gpu_scorer.py);
3. ``crossscore``: ``predict``'s maps with fp16 autocast vs fp32 (the committed demo model);
4. ``training``: ``train.py`` for a few steps per run, full-size and cpu-smoke-sized pairs, fp32 and AMP, one run
   under ``torch.distributed.run`` (DDP with NCCL, a real process group even on one GPU), and one run stopped
   halfway and resumed (benchmarks/gpu_train.py): pairs/s, data-wait share, peak GPU memory.

``--budget-s`` bounds the whole check: a part or run that would start after it is recorded as skipped, and each
training run is stopped at the budget's end. With ``--device cuda`` and no CUDA it prints one line, writes nothing
and exits 0. The output folder: ``--out``, else ``$GPU_CHECK_OUT``, else ``benchmarks/``.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # `python benchmarks/gpu_check.py`: the repository's modules must import
    sys.path.insert(0, str(ROOT))

from benchmarks import gpu_train  # noqa: E402
from benchmarks.gpu_scorer import SCORER_PRECISIONS, failed, fmt, modes_md, parse_precisions  # noqa: E402
from benchmarks.gpu_scorer import measure as measure_scorer  # noqa: E402
from consts import EXAMPLE_SEQUENCES, REFERENCE_FEATURES  # noqa: E402
from models import cli  # noqa: E402
from models.cli import opt  # noqa: E402

NO_CUDA = "gpu-check: no CUDA device here (torch.cuda.is_available() is False): nothing measured, nothing written"
OUT_ENV = "GPU_CHECK_OUT"  # the output folder when --out is not given
EXAMPLES = EXAMPLE_SEQUENCES  # what the scorer and CrossScore parts run on (the tests set made-up ones)
# modules whose versions are kept: module -> its distribution
VERSIONED = {"numpy": "numpy", "transformers": "transformers", "pyfvvdp": "pyfvvdp", "submitit": "submitit",
             "cv2": "opencv-python-headless", "scipy": "scipy", "PIL": "pillow", "av": "av"}
TRAVELLING_MODULES = ("pyfvvdp", "ffmpeg", "future", "submitit")  # what benchmarks/gpu_travel.py brings


@dataclass
class GpuCheckConfig:
    """Flags of ``python -m benchmarks.gpu_check`` (make gpu-check; make gpu-rehearse = ``--preset rehearse``)."""

    device: str = opt("cuda", "cuda (the check) | cpu (the rehearsal: the same code paths on this CPU)",
                      choices=("cuda", "cpu"))
    out: str = opt("", f"folder for gpu.json and gpu.md (default: ${OUT_ENV}, else benchmarks/)")
    reference: str = opt(str(REFERENCE_FEATURES.parent), "folder of the release's features.npz and scores.json "
                         "(../shared/reference here; .gpu/reference where ../shared does not travel)")
    budget_s: float = opt(330.0, "seconds for the whole check: what would start later is skipped (recorded)", min=1)
    steps: int = opt(6, "training steps per run; the first is warm-up and not counted", min=2)
    batch_size: int = opt(16, "training pairs per step (global; the paper's 16)", min=2)
    workers: int = opt(8, "train.py --workers (DataLoader processes building pairs)", min=0)
    crop: int = opt(0, "training crops of every run: this side in px, 2-frame segments (0 = each run's preset's "
                    "own sizes, as the check measures them; the rehearsal's tiny crops run the same code in seconds)",
                    min=0)
    renders: str = opt("", "training renders (default: the two examples linked into a temporary folder)")
    runs: str = opt(",".join(r.label for r in gpu_train.RUNS), "training runs to make, comma-separated, in "
                    "order (of the default list)")
    scorer_repeats: int = opt(3, "timed passes over each example (after one warm-up pass)", min=1)
    scorer_precisions: str = opt(",".join(SCORER_PRECISIONS), "scorer precision modes to measure, comma-separated "
                                 f"(of {', '.join(SCORER_PRECISIONS)}; exact is the one held to 1e-4)")
    scorer_batch_size: int = opt(16, "frames per scorer network call", min=1)
    scorer_frames: int = opt(0, "frames scored per example (0 = all; fewer skips the parity check)", min=0)
    crossscore_frames: int = opt(4, "example frames scored by CrossScore in fp16 and fp32", min=1)
    merge: list[str] = opt([], "measure nothing: combine the gpu.json of earlier calls (files or folders, first = "
                           "base) into --out; a later call's training runs replace the same runs skipped or failed "
                           "before", metavar="GPU_JSON")
    strict: bool = opt(False, "exit 1 when anything failed or was skipped, or a travelling package was imported "
                       "from outside PYTHONPATH (the rehearsal's pass criterion)")


# The rehearsal on a 2-core CPU: every code path of the check, small (fp16/bf16/mixed fall back or run emulated).
PRESETS = {
    "gpu": {},
    "rehearse": {"device": "cpu", "budget_s": 1500.0, "steps": 2, "batch_size": 2, "workers": 1, "crop": 72,
                 "scorer_repeats": 1, "scorer_frames": 3, "scorer_batch_size": 2, "crossscore_frames": 1,
                 "strict": True},
}


def parse_runs(spec: str) -> list[gpu_train.TrainRun]:
    """``--runs`` -> the runs, in the order given; an unknown label is one error line."""
    known = {r.label: r for r in gpu_train.RUNS}
    labels = [x.strip() for x in spec.split(",") if x.strip()]
    bad = [x for x in labels if x not in known]
    if bad:
        from models.errors import InputError

        raise InputError(f"--runs {spec}: {bad[0]!r} is not a run; choose from {', '.join(known)}")
    return [known[x] for x in dict.fromkeys(labels)]


# --------------------------------------------------------------------------------------------- report
def _training_md(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["## Training (`train.py`, a few steps a run; the first step not counted)", "",
             "| run | preset | recipe | AMP | GPUs | batch | status | pairs/s (logged) | pairs/s (wall) | data wait "
             "| targets | peak GPU MiB |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    resumes = []
    for r in rows:
        if "stopped_at_step" in r or r["run"].endswith("--resume"):
            resumes.append(r)
            continue
        share = {k: fmt(r[k] * 100, ".1f") + " %" if k in r else "–" for k in ("data_wait_fraction",
                                                                                "targets_fraction")}  # fmt: skip
        amp = "–" if "amp" not in r else "yes" if r["amp"] else "no"
        preset = f"{r.get('preset', '–')}" + (f", {r['crop']} px crops" if r.get("crop") else "")
        lines.append(f"| {r['run']} | {preset} | {r.get('recipe', '–')} | {amp} | {r.get('gpus', '–')} "
                     f"| {r.get('batch_size', '–')} | {r['status']}{': ' + r['reason'] if r.get('reason') else ''} "
                     f"| {fmt(r.get('pairs_per_s'))} | {fmt(r.get('pairs_per_s_wall'))} | "
                     f"{share['data_wait_fraction']} | {share['targets_fraction']} | "
                     f"{fmt(r.get('peak_gpu_mib'), '.0f')} |")
    lines += ["", "pairs/s (logged): from the step times train.py writes to metrics.jsonl (each split point waits for "
              "the GPU); pairs/s (wall): between logged steps. Data wait / targets: shares of a step spent waiting for "
              "the DataLoader / computing the five targets on the device. Peak GPU memory: "
              "`torch.cuda.max_memory_allocated` in the training process (rank 0 under DDP).", ""]
    for r in rows:
        if r.get("process_group"):
            pg = r["process_group"]
            lines.append(f"{r['run']}: process group backend **{pg.get('backend')}**, "
                         f"world size {pg.get('world_size')}.")
    for r in resumes:
        if r["status"] == "ok":
            noise = r.get("max_abs_loss_diff_before_stop")
            lines.append(f"{r['run']}: stopped after step {r['stopped_at_step']}, resumed and ran steps "
                         f"{r['steps_after_resume']}; max |loss − the uninterrupted run's| after the resume: "
                         f"{fmt(r.get('max_abs_loss_diff_vs_uninterrupted'), '.2e')}; losses before the stop "
                         f"identical: {'yes' if r.get('loss_before_stop_identical') else 'no'}"
                         f"{'' if noise is None else f' (max |difference| {noise:.2e}: the run-to-run noise)'}.")
        else:
            lines.append(f"{r['run']}: {r['status']}: {r.get('reason', '')}")
    return [*lines, ""]


def report_md(res: dict[str, Any]) -> str:
    """The markdown of ``gpu.md`` from the results dict that ``gpu.json`` holds (any subset of the parts)."""
    env = res.get("environment", {})
    lines = ["# GPU check (`make gpu-check`)", "",
             f"Measured on {res.get('gpu', '?')} × {res.get('gpu_count', '?')}, torch {res.get('torch', '?')} "
             f"(CUDA {res.get('cuda', '?')}), {res.get('created', '?')}; device `{res.get('device', '?')}`.",
             ""]  # fmt: skip
    if env.get("status") == "ok":
        versions = ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items())
        lines += [f"`nvidia-smi`: {env.get('nvidia_smi') or '–'}; CPU: {env.get('cpu', '?')} × {env.get('cpus', '?')};"
                  f" Python {env.get('python', '?')}; {versions}.", ""]
    sc = res.get("scorer", {})
    lines += ["## Scorer: parity and speed per precision mode", ""]
    not_run = [f"{sc.get('status', 'not run')}: {sc.get('reason', '')}", ""]
    lines += modes_md(sc) if sc.get("status") == "ok" else not_run
    cs = res.get("crossscore", {})
    lines += ["## CrossScore predict: fp16 autocast vs fp32", ""]
    if cs.get("status") == "ok":
        lines += [f"{cs['frames']} frames of {cs['query']}, checkpoint {cs['checkpoint']}: max |fp16 − fp32| of the "
                  f"maps **{cs['max_abs_diff']:.2e}** (mean {cs['mean_abs_diff']:.2e}; maps are SSIM in [0, 1]).", ""]
    else:
        lines += [f"{cs.get('status', 'not run')}: {cs.get('reason', '')}", ""]
    lines += _training_md(res.get("training", []))
    timing = res.get("part_seconds", {})
    if timing:
        lines += ["Seconds per part: " + ", ".join(f"{k} {v:.0f}" for k, v in timing.items()) + ".", ""]
    for i, call in enumerate(res.get("calls", [])[1:], 2):
        c = call.get("config") or {}
        lines.append(f"Call {i} ({call.get('created')}, {fmt(call.get('total_seconds'), '.0f')} s): `--runs "
                     f"{c.get('runs')} --steps {c.get('steps')}`; its rows carry `call`.")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- parts
def check_environment(cfg: GpuCheckConfig) -> dict[str, Any]:
    """Versions, the GPU as nvidia-smi reports it, and the CPU."""
    import importlib
    import importlib.metadata

    import torch

    from models.runtime import cpu_name

    versions: dict[str, Any] = {}
    for mod, dist in VERSIONED.items():
        try:
            importlib.import_module(mod)
            versions[mod] = importlib.metadata.version(dist)
        except Exception as e:  # noqa: BLE001 - a missing package is a finding, not a failure of this part
            versions[mod] = f"missing ({type(e).__name__})"
    cuda = cfg.device == "cuda"
    versions["cudnn"] = torch.backends.cudnn.version() if cuda else None
    versions["nccl"] = ".".join(map(str, torch.cuda.nccl.version())) if cuda else None
    smi = None
    if shutil.which("nvidia-smi"):
        q = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap", "--format=csv,noheader"]
        smi = subprocess.run(q, capture_output=True, text=True, timeout=30).stdout.strip() or None
    origins = {}  # where each package that must travel was imported from (the rehearsal checks it is PYTHONPATH)
    for mod in TRAVELLING_MODULES:
        try:
            origins[mod] = str(Path(importlib.import_module(mod).__file__ or "?").resolve())
        except Exception as e:  # noqa: BLE001 - recorded
            origins[mod] = f"missing ({type(e).__name__})"
    shm = shutil.disk_usage("/dev/shm").total if Path("/dev/shm").is_dir() else None  # DataLoader workers use it
    return {"status": "ok", "python": platform.python_version(), "executable": sys.executable,
            "pythonpath": os.environ.get("PYTHONPATH", ""), "versions": versions, "nvidia_smi": smi,
            "cudnn_allow_tf32_default": torch.backends.cudnn.allow_tf32, "dev_shm_bytes": shm, "origins": origins,
            "cpu": cpu_name(), "cpus": os.cpu_count()}  # fmt: skip


def check_scorer(cfg: GpuCheckConfig) -> dict[str, Any]:
    """The scorer part (benchmarks/gpu_scorer.py) on the configured device, modes, batch and repeats."""
    return measure_scorer(cfg.scorer_precisions, cfg.scorer_batch_size, cfg.scorer_repeats, cfg.device, EXAMPLES,
                          Path(cfg.reference), cfg.scorer_frames)  # fmt: skip


def check_crossscore(cfg: GpuCheckConfig) -> dict[str, Any]:
    """CrossScore maps of a few example frames with fp16 autocast vs fp32 (the same inputs), with the committed
    demo model (what ``crossscore.py predict`` uses by default), else the tiny checkpoint of make crossscore-demo."""
    import torch

    from consts import CROSSSCORE_DEMO_MODEL, CROSSSCORE_TINY_DIR, EXAMPLES_DIR
    from models.crossscore.checkpoint import load_model, short_side_for
    from models.crossscore.data import Item, collate, list_images, load_sample
    from models.crossscore.evaluate import net_predictor

    if CROSSSCORE_DEMO_MODEL.is_file():
        ckpt = str(CROSSSCORE_DEMO_MODEL)
    elif (CROSSSCORE_TINY_DIR / "model.pth").is_file():
        ckpt = str(CROSSSCORE_TINY_DIR)
    else:
        return {"status": "skipped", "reason": f"no CrossScore checkpoint: neither {CROSSSCORE_DEMO_MODEL} (committed "
                f"demo model) nor {CROSSSCORE_TINY_DIR} (made by `make crossscore-demo`); the upstream checkpoint "
                "cannot be fetched here"}  # fmt: skip
    dev = torch.device(cfg.device)
    net, _info = load_model(ckpt)
    net.to(dev)
    pool = list_images(EXAMPLES_DIR / EXAMPLES[0])
    step = max(1, len(pool) // cfg.crossscore_frames)
    queries = pool[::step][: cfg.crossscore_frames]
    short = short_side_for(-1, ckpt)
    batch = collate([load_sample(Item(q, pool, None), 5, short) for q in queries])
    half, full = net_predictor(net, dev, fp16=True)(batch), net_predictor(net, dev, fp16=False)(batch)
    d = (half - full).abs()
    return {"status": "ok", "checkpoint": ckpt, "query": EXAMPLES[0], "frames": len(queries),
            "map_shape": list(full.shape[1:]), "max_abs_diff": float(d.max()), "mean_abs_diff": float(d.mean())}


def _renders(cfg: GpuCheckConfig, tmp: Path) -> str:
    if cfg.renders:
        return cfg.renders
    from consts import EXAMPLES_DIR

    root = tmp / "renders"
    root.mkdir()
    for name in EXAMPLES:
        (root / name.replace("+", "__")).symlink_to((EXAMPLES_DIR / name).resolve(), target_is_directory=True)
    return str(root)


def check_training(cfg: GpuCheckConfig, deadline: float, rows: list[dict[str, Any]], save: Any) -> None:
    """The training runs of ``--runs`` in order (rows appended to ``rows`` and saved as each ends); after the
    resumed run's uninterrupted twin, the stop + --resume check. What would start after ``deadline`` is skipped."""
    import torch

    gpus = max(1, torch.cuda.device_count()) if cfg.device == "cuda" else 1
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        renders = _renders(cfg, Path(tmp))
        for run in parse_runs(cfg.runs):
            jobs = [("measure", run)] + ([("resume", run)] if run.label == gpu_train.RESUMED else [])
            for kind, r in jobs:
                left = deadline - time.monotonic()
                label = r.label if kind == "measure" else f"{r.label} stop + --resume"
                if left < 20:
                    rows.append({"run": label, "preset": r.preset, "recipe": r.recipe, "status": "skipped",
                                 "reason": f"time budget ({cfg.budget_s:.0f} s) spent"})  # fmt: skip
                elif kind == "measure":
                    rows.append(_guard(gpu_train.measure, r, renders, Path(tmp), cfg.steps, cfg.batch_size,
                                       cfg.workers, cfg.device, gpus, left, cfg.crop))  # fmt: skip
                else:
                    rows.append(_guard(gpu_train.measure_resume, r, renders, Path(tmp), cfg.steps, cfg.batch_size,
                                       cfg.workers, cfg.device, left, cfg.crop))  # fmt: skip
                rows[-1].setdefault("run", label)
                print(f"training {label}: {rows[-1]['status']} {rows[-1].get('reason', '')}", flush=True)
                save()


def _guard(fn: Any, *args: Any) -> dict[str, Any]:
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - one part failing must not stop the others; recorded in the report
        return failed(e)


# --------------------------------------------------------------------------------------------- the check
def problems(res: dict[str, Any]) -> list[str]:
    """What ``--strict`` refuses: a part, mode or run that failed or was skipped; a travelling package imported
    from outside PYTHONPATH (it would not be there on the GPU machine)."""
    out = [f"{k}: {res[k]['status']} {res[k].get('reason', '')}" for k in ("environment", "scorer", "crossscore")
           if res.get(k, {}).get("status") != "ok"]  # fmt: skip
    out += [f"scorer {m['requested']}: {m['status']} {m.get('reason', '')}" for m in res.get("scorer", {})
            .get("modes", []) if m.get("status") != "ok"]  # fmt: skip
    out += [f"training {r['run']}: {r['status']} {r.get('reason', '')}" for r in res.get("training", [])
            if r.get("status") != "ok"]  # fmt: skip
    env = res.get("environment", {})
    roots = [str(Path(p).resolve()) for p in env.get("pythonpath", "").split(os.pathsep) if p]
    if roots:
        out += [f"{mod} came from {where}, not from PYTHONPATH ({', '.join(roots)})" for mod, where in
                env.get("origins", {}).items() if not any(where.startswith(r + os.sep) for r in roots)]  # fmt: skip
    return out


def out_dir(cfg: GpuCheckConfig) -> Path:
    """Where the results go: --out, else $GPU_CHECK_OUT, else benchmarks/."""
    return Path(cfg.out or os.environ.get(OUT_ENV) or ROOT / "benchmarks")


def merge_calls(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Several calls' results as one: the first's parts; each later call's training runs added, replacing a run of
    the same name that was skipped or failed; every call's time and settings under ``calls``."""
    out = {**results[0], "training": list(results[0].get("training", []))}
    out["calls"] = [{k: r.get(k) for k in ("created", "config", "total_seconds", "part_seconds")} for r in results]
    for later in results[1:]:
        for row in later.get("training", []):
            if row.get("status") not in ("ok", "failed"):
                continue  # skipped there: the earlier row stands
            rows = out["training"]
            i = next((j for j, r in enumerate(rows) if r["run"] == row["run"]), None)
            if i is None:
                rows.append({**row, "call": later.get("created")})
            elif rows[i].get("status") != "ok":
                rows[i] = {**row, "call": later.get("created")}
    return out


def _merge(cfg: GpuCheckConfig) -> int:
    from models.errors import InputError
    from models.results import atomic_write_bytes, read_json, write_json

    files = [Path(p) / "gpu.json" if Path(p).is_dir() else Path(p) for p in cfg.merge]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise InputError(f"--merge: {missing[0]} not found; give gpu.json files or the folders holding them")
    res = merge_calls([read_json(f) for f in files])
    out = out_dir(cfg)
    write_json(out / "gpu.json", res)
    atomic_write_bytes(out / "gpu.md", (report_md(res) + "\n").encode())
    print(f"merged {len(files)} calls into {out / 'gpu.json'}, {out / 'gpu.md'}")
    return 0


def run(cfg: GpuCheckConfig) -> int:
    if cfg.merge:
        return _merge(cfg)
    import torch

    if cfg.device == "cuda" and not torch.cuda.is_available():
        print(NO_CUDA)
        return 0
    from models.results import atomic_write_bytes, check_writable, stamp, write_json

    out = out_dir(cfg)
    check_writable(out, "--out")
    t_start = time.monotonic()
    deadline = t_start + cfg.budget_s
    cuda = cfg.device == "cuda"
    res: dict[str, Any] = stamp(device=cfg.device, gpu=torch.cuda.get_device_name(0) if cuda else "none (CPU)",
                                gpu_count=torch.cuda.device_count() if cuda else 0, cuda=torch.version.cuda,
                                config=asdict(cfg), part_seconds={})  # fmt: skip
    print(f"gpu-check on {res['gpu']} (device {cfg.device}), budget {cfg.budget_s:.0f} s", flush=True)

    def save() -> None:
        write_json(out / "gpu.json", res)
        atomic_write_bytes(out / "gpu.md", (report_md(res) + "\n").encode())

    parts = (("environment", check_environment), ("scorer", check_scorer), ("crossscore", check_crossscore))
    for name, fn in parts:
        t0 = time.monotonic()
        if t0 > deadline:
            res[name] = {"status": "skipped", "reason": f"time budget ({cfg.budget_s:.0f} s) spent"}
        else:
            res[name] = _guard(fn, cfg)
        res["part_seconds"][name] = time.monotonic() - t0
        print(f"{name}: {res[name]['status']} {res[name].get('reason', '')} ({res['part_seconds'][name]:.0f} s)",
              flush=True)  # fmt: skip
        save()
    res["training"] = []
    t0 = time.monotonic()
    try:
        check_training(cfg, deadline, res["training"], save)
    except Exception as e:  # noqa: BLE001 - recorded; what was measured before stays
        res["training"].append({"run": "training", **failed(e)})
    res["part_seconds"]["training"] = time.monotonic() - t0
    res["total_seconds"] = time.monotonic() - t_start
    save()
    print(report_md(res))
    print(f"wrote {out / 'gpu.json'}, {out / 'gpu.md'} in {res['total_seconds']:.0f} s")
    bad = problems(res) if cfg.strict else []
    for line in bad:
        print(f"gpu-check --strict: {line}", file=sys.stderr)
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    desc = ("What only a CUDA machine can measure -> gpu.{json,md} (without CUDA: says so, writes nothing); "
            "--preset rehearse runs the same code on this CPU, small")

    def parse(a: list[str] | None) -> GpuCheckConfig:
        cfg = cli.parse(GpuCheckConfig, a, description=desc, presets=PRESETS, default_preset="gpu").config
        parse_precisions(cfg.scorer_precisions)  # a bad name: one `error:` line, before anything runs
        parse_runs(cfg.runs)
        return cfg

    return cli.main(parse, run, argv)


if __name__ == "__main__":
    sys.exit(main())
