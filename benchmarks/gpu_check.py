"""``make gpu-check``: what only a CUDA machine can measure, in one command -> ``benchmarks/gpu.{json,md}``.

    python -m benchmarks.gpu_check            # from the repository root (also: python benchmarks/gpu_check.py)

1. the scorer on CUDA in each precision mode (``--scorer-precisions``, default exact,fp16,bf16,mixed) at batch 16
   (``--scorer-batch-size``): the mode that ran (a GPU without bfloat16 runs exact instead), frames/s after a
   warm-up pass, peak GPU memory, per example the max |feature difference| from
   ``../shared/reference/features.npz`` (exact: <= 1e-4, as the CPU parity test) and the JOD difference from
   ``scores.json``, and whether the order of the examples of one scene by JOD is exact's (benchmarks/gpu_scorer.py);
2. ``train.py`` (preset ``full``, or ``paper`` where that is still its name: read from ``train.py --help``) for a
   few steps in fp32 and with ``--amp``, each in its own process: pairs/s and the share of a step spent waiting
   for data from its ``runs/<name>/metrics.jsonl``, peak GPU memory from ``torch.cuda.max_memory_allocated``
   (the child below records it);
3. DDP over every visible GPU with NCCL (``torch.distributed.run``) when there are at least 2, else "1 GPU: skipped";
4. CrossScore ``predict`` in fp16 autocast vs fp32: max |difference| of the maps on a few example frames (the
   committed demo model ``examples/.crossscore-demo.pth``, else the tiny checkpoint of ``make crossscore-demo``;
   skipped with the reason when neither is there).

A part that fails is recorded as failed (with the tail of its error) and the others still run. Without CUDA it
prints one line and exits 0 without writing anything.
"""

from __future__ import annotations

import json
import os
import re
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

from benchmarks.gpu_scorer import FEATURE_TOL, SCORER_PRECISIONS, failed, fmt, modes_md, parse_precisions, sync  # noqa: E402
from benchmarks.gpu_scorer import measure as measure_scorer  # noqa: E402
from consts import EXAMPLE_SEQUENCES  # noqa: E402
from models import cli  # noqa: E402
from models.cli import opt  # noqa: E402

NO_CUDA = "gpu-check: no CUDA device here (torch.cuda.is_available() is False): nothing measured, nothing written"
CHILD_FLAG = "--train-child"  # internal: run train.py in this process and record its peak GPU memory
EXAMPLES = EXAMPLE_SEQUENCES  # what the scorer and CrossScore parts run on (the tests set made-up ones)
DEVICE = "cuda"  # what every part runs on (the tests set "cpu" to run the same code without a GPU)


@dataclass
class GpuCheckConfig:
    """Flags of ``python -m benchmarks.gpu_check`` (make gpu-check)."""

    steps: int = opt(6, "training steps per run; the first is warm-up and not counted", min=2)
    batch_size: int = opt(16, "training pairs per step (global; the paper's 16)", min=1)
    workers: int = opt(4, "train.py --workers (DataLoader processes computing pairs and targets)", min=0)
    renders: str = opt("", "training renders (default: the two examples linked into a temporary folder)")
    scorer_repeats: int = opt(3, "timed passes over each example (after one warm-up pass)", min=1)
    scorer_precisions: str = opt(",".join(SCORER_PRECISIONS), "scorer precision modes to measure, comma-separated "
                                 f"(of {', '.join(SCORER_PRECISIONS)}; exact is the one held to 1e-4)")
    scorer_batch_size: int = opt(16, "frames per scorer network call", min=1)
    crossscore_frames: int = opt(4, "example frames scored by CrossScore in fp16 and fp32", min=1)
    out: str = opt("benchmarks", "folder for gpu.json and gpu.md")


# --------------------------------------------------------------------------------------------- pure helpers
def pick_preset(help_text: str) -> str:
    """The training preset to measure, from ``train.py --help``: ``full`` if offered, else ``paper``."""
    m = re.search(r"--preset \{([^}]*)\}", help_text)
    choices = [c.strip() for c in m.group(1).split(",")] if m else []
    for name in ("full", "paper"):
        if name in choices:
            return name
    raise RuntimeError(f"train.py --help offers no full/paper preset (choices: {choices or 'none found'})")


