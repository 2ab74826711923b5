"""The full-reference part of ``make gpu-check`` (benchmarks/gpu_check.py): every preset's metrics batched on the
device (``FullReference.compute_prepared``: the pairs of one size in one call per metric) against the same pairs on
the CPU, value by value, once with PyTorch's defaults and once with TF32 off (cuDNN allows TF32 convolutions by
default on Ampere and later: LPIPS and DISTS would then differ by ~1e-3), and pairs/s on the device and on the CPU.
A preset passes when every value is within 1e-5 of the CPU's with TF32 off; the defaults are reported beside it.
With ``device="cpu"`` (``make gpu-rehearse``) the same code compares the CPU with itself: every difference is 0.

The pairs: frames of Giraffe+NeRF (render) against the same frames of Giraffe+IBRNet-C (a stand-in ground truth; both
960×768). Weights: the 69 MB of converted LPIPS/DISTS weights do not fit the device call's 64 MiB beside the scorer's
weights, so only the small ones travel (the LPIPS lin layers and DISTS' alpha/beta, 27 kB, named in ``carry`` by
benchmarks/gpu_travel.py); an AlexNet or VGG16 backbone that did not travel is replaced by seeded stand-in weights
(He-normal, the same on both devices), recorded per file. CPU-vs-device agreement is a property of the code on that
device (TF32, cuDNN's algorithms, reductions), which stand-in weights exercise the same way: LPIPS' unit-normalised
features and DISTS' similarity ratios keep the values in their usual range whatever the backbone weights.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

from benchmarks.gpu_scorer import failed, fmt, sync

TOLERANCE = 1e-5  # the issue's bound on |device - CPU| per value
RENDER, GROUND_TRUTH = "Giraffe+NeRF", "Giraffe+IBRNet-C"
BACKBONES = ("alexnet.pth", "vgg16.pth")
PRESETS = ("nerfbaselines", "nerfbaselines-nerf", "nerfstudio-nerfacto", "nerfstudio-splatfacto", "3dgs", "reference")


def _stand_in(name: str) -> dict[str, Any]:
    """Seeded He-normal convolution weights (zero biases) of the AlexNet or VGG16 taps."""
    import torch

    from models.fullref import networks

    with torch.device("meta"):
        shapes = {k: v.shape for k, v in (networks.AlexNetTaps() if name == "alexnet.pth" else
                                          networks.VGG16Taps()).state_dict().items()}  # fmt: skip
    g = torch.Generator().manual_seed(0)
    out = {}
    for k, shape in shapes.items():
        fan_in = int(torch.tensor(shape[1:]).prod()) if len(shape) > 1 else 1
        out[k] = torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5 if len(shape) > 1 else torch.zeros(shape)
    return out


@contextlib.contextmanager
def check_weights() -> Iterator[dict[str, str]]:
    """The metrics' weights for the check: each converted file where it travelled (verified as ever), a seeded
    stand-in for a backbone that did not; yields {file: "real" | "stand-in" | "missing"}."""
    from unittest import mock

    from consts import FULLREF_WEIGHTS
    from models.errors import InputError
    from models.fullref import networks, weights

    real = weights.load
    which: dict[str, str] = {}
    for name in FULLREF_WEIGHTS:
        try:
            real(name)
            which[name] = "real"
        except InputError:
            which[name] = "stand-in" if name in BACKBONES else "missing"

    def load(name: str) -> dict[str, Any]:
        return _stand_in(name) if which.get(name) == "stand-in" else real(name)

    networks._state.cache_clear()  # backbones read before (or after) the check are read again
    try:
        with mock.patch.object(weights, "load", load):
            yield which
    finally:
        networks._state.cache_clear()


def pairs(n: int, size: int = 0) -> tuple[list[Any], list[Any]]:
    """``n`` render / ground-truth frame pairs (uint8 HWC), each cropped to ``size`` px square from the top left
    when ``size`` > 0 (the rehearsal's small pairs)."""
    from consts import EXAMPLES_DIR
    from models.frames import list_images
    from models.pixels import read_image

    renders, gts = list_images(EXAMPLES_DIR / RENDER), list_images(EXAMPLES_DIR / GROUND_TRUTH)
    step = max(1, min(len(renders), len(gts)) // n)
    crop = (lambda a: a[:size, :size]) if size else (lambda a: a)  # noqa: E731
    return ([crop(read_image(p)) for p in renders[::step][:n]], [crop(read_image(p)) for p in gts[::step][:n]])


@contextlib.contextmanager
def tf32(allowed: bool | None) -> Iterator[None]:
    """cuDNN's and matmul's TF32 switches as given (None: as they are), restored after."""
    import torch

    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    if allowed is not None:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = allowed
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def max_abs_diff(got: dict[str, list[float]], ref: dict[str, list[float]]) -> dict[str, float]:
    """Per metric key, the largest |got − ref| over the pairs: 0 where both give the same value (an exact copy's
    infinite PSNR on both sides included), NaN where either side is NaN (never within a tolerance)."""
    out = {}
    for key, want in ref.items():
        diffs = [0.0 if a == b else abs(a - b) for a, b in zip(got[key], want, strict=True)]
        out[key] = math.nan if any(math.isnan(d) for d in diffs) else max(diffs)
    return out


def within(diffs: dict[str, float], tolerance: float = TOLERANCE) -> bool:
    """Whether every metric's largest difference is at most ``tolerance`` (NaN is not)."""
    return all(d <= tolerance for d in diffs.values())


def _seconds(fn: Callable[[], Any], device: str, repeats: int) -> float:
    """Seconds per call of ``fn``, the mean of ``repeats`` calls after the queued device work is done."""
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / repeats


def _setting(dev: Any, x: Any, y: Any, ref: dict[str, list[float]], device: str, repeats: int) -> dict[str, Any]:
    """One TF32 setting on the device: the values of all metrics (one call each, also the warm-up), the largest
    difference from the CPU's per metric, and pairs/s per metric and for all of them."""
    got = dev.compute_prepared(x, y)
    seconds = {k: _seconds(lambda k=k: dev.compute_prepared(x, y, [k]), device, repeats) for k in ref}
    diffs = max_abs_diff(got, ref)
    n = len(x)
    return {"max_abs_diff": diffs, "within": within(diffs), "pairs_per_s": {k: n / s for k, s in seconds.items()},
            "pairs_per_s_all": n / sum(seconds.values())}


def measure_preset(preset: str, renders: list, gts: list, device: str, repeats: int) -> dict[str, Any]:
    """One preset: its metrics on the CPU (one call per metric for all pairs, timed once), then on ``device`` with
    PyTorch's TF32 defaults and with TF32 off (:func:`_setting`). ``pass``: every value within
    :data:`TOLERANCE` of the CPU's with TF32 off; the defaults are reported beside it."""
    import torch

    from models.fullref import FullReference, protocols

    refs = protocols.get(preset).metrics  # not built: FLIP's constructor refuses a missing flip_evaluator
    keys = [k for k, r in refs.items() if r.metric != "flip" or _has_flip()]
    cpu = FullReference(preset, keys, device="cpu")
    x, y = (torch.cat(t) for t in zip(*(cpu.prepare(r, g) for r, g in zip(renders, gts, strict=True)), strict=True))
    ref: dict[str, list[float]] = {}
    cpu_s: dict[str, float] = {}
    for k in keys:
        t0 = time.perf_counter()
        ref.update(cpu.compute_prepared(x, y, [k]))
        cpu_s[k] = time.perf_counter() - t0
    dev = FullReference(preset, keys, device=device)
    xd, yd = x.to(device), y.to(device)
    row: dict[str, Any] = {"preset": preset, "status": "ok", "metrics": keys, "pairs": len(renders), "cpu": ref,
                           "cpu_pairs_per_s": {k: len(renders) / s for k, s in cpu_s.items()},
                           "skipped": [k for k in refs if k not in keys]}  # fmt: skip
    for label, allowed in (("default", None), ("tf32_off", False)):
        with tf32(allowed):
            row[label] = _setting(dev, xd, yd, ref, device, repeats)
    row["pass"] = row["tf32_off"]["within"]
    return row


def _has_flip() -> bool:
    """Whether NVIDIA's flip_evaluator is importable (the GPU image lacks it; FLIP is then not measured)."""
    try:
        import flip_evaluator  # noqa: F401
    except ImportError:
        return False
    return True


def measure(device: str, n_pairs: int = 4, presets: tuple[str, ...] = PRESETS, size: int = 0, repeats: int = 3,
            deadline: float | None = None) -> dict[str, Any]:  # fmt: skip
    """Every preset of ``presets`` (see :func:`measure_preset`), each in its own try/except; a preset that would
    start after ``deadline`` (``time.monotonic``) is recorded as skipped."""
    import torch

    renders, gts = pairs(n_pairs, size)
    out: dict[str, Any] = {"status": "ok", "pairs": len(renders), "size": list(renders[0].shape[:2]), "presets": [],
                           "tolerance": TOLERANCE, "flip_available": _has_flip(),
                           "tf32_defaults": {"cudnn": torch.backends.cudnn.allow_tf32,
                                             "matmul": torch.backends.cuda.matmul.allow_tf32}}  # fmt: skip
    with check_weights() as which:
        out["weights"] = dict(which)
        for preset in presets:
            if deadline is not None and time.monotonic() > deadline:
                out["presets"].append({"preset": preset, "status": "skipped", "reason": "time budget spent"})
                continue
            try:
                out["presets"].append(measure_preset(preset, renders, gts, device, repeats))
            except Exception as e:  # noqa: BLE001 - one preset failing must not lose the others
                out["presets"].append({"preset": preset, **failed(e)})
    return out


def _on(flag: bool) -> str:
    return "on" if flag else "off"


def _mark(v: float, tolerance: float) -> str:
    """A difference as a table cell, marked where it is over ``tolerance`` (or NaN)."""
    return f"{v:.2e}" + ("" if v <= tolerance else " **over**")


def _preset_rows(p: dict[str, Any], tolerance: float) -> list[str]:
    """One preset's rows of the table: one per metric, one for all its metrics together."""
    if p.get("status") != "ok":
        return [f"| {p['preset']} | {p.get('status')}: {p.get('reason', '')} | – | – | – | – | – |"]
    d, o = p["default"], p["tf32_off"]
    rows = [f"| {p['preset']} | {k} | {_mark(d['max_abs_diff'][k], tolerance)} | "
            f"{_mark(o['max_abs_diff'][k], tolerance)} | {fmt(d['pairs_per_s'][k], '.1f')} | "
            f"{fmt(o['pairs_per_s'][k], '.1f')} | {fmt(p['cpu_pairs_per_s'][k], '.1f')} |" for k in p["metrics"]]
    cpu_all = p["pairs"] / sum(p["pairs"] / v for v in p["cpu_pairs_per_s"].values())
    rows.append(f"| {p['preset']} | all | {'pass' if d['within'] else 'over'} | {'pass' if o['within'] else 'over'} "
                f"| {fmt(d['pairs_per_s_all'], '.1f')} | {fmt(o['pairs_per_s_all'], '.1f')} | {fmt(cpu_all, '.1f')} |")
    if p.get("skipped"):
        rows.append(f"| {p['preset']} | {', '.join(p['skipped'])}: not measured (flip_evaluator missing) "
                    "| – | – | – | – | – |")
    return rows


def verdict(fr: dict[str, Any]) -> str:
    """The part's pass line: every value within the tolerance with TF32 off, in every preset that ran."""
    ok = [p for p in fr["presets"] if p.get("status") == "ok"]
    off = [p["preset"] for p in ok if not p["pass"]]
    default = [p["preset"] for p in ok if not p["default"]["within"]]
    failed_ = [p["preset"] for p in fr["presets"] if p.get("status") != "ok"]
    line = (f"**Pass** (TF32 off: every value of {len(ok)} presets within {fr['tolerance']:g} of the CPU's)"
            if ok and not off and not failed_ else
            f"**Not passed**: over {fr['tolerance']:g} with TF32 off in {', '.join(off) or 'none'}; "
            f"not measured: {', '.join(failed_) or 'none'}")  # fmt: skip
    return line + (f". With PyTorch's TF32 defaults over {fr['tolerance']:g} in: {', '.join(default)}." if default
                   else ". PyTorch's TF32 defaults: within too.")  # fmt: skip


def report_lines(fr: dict[str, Any]) -> list[str]:
    """The full-reference part of gpu.md, from :func:`measure`'s results."""
    h, w = fr["size"]
    weights = ", ".join(f"{k} {v}" for k, v in fr["weights"].items())
    tf = fr["tf32_defaults"]
    lines = [f"{fr['pairs']} pairs of {w}×{h} ({RENDER} against {GROUND_TRUTH}), all of a preset's pairs in one call "
             f"per metric on the device and on the CPU. Weights: {weights}; TF32 by default here: cuDNN "
             f"{_on(tf['cudnn'])}, matmul {_on(tf['matmul'])}.", "",
             "| preset | metric | max abs diff (defaults) | max abs diff (TF32 off) | pairs/s (defaults) | "
             "pairs/s (TF32 off) | pairs/s (CPU) |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for p in fr["presets"]:
        lines += _preset_rows(p, fr["tolerance"])
    return [*lines, "", verdict(fr), ""]


def problems(fr: dict[str, Any]) -> list[str]:
    """What ``--strict`` refuses here: a preset that failed, or one with a value over the tolerance with TF32 off."""
    out = []
    for p in fr.get("presets", []):
        if p.get("status") != "ok":
            out.append(f"fullref {p['preset']}: {p['status']} {p.get('reason', '')}")
        elif not p["pass"]:
            over = {k: v for k, v in p["tf32_off"]["max_abs_diff"].items() if not v <= fr["tolerance"]}
            out.append(f"fullref {p['preset']}: over {fr['tolerance']:g} with TF32 off: {over}")
    return out


def parse_presets(spec: str) -> tuple[str, ...]:
    """``--fullref-presets`` ("a,b") -> the names, each once (all of :data:`PRESETS` when empty); an unknown name
    is one :class:`InputError` line."""
    from models.errors import InputError
    from models.fullref.protocols import PROTOCOLS

    names = tuple(dict.fromkeys(x.strip() for x in spec.split(",") if x.strip()))
    bad = [n for n in names if n not in PROTOCOLS]
    if bad:
        raise InputError(f"--fullref-presets {spec}: {bad[0]!r} is not a preset; choose from {', '.join(PROTOCOLS)}")
    return names or PRESETS
