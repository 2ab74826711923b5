"""``make gpu-check``: what only a CUDA machine can measure, in one command that fits the lent GPU machine.

    python3 -m benchmarks.gpu_check --reference .gpu/reference --out $OUT   # there (PYTHONPATH=.gpu/site)
    python -m benchmarks.gpu_check --preset rehearse --device cpu            # here: make gpu-rehearse

That machine has its own ``python3`` (torch + CUDA), no venv and no network: what it lacks travels in ``.gpu/``
(``make gpu-prepare``, benchmarks/gpu_travel.py). The parts, in this order (``--parts`` picks some), each in its
own try/except so one failure does not lose the rest, and ``gpu.json`` + ``gpu.md`` rewritten (atomically) after
each:

1. ``environment``: Python, torch, CUDA, cuDNN, NCCL, transformers, NumPy, pyfvvdp, submitit; the ``nvidia-smi``
   line; the CPU;
2. ``decode``: how fast the machine's cores decode the example's 960×768 JPEGs into the scorer's batches, by
   threads and processes (benchmarks/decode_bench.py): the ceiling, and the scorer's target in this run, the lower
   of :data:`SCORER_GOAL_FPS` and that ceiling;
3. ``scorer``: the released scorer on the two examples in each precision mode (exact, fp16, bf16, mixed) at batch
   16: the mode that ran, frames/s from the JPEG files (against the target of ``decode``), peak GPU memory, feature
   and JOD error against the release's own (benchmarks/gpu_scorer.py);
4. ``fullref``: every full-reference preset's metrics batched on the device against the CPU, value by value, with
   TF32 on and off (pass: within 1e-5 with TF32 off), and pairs/s (benchmarks/gpu_fullref.py);
5. ``crossscore``: ``predict``'s maps with fp16 autocast vs fp32 (the committed demo model);
6. ``training``: ``train.py`` for a few steps per run, full-size and cpu-smoke-sized pairs, fp32 and AMP, one run
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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # `python benchmarks/gpu_check.py`: the repository's modules must import
    sys.path.insert(0, str(ROOT))

from benchmarks import decode_bench, gpu_fullref, gpu_train  # noqa: E402
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
PARTS = ("environment", "decode", "scorer", "fullref", "crossscore", "training")  # in the order they run
SCORER_GOAL_FPS = 1500.0  # the scorer from JPEG files, end to end, unless decoding on the machine's cores is slower


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
    parts: str = opt(",".join(PARTS), f"parts to run, comma-separated (of {', '.join(PARTS)}; they run in that "
                     "order)")
    decode_frames: int = opt(240, "frames decoded per way of decoding and round (the first example's repeated)",
                             min=1)
    decode_workers: str = opt("", "decoding worker counts, comma-separated (default: 1, 2, 4, … up to the cores)")
    decode_kinds: str = opt("prefetch,threads,processes", "ways of decoding, comma-separated, of "
                            f"{', '.join(decode_bench.KINDS)} (benchmarks/decode_bench.py)")
    decode_rounds: int = opt(3, "timed decoding rounds, after a warm-up round", min=1)
    decode_s: float = opt(60.0, "seconds at most for the decoding rounds (a round that would start later is left out)",
                          min=1)
    fullref_pairs: int = opt(4, "render/ground-truth pairs per full-reference call", min=1)
    fullref_size: int = opt(0, "full-reference pairs cropped to this square side in px (0 = whole 960x768 frames)",
                            min=0)
    fullref_repeats: int = opt(3, "timed full-reference calls per metric and TF32 setting (after one)", min=1)
    fullref_presets: str = opt("", "full-reference presets, comma-separated (default: "
                               f"{', '.join(gpu_fullref.PRESETS)})")
    merge: list[str] = opt([], "measure nothing: combine the gpu.json of earlier calls (files or folders, first = "
                           "base) into --out; a later call's parts and training runs replace the same ones missing, "
                           "skipped or failed before", metavar="GPU_JSON")
    strict: bool = opt(False, "exit 1 when anything failed or was skipped, or a travelling package was imported "
                       "from outside PYTHONPATH (the rehearsal's pass criterion)")


# The rehearsal on a 2-core CPU: every code path of the check, small (fp16/bf16/mixed fall back or run emulated).
PRESETS = {
    "gpu": {},
    "rehearse": {"device": "cpu", "budget_s": 1500.0, "steps": 2, "batch_size": 2, "workers": 1, "crop": 72,
                 "scorer_repeats": 1, "scorer_frames": 3, "scorer_batch_size": 2, "crossscore_frames": 1,
                 "decode_frames": 8, "decode_workers": "1,2", "decode_kinds": ",".join(decode_bench.KINDS),
                 "decode_rounds": 1, "fullref_pairs": 2, "fullref_repeats": 1,
                 "fullref_size": 176,  # MS-SSIM's five scales need a side over 160 px
                 "strict": True},
}


def parse_parts(spec: str) -> list[str]:
    """``--parts`` -> the parts in the check's order (:data:`PARTS`); an unknown or empty name is one error line."""
    names = [x.strip() for x in spec.split(",")]
    bad = [x for x in names if x not in PARTS]
    if bad:
        from models.errors import InputError

        raise InputError(f"--parts {spec}: {bad[0]!r} is not a part; choose from {', '.join(PARTS)}")
    return [x for x in PARTS if x in names]


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