def train_args(preset: str, renders: str, runs_dir: str, name: str, cfg: GpuCheckConfig, amp: bool) -> list[str]:
    """train.py flags of one measured run: ``steps`` steps inside one epoch (no validation), fresh weights."""
    repeats = cfg.batch_size * (cfg.steps + 1)  # the examples are one scene: one epoch must hold every step
    return ["--preset", preset, "--renders", renders, "--runs-dir", runs_dir, "--name", name, "--device", DEVICE,
            "--amp" if amp else "--no-amp", "--batch-size", str(cfg.batch_size), "--scene-repeats", str(repeats),
            "--epochs", "1", "--val-pairs", "0", "--workers", str(cfg.workers), "--stop-after-steps", str(cfg.steps)]


def summarize_steps(rows: list[dict[str, Any]], stamps: list[float] | None = None, warmup: int = 1) -> dict[str, Any]:
    """pairs/s and the data-wait share from train.py's metrics.jsonl rows (``warmup`` steps left out).

    ``stamps``: wall-clock times at which each step was logged (after the loss was read back, so the GPU had
    finished it); they give pairs/s over wall time as well, since the loop's own timers do not synchronize."""
    steps = [r for r in rows if r.get("kind") == "step"]
    kept = steps[warmup:]
    if not kept:
        raise RuntimeError(f"metrics.jsonl has {len(steps)} step row(s), fewer than {warmup + 1}")
    step_s = [r["data_s"] + r.get("targets_s", 0.0) + r["forward_s"] + r["backward_s"] for r in kept]
    pairs = sum(r["pairs"] for r in kept)
    out = {"measured_steps": len(kept), "pairs": pairs, "pairs_per_s": pairs / sum(step_s),
           "step_s": sum(step_s) / len(kept), "data_wait_fraction": sum(r["data_s"] for r in kept) / sum(step_s)}
    if warmup >= 1 and stamps and len(stamps) == len(steps) and stamps[-1] > stamps[warmup - 1]:
        out["pairs_per_s_wall"] = pairs / (stamps[-1] - stamps[warmup - 1])  # end of warm-up -> end of the last
    return out


