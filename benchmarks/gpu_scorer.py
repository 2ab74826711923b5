"""The scorer part of ``make gpu-check`` (benchmarks/gpu_check.py): the released NVS-SQA scorer on the examples in
each precision mode — the mode that ran, frames/s, peak GPU memory, feature and JOD errors against the release's own
(``../shared/reference``), whether a scene's examples keep exact's order — and its lines of ``gpu.md``.

The device is an argument (gpu_check passes its ``DEVICE``; the tests run the same code on the CPU).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from models.errors import InputError

FEATURE_TOL = 1e-4  # the CPU parity test's tolerance (tests/nvs_sqa/test_network.py)
SCORER_PRECISIONS = ("exact", "fp16", "bf16", "mixed")  # = models.nvs_sqa.precision.PRECISIONS (no torch import)


def fmt(v: Any, spec: str = ".3g") -> str:
    """A table cell: "–" for None, floats with ``spec``."""
    return "–" if v is None else format(v, spec) if isinstance(v, float) else str(v)


def parse_precisions(spec: str) -> list[str]:
    """``--scorer-precisions`` ("exact,fp16") -> the modes, in order, each once; an unknown or empty name is one
    :class:`InputError` line."""
    modes = [m.strip() for m in spec.split(",")]
    bad = [m for m in modes if m not in SCORER_PRECISIONS]
    if bad:
        raise InputError(f"--scorer-precisions {spec}: {bad[0]!r} is not a precision mode; give a comma-separated "
                         f"list of {', '.join(SCORER_PRECISIONS)}")
    return list(dict.fromkeys(modes))


def scene_order(jod: dict[str, float]) -> dict[str, list[str]]:
    """Per scene (an example's name before "+") with at least two examples: their names, highest JOD first."""
    scenes: dict[str, list[str]] = {}
    for name in jod:
        scenes.setdefault(name.split("+", 1)[0], []).append(name)
    return {s: sorted(names, key=lambda n: -jod[n]) for s, names in scenes.items() if len(names) >= 2}


def failed(e: BaseException) -> dict[str, Any]:
    """A part (or mode) that raised: its status and the last line of its error."""
    text = str(e).strip().splitlines()
    return {"status": "failed", "reason": f"{type(e).__name__}: {text[-1] if text else ''}"[:400]}


def sync(device: str) -> None:
    """Wait for the GPU's queued work before reading the clock (nothing to wait for elsewhere)."""
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def modes_md(sc: dict[str, Any]) -> list[str]:
    """The scorer part of the report: one row per precision mode (speed, memory, order), one per mode × example."""
    lines = [f"Batch {sc.get('batch_size', '?')}, after a warm-up pass; reference: {sc.get('reference', '?')}.", "",
             "| mode | ran as | frames/s | ms/frame | peak GPU MiB | max abs feature diff vs exact "
             "| within-scene order as exact |", "|---|---|---|---|---|---|---|"]
    for m in sc["modes"]:
        if m.get("status", "ok") != "ok":
            lines.append(f"| {m['requested']} | {m['status']}: {m.get('reason', '')} | – | – | – | – | – |")
            continue
        ran = m["ran"] if m["ran"] == m["requested"] else f"**{m['ran']}** (fallback, see below)"
        same = m.get("same_order_as_exact")
        lines.append(f"| {m['requested']} | {ran} | {fmt(m['frames_per_s'], '.1f')} | {fmt(m['ms_per_frame'], '.2f')}"
                     f" | {fmt(m.get('peak_gpu_mib'), '.0f')} | {fmt(m.get('max_abs_diff_vs_exact'), '.2e')} | "
                     f"{fmt(None if same is None else 'yes' if same else '**no**')} |")
    lines += ["", "| mode | example | frames | max abs feature diff | ≤ 1e-4 | JOD | JOD − reference |",
              "|---|---|---|---|---|---|---|"]
    for m in sc["modes"]:
        for e in m.get("examples", []):
            d, judged = e.get("max_abs_diff"), m["requested"] in ("exact", "mixed")  # fp16/bf16: the error only
            ok = "–" if d is None or not judged else "yes" if d <= FEATURE_TOL else "**no**" if m["requested"] == \
                "exact" else "no"  # fmt: skip
            lines.append(f"| {m['requested']} | {e['name']} | {e['frames']} | {fmt(d, '.2e')} | {ok} | "
                         f"{fmt(e.get('jod'), '.4f')} | {fmt(e.get('jod_diff'), '+.2e')} |")
    lines += ["", "≤ 1e-4: the pass criterion for exact (as the CPU parity test); shown for mixed without pass/fail; "
              "fp16 and bf16: the error only. Peak GPU memory: `torch.cuda.max_memory_allocated` from loading the "
              "model to the end of the timed passes. Order: the examples of each scene sorted by JOD, as in exact."]
    fallbacks = [f"- {m['requested']} ran as {m['ran']}: {m['fallback']}" for m in sc["modes"] if m.get("fallback")]
    lines += ["", *fallbacks] if fallbacks else []
    return [*lines, ""]


def measure_mode(mode: str, folders: dict[str, Any], frames: dict[str, int], batch_size: int, repeats: int,
                 device: str, ref: dict[str, Any], ref_jod: dict[str, float]) -> dict[str, Any]:
    """One precision mode of the scorer: the mode that ran, frames/s, peak GPU memory, errors vs the reference."""
    import gc

    import numpy as np
    import torch

    from models.nvs_sqa import NVSSQA
    from models.nvs_sqa.precision import resolve_precision

    cuda = device == "cuda"
    why = resolve_precision(mode, torch.device(device))[1]  # why the mode that runs is not ``mode`` (if it is not)
    if cuda:  # this mode's peak alone: the previous mode's model went with the previous call
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model = NVSSQA.from_checkpoint(None, device=device, precision=mode)
    bs = batch_size
    feats = {n: model.features(f, batch_size=bs) for n, f in folders.items()}  # warm-up (cuDNN) + compared
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        for f in folders.values():
            model.features(f, batch_size=bs)
    sync(device)
    seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    jod = {n: float(model.predict(v)[0]) for n, v in feats.items()}
    rows = [{"name": n, "frames": frames[n], "jod": jod[n],
             "max_abs_diff": float(np.abs(feats[n] - ref[n]).max()) if n in ref else None,
             "jod_diff": jod[n] - ref_jod[n] if n in ref_jod else None} for n in folders]  # fmt: skip
    done = repeats * sum(frames.values())
    return {"requested": mode, "ran": model.precision, "fallback": why if model.precision != mode else None,
            "status": "ok", "frames_per_s": done / seconds, "ms_per_frame": seconds / done * 1000,
            "peak_gpu_mib": peak, "examples": rows, "order": scene_order(jod), "features": feats}


def measure(precisions: str, batch_size: int, repeats: int, device: str, examples: tuple[str, ...],
            reference: Path, max_frames: int = 0) -> dict[str, Any]:
    """The examples scored in each precision mode at ``batch_size``: speed, peak GPU memory, feature and JOD errors
    vs the release's own (``reference``: a folder of features.npz and scores.json; exact: <= 1e-4), and whether a
    scene's examples keep exact's order by JOD. ``max_frames`` > 0 scores only each example's first frames (the
    rehearsal on a CPU): the reference is of whole sequences, so parity is then not checked."""
    import numpy as np

    from consts import EXAMPLES_DIR, RELEASED
    from models.frames import is_image, natural_key
    from models.results import read_npz

    modes = parse_precisions(precisions)
    if not (RELEASED.dir / "model.pth").is_file():
        return {"status": "skipped", "reason": "released weights missing: run `make setup` (or carry checkpoints/)"}
    ref_file, jod_file = Path(reference) / "features.npz", Path(reference) / "scores.json"
    whole = max_frames <= 0
    ref = read_npz(ref_file) if whole and ref_file.is_file() else {}
    scores = json.loads(jod_file.read_text()) if whole and jod_file.is_file() else {}
    ref_jod = {k: float(v["score"] if isinstance(v, dict) else v) for k, v in scores.items()}  # {name: {"score": ..}}
    folders: dict[str, Any] = {}
    for name in examples:
        files = sorted((p for p in (EXAMPLES_DIR / name).iterdir() if is_image(p)), key=lambda p: natural_key(p.name))
        folders[name] = files if whole else files[:max_frames]
    frames = {n: len(f) for n, f in folders.items()}
    out: list[dict[str, Any]] = []
    for mode in modes:
        try:
            out.append(measure_mode(mode, folders, frames, batch_size, repeats, device, ref, ref_jod))
        except Exception as e:  # noqa: BLE001 - e.g. out of memory in one mode: the others still run
            out.append({"requested": mode, **failed(e)})
    feats = {m["requested"]: m.pop("features") for m in out if "features" in m}  # not for gpu.json
    exact = next((m for m in out if m["requested"] == "exact" and m["status"] == "ok"), None)
    for m in out:
        if m["status"] == "ok" and exact is not None and m is not exact:  # the precision's own effect on this GPU
            m["same_order_as_exact"] = m["order"] == exact["order"] if exact["order"] else None
            m["max_abs_diff_vs_exact"] = max(float(np.abs(feats[m["requested"]][n] - feats["exact"][n]).max())
                                             for n in folders)  # fmt: skip
    diffs = [e["max_abs_diff"] for e in exact["examples"]] if exact else [None]
    parity = None if None in diffs else all(d <= FEATURE_TOL for d in diffs)  # None: not checked (no reference)
    why = f"only the first {max_frames} frames of each example: parity not checked"
    return {"status": "ok", "modes": out, "tolerance": FEATURE_TOL, "parity": parity,
            "reference": str(ref_file) if ref else why if not whole else f"{ref_file} missing: parity not checked",
            "reference_scores": str(jod_file) if ref_jod else f"{jod_file}: JOD not compared",
            "batch_size": batch_size, "repeats": repeats, "frames_per_example": frames}