def fed_at_rate(res: dict[str, Any]) -> dict[str, Any] | None:
    """Each scorer mode's frames/s from the JPEG files against this run's target (the lower of
    :data:`SCORER_GOAL_FPS` and the decoding ceiling), or None without both parts of one call."""
    dec, sc = res.get("decode", {}), res.get("scorer", {})
    target = dec.get("target_fps")
    if target is None or sc.get("status") != "ok" or dec.get("call") != sc.get("call"):
        return None
    fps = {m["requested"]: m["frames_per_s"] for m in sc["modes"] if m.get("status") == "ok"}
    return {"goal_fps": dec["goal_fps"], "ceiling_fps": dec["ceiling_fps"], "target_fps": target,
            "frames_per_s": fps, "met": {k: v >= target for k, v in fps.items()}}  # fmt: skip


def _decode_md(dec: dict[str, Any]) -> list[str]:
    """The decoding part of the report: the rows, the ceiling and the scorer's target."""
    w, h = dec["size"]
    target = decode_bench.fmt_fps(dec.get("target_fps"))
    return [f"{dec['frames']} frames of {w}×{h} ({Path(dec['example']).name}, repeated) in batches of "
            f"{dec['batch_size']} on {dec['cores']} usable cores of {dec['cpu']} ({dec['cpu_id']}); OpenCV "
            f"{dec['opencv']} (JPEG: {dec['jpeg']}); timed rounds: {dec['rounds']}, after a warm-up.", "",
            *decode_bench.rows_md(dec), "",
            f"{decode_bench.ceiling_line(dec)} The scorer's target in this run: the lower of {dec['goal_fps']:.0f} "
            f"frames/s and the ceiling, **{target} frames/s**.", ""]  # fmt: skip


def _crossscore_md(cs: dict[str, Any]) -> list[str]:
    """The CrossScore part of the report: the largest and mean difference of the maps."""
    return [f"{cs['frames']} frames of {cs['query']}, checkpoint {cs['checkpoint']}: max |fp16 − fp32| of the maps "
            f"**{cs['max_abs_diff']:.2e}** (mean {cs['mean_abs_diff']:.2e}; maps are SSIM in [0, 1]).", ""]


def _fed_md(fed: dict[str, Any] | None) -> list[str]:
    """One line: each scorer mode's frames/s against this run's target."""
    if fed is None:
        return []
    modes = ", ".join(f"{k} {v:.1f} ({'met' if fed['met'][k] else '**not met**'})"
                      for k, v in fed["frames_per_s"].items())  # fmt: skip
    return [f"From the JPEG files, end to end, against this run's target of {fed['target_fps']:.0f} frames/s (the "
            f"lower of {fed['goal_fps']:.0f} and the decoding ceiling {fed['ceiling_fps']:.0f}): {modes}.", ""]


# the parts with a section of their own, in the report's order: (key, title, the lines of a part that ran)
SECTIONS: tuple[tuple[str, str, Callable[[dict[str, Any]], list[str]]], ...] = (
    ("decode", "Decoding the frames (the scorer's feed; benchmarks/decode_bench.py)", _decode_md),
    ("scorer", "Scorer: parity and speed per precision mode", modes_md),
    ("fullref", "Full-reference metrics: device against CPU (benchmarks/gpu_fullref.py)", gpu_fullref.report_lines),
    ("crossscore", "CrossScore predict: fp16 autocast vs fp32", _crossscore_md),
)


def _section(part: dict[str, Any], title: str, body: Callable[[dict[str, Any]], list[str]]) -> list[str]:
    """A part's section: its lines where it ran, else its status and why."""
    lines = body(part) if part.get("status") == "ok" else [f"{part.get('status')}: {part.get('reason', '')}", ""]
    return [f"## {title}", "", *lines]


def _calls_md(res: dict[str, Any]) -> list[str]:
    """One line per call merged after the first."""
    out = []
    for i, call in enumerate(res.get("calls", [])[1:], 2):
        c = call.get("config") or {}
        parts = f"--parts {c['parts']} " if c.get("parts") else ""
        out.append(f"Call {i} ({call.get('created')}, {fmt(call.get('total_seconds'), '.0f')} s): `{parts}--runs "
                   f"{c.get('runs')} --steps {c.get('steps')}`; what it added carries `call`.")
    return out


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
    for key, title, body in SECTIONS:
        if key in res:
            lines += _section(res[key], title, body)
        if key == "scorer":
            lines += _fed_md(fed_at_rate(res))
    lines += _training_md(res["training"]) if "training" in res else []
    timing = res.get("part_seconds", {})
    if timing:
        lines += ["Seconds per part: " + ", ".join(f"{k} {v:.0f}" for k, v in timing.items()) + ".", ""]
    return "\n".join(lines + _calls_md(res))


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