def report_md(res: dict[str, Any]) -> str:
    """The markdown of ``benchmarks/gpu.md`` from the results dict that ``gpu.json`` holds."""
    lines = ["# GPU check (`make gpu-check`)", "",
             f"Measured on {res.get('gpu', '?')} × {res.get('gpu_count', '?')}, torch {res.get('torch', '?')} "
             f"(CUDA {res.get('cuda', '?')}), {res.get('created', '?')}.", ""]  # fmt: skip
    sc = res.get("scorer", {})
    lines += ["## Scorer on CUDA: parity and speed", ""]
    if sc.get("status") == "ok" and "modes" in sc:
        lines += modes_md(sc)
    elif sc.get("status") == "ok":  # a gpu.json from before the precision sweep: exact only
        lines += ["| example | frames | max abs feature diff | ≤ 1e-4 | ms/frame |", "|---|---|---|---|---|"]
        for e in sc["examples"]:
            ok = "–" if e.get("max_abs_diff") is None else "yes" if e["max_abs_diff"] <= FEATURE_TOL else "**no**"
            lines.append(f"| {e['name']} | {e['frames']} | {fmt(e.get('max_abs_diff'), '.2e')} | {ok} | "
                         f"{fmt(e['ms_per_frame'], '.2f')} |")
        lines.append("")
    else:
        lines += [f"{sc.get('status', 'not run')}: {sc.get('reason', '')}", ""]
    lines += ["## Training (`train.py`, a few steps; first step not counted)", "",
              "| run | preset | GPUs | batch | status | pairs/s (logged) | pairs/s (wall) | data wait | peak GPU MiB |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in res.get("training", []):
        mib = r.get("peak_gpu_mib")
        lines.append(f"| {r['run']} | {r.get('preset', '–')} | {r.get('gpus', '–')} | {r.get('batch_size', '–')} | "
                     f"{r['status']}{': ' + r['reason'] if r.get('reason') else ''} | {fmt(r.get('pairs_per_s'))} "
                     f"| {fmt(r.get('pairs_per_s_wall'))} | "
                     f"{fmt(r.get('data_wait_fraction') * 100, '.1f') + ' %' if 'data_wait_fraction' in r else '–'}"
                     f" | {fmt(mib, '.0f')} |")
    lines += ["", "pairs/s (logged): from the step times train.py writes to metrics.jsonl (its timers do not "
              "wait for the GPU); pairs/s (wall): between the logged steps, each logged after its loss was read "
              "back. Peak GPU memory: `torch.cuda.max_memory_allocated` in the training process (rank 0 for DDP).",
              ""]
    cs = res.get("crossscore", {})
    lines += ["## CrossScore predict: fp16 autocast vs fp32", ""]
    if cs.get("status") == "ok":
        lines += [f"{cs['frames']} frames of {cs['query']}, checkpoint {cs['checkpoint']}: max |fp16 − fp32| of the "
                  f"maps **{cs['max_abs_diff']:.2e}** (mean {cs['mean_abs_diff']:.2e}; maps are SSIM in [0, 1]).", ""]
    else:
        lines += [f"{cs.get('status', 'not run')}: {cs.get('reason', '')}", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- measurements
def check_scorer(cfg: GpuCheckConfig) -> dict[str, Any]:
    """The scorer part (benchmarks/gpu_scorer.py) on ``DEVICE`` with the configured modes, batch and repeats."""
    return measure_scorer(cfg.scorer_precisions, cfg.scorer_batch_size, cfg.scorer_repeats, DEVICE, EXAMPLES)


def _renders(cfg: GpuCheckConfig, tmp: Path) -> str:
    if cfg.renders:
        return cfg.renders
    from consts import EXAMPLES_DIR

    root = tmp / "renders"
    root.mkdir()
    for name in EXAMPLES:
        (root / name.replace("+", "__")).symlink_to((EXAMPLES_DIR / name).resolve(), target_is_directory=True)
    return str(root)


def run_training(label: str, preset: str, cfg: GpuCheckConfig, tmp: Path, amp: bool, gpus: int = 1) -> dict[str, Any]:
    """One train.py run in a child process (torch.distributed.run with ``gpus`` > 1); its numbers or why not."""
    row: dict[str, Any] = {"run": label, "preset": preset, "gpus": gpus, "batch_size": cfg.batch_size, "amp": amp}
    runs, record = tmp / "runs", tmp / f"{label}.child"
    args = train_args(preset, _renders(cfg, tmp), str(runs), label, cfg, amp)
    child = ["-m", "benchmarks.gpu_check", CHILD_FLAG, str(record), "--", *args]
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}"] if gpus > 1 else []
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *launcher, *child], cwd=ROOT, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)  # fmt: skip
    row["wall_s_incl_startup"] = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {**row, "status": "failed", "reason": f"exit {proc.returncode}: {' | '.join(tail)}"[:600]}
    try:
        rows = [json.loads(x) for x in (runs / label / "metrics.jsonl").read_text().splitlines() if x.strip()]
        rank0 = json.loads(Path(f"{record}.rank0.json").read_text())
        row.update(summarize_steps(rows, rank0.get("step_stamps")))
        row["peak_gpu_mib"] = rank0["peak_bytes"] / 2**20
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        return {**row, **failed(e)}
    return {**row, "status": "ok"}


def check_crossscore(cfg: GpuCheckConfig) -> dict[str, Any]:
    """CrossScore maps of a few example frames with fp16 autocast vs fp32 on CUDA (the same inputs), with the committed
    demo model (what ``crossscore.py predict`` uses by default), else the tiny checkpoint of make crossscore-demo."""
    import torch

    from consts import CROSSSCORE_DEMO_MODEL, CROSSSCORE_TINY_DIR, EXAMPLES_DIR
    from models.crossscore.checkpoint import load_model
    from models.crossscore.data import Item, collate, list_images, load_sample
    from models.crossscore.evaluate import net_predictor
    from models.crossscore.predict import short_side_for

    if CROSSSCORE_DEMO_MODEL.is_file():
        ckpt = str(CROSSSCORE_DEMO_MODEL)
    elif (CROSSSCORE_TINY_DIR / "model.pth").is_file():
        ckpt = str(CROSSSCORE_TINY_DIR)
    else:
        return {"status": "skipped", "reason": f"no CrossScore checkpoint: neither {CROSSSCORE_DEMO_MODEL} (committed "
                f"demo model) nor {CROSSSCORE_TINY_DIR} (made by `make crossscore-demo`); the upstream checkpoint "
                "cannot be fetched here"}  # fmt: skip
    dev = torch.device(DEVICE)
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