def check_decode(cfg: GpuCheckConfig, deadline: float) -> dict[str, Any]:
    """The decoding rows of benchmarks/decode_bench.py on the first example's frames, in the scorer's batches,
    within ``--decode-s`` (and ``deadline``); the ceiling and the scorer's target in this run."""
    from consts import EXAMPLES_DIR
    from models.nvs_sqa.feed import usable_cores

    counts = decode_bench.worker_counts(cfg.decode_workers, usable_cores(), "--decode-workers")
    kinds = decode_bench.parse_kinds(cfg.decode_kinds, "--decode-kinds")
    end = min(deadline, time.monotonic() + cfg.decode_s)
    res = decode_bench.measure(cfg.decode_frames, EXAMPLES_DIR / EXAMPLES[0], counts, kinds, cfg.decode_rounds,
                               cfg.scorer_batch_size, deadline=end)  # fmt: skip
    ceiling = res["ceiling_fps"]
    return {**res, "goal_fps": SCORER_GOAL_FPS, "target_fps": None if ceiling is None else min(SCORER_GOAL_FPS,
                                                                                                  ceiling)}  # fmt: skip


def check_fullref(cfg: GpuCheckConfig, deadline: float) -> dict[str, Any]:
    """The full-reference part (benchmarks/gpu_fullref.py) on the configured device, pairs, size and presets."""
    presets = gpu_fullref.parse_presets(cfg.fullref_presets)
    return gpu_fullref.measure(cfg.device, cfg.fullref_pairs, presets, cfg.fullref_size, cfg.fullref_repeats,
                               deadline)  # fmt: skip


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


def run_part(name: str, cfg: GpuCheckConfig, res: dict[str, Any], deadline: float, save: Callable[[], None]) -> None:
    """One part of :data:`PARTS` into ``res[name]``: its results, or its failure, or skipped when the budget is
    spent; training's runs are saved as each ends."""
    if name == "training":
        res["training"] = []
        try:
            check_training(cfg, deadline, res["training"], save)
        except Exception as e:  # noqa: BLE001 - recorded; what was measured before stays
            res["training"].append({"run": "training", **failed(e)})
        return
    checks = {"environment": lambda: check_environment(cfg), "decode": lambda: check_decode(cfg, deadline),
              "scorer": lambda: check_scorer(cfg), "fullref": lambda: check_fullref(cfg, deadline),
              "crossscore": lambda: check_crossscore(cfg)}  # fmt: skip
    t0 = time.monotonic()
    if t0 > deadline:
        res[name] = {"status": "skipped", "reason": f"time budget ({cfg.budget_s:.0f} s) spent"}
    else:
        res[name] = _guard(checks[name])
    print(f"{name}: {res[name]['status']} {res[name].get('reason', '')} ({time.monotonic() - t0:.0f} s)", flush=True)


def _guard(fn: Any, *args: Any) -> dict[str, Any]:
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - one part failing must not stop the others; recorded in the report
        return failed(e)


# --------------------------------------------------------------------------------------------- the check
def problems(res: dict[str, Any]) -> list[str]:
    """What ``--strict`` refuses: a part that ran, or a mode, run or full-reference preset of one, that failed or
    was skipped; a full-reference value over its tolerance with TF32 off; a travelling package imported from
    outside PYTHONPATH (it would not be there on the GPU machine)."""
    out = [f"{k}: {res[k]['status']} {res[k].get('reason', '')}" for k in PARTS[:-1]
           if k in res and res[k].get("status") != "ok"]  # fmt: skip
    out += gpu_fullref.problems(res["fullref"]) if res.get("fullref", {}).get("status") == "ok" else []
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
    """Several calls' results as one: the first's parts; a later call's part where the first lacks it or has it
    skipped or failed, and its training runs added, replacing a run of the same name that was skipped or failed
    (each taken row or part carries ``call``); every call's time and settings under ``calls``."""
    out = {**results[0], "training": list(results[0].get("training", []))}
    out["calls"] = [{k: r.get(k) for k in ("created", "config", "total_seconds", "part_seconds")} for r in results]
    for later in results[1:]:
        for part in PARTS[:-1]:
            if later.get(part, {}).get("status") in ("ok", "failed") and out.get(part, {}).get("status") != "ok":
                out[part] = {**later[part], "call": later.get("created")}
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
    res["fed"] = fed_at_rate(res)
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
        res["fed"] = fed_at_rate(res)
        write_json(out / "gpu.json", res)
        atomic_write_bytes(out / "gpu.md", (report_md(res) + "\n").encode())

    for name in parse_parts(cfg.parts):
        t0 = time.monotonic()
        run_part(name, cfg, res, deadline, save)
        res["part_seconds"][name] = time.monotonic() - t0
        save()
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
        parse_parts(cfg.parts)
        decode_bench.parse_kinds(cfg.decode_kinds, "--decode-kinds")
        decode_bench.worker_counts(cfg.decode_workers, 1, "--decode-workers")
        gpu_fullref.parse_presets(cfg.fullref_presets)
        return cfg

    return cli.main(parse, run, argv)


if __name__ == "__main__":
    sys.exit(main())