def _sync() -> None:
    sync(DEVICE)


def _guard(fn, *args: Any) -> dict[str, Any]:
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - one part failing must not stop the others; recorded in the report
        return failed(e)


def run(cfg: GpuCheckConfig) -> int:
    import torch

    if not torch.cuda.is_available():
        print(NO_CUDA)
        return 0
    from models.results import atomic_write_bytes, stamp, write_json

    n = torch.cuda.device_count()
    res: dict[str, Any] = {"gpu": torch.cuda.get_device_name(0), "gpu_count": n, "cuda": torch.version.cuda,
                           "config": asdict(cfg)}
    print(f"gpu-check on {res['gpu']} × {n}", flush=True)
    res["scorer"] = _guard(check_scorer, cfg)
    print(f"scorer: {res['scorer']['status']}", flush=True)
    help_text = subprocess.run([sys.executable, "train.py", "--help"], cwd=ROOT, capture_output=True,
                               text=True).stdout  # fmt: skip
    training: list[dict[str, Any]] = []
    try:
        preset = pick_preset(help_text)
    except RuntimeError as e:
        training.append({"run": "train.py", **failed(e)})
    else:
        with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
            for label, amp in (("fp32", False), ("amp", True)):
                training.append(run_training(label, preset, cfg, Path(tmp), amp))
                print(f"training {label}: {training[-1]['status']}", flush=True)
            if n >= 2:
                training.append(run_training(f"ddp-{n}gpu-amp", preset, cfg, Path(tmp), True, gpus=n))
            else:
                training.append({"run": "ddp", "preset": preset, "gpus": 1, "status": "skipped",
                                 "reason": "1 GPU: skipped"})
    res["training"] = training
    res["crossscore"] = _guard(check_crossscore, cfg)
    out = Path(cfg.out)
    res = stamp(**res)
    write_json(out / "gpu.json", res)
    md = report_md(res)
    atomic_write_bytes(out / "gpu.md", (md + "\n").encode())
    print(md)
    print(f"wrote {out / 'gpu.json'}, {out / 'gpu.md'}")
    return 0


# --------------------------------------------------------------------------------------------- the training child
def train_child(record: str, args: list[str]) -> int:
    """Run train.py with ``args`` in this process; write its peak GPU memory and the wall time of each logged
    step to ``<record>.rank<RANK>.json`` (the patch of ``MetricsLog.add`` is optional: without it, no stamps)."""
    import runpy

    import torch

    stamps: list[float] = []
    try:
        from models.training import run_folder

        add = run_folder.MetricsLog.add

        def timed_add(self: Any, row: dict[str, Any]) -> Any:
            if row.get("kind") == "step":
                stamps.append(time.perf_counter())
            return add(self, row)

        run_folder.MetricsLog.add = timed_add
    except (ImportError, AttributeError):
        pass
    sys.argv = [str(ROOT / "train.py"), *args]
    code: int = 0
    try:
        runpy.run_path(str(ROOT / "train.py"), run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        local = int(os.environ.get("LOCAL_RANK", 0))
        peak = torch.cuda.max_memory_allocated(local) if torch.cuda.is_available() else 0
        Path(f"{record}.rank{os.environ.get('RANK', '0')}.json").write_text(
            json.dumps({"peak_bytes": peak, "step_stamps": stamps}))
    return code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [CHILD_FLAG]:
        return train_child(argv[1], argv[3:] if argv[2:3] == ["--"] else argv[2:])
    desc = "What only a CUDA machine can measure -> benchmarks/gpu.{json,md} (without CUDA: says so, writes nothing)"

    def parse(a: list[str] | None) -> GpuCheckConfig:
        cfg = cli.parse(GpuCheckConfig, a, description=desc).config
        parse_precisions(cfg.scorer_precisions)  # a bad mode name: one `error:` line, before anything runs
        return cfg

    return cli.main(parse, run, argv)


if __name__ == "__main__":
    sys.exit(main())
