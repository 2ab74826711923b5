"""Measure where the released model's scores stop being stable, and derive the limits of validity.py.

    python -m benchmarks.validity_calibration                 # (make validity) -> benchmarks/validity.{json,md},
                                                            #    docs/validity.png
    python -m benchmarks.validity_calibration --write-limits  # ... and models/nvs_sqa/validity_v2.json

On the two example sequences (960x768, 120 frames), released weights, CPU:
- length: per-frame features repeated back and forth along the path (a camera going to and fro) to 1..2000
  frames; the temporal model scores each length;
- resolution: frames resized (bicubic) to 0.25..1.5x, scored at their native 120 frames;
- windows: how often the windowed score keeps the single-pass ranking of the two examples, on sub-paths;
- noise / dark holes: Gaussian noise (sigma 0..64, 0-255 scale) or black discs covering 0..70 % of 24 evenly
  spaced frames;
- blind spots: how far noise and JPEG inflate the score beyond what FovVideoVDP sees (:mod:`benchmarks.blind_spots`),
  as curves of the estimated noise sigma and JPEG blockiness, which the report applies to its comparisons.
Each limit is the widest range around the native condition where every score stays within ``--tolerance`` JOD
of the native score (noise and holes: where the score does not *rise* by more than that; a real degradation may
lower it). Results depend only on the weights and the frames: seeded, deterministic on a CPU.
"""

from __future__ import annotations

import io
import json
import logging
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import blind_spots, noise_floor
from consts import BENCHMARK_LABELS_FILE, CACHE_DIR, EXAMPLE_SEQUENCES, EXAMPLES_DIR, ROOT
from models import cli
from models.cli import opt
from models.frames import open_array, open_frame_folder
from models.nvs_sqa.network import MIN_FRAME_SIZE
from models.nvs_sqa.scorer import NVSSQA
from models.nvs_sqa.validity import LIMITS_FILE, FrameStats, Limits
from models.results import atomic_write_bytes, atomic_write_json, stamp, table
from models.runtime import set_threads

log = logging.getLogger(__name__)
LENGTHS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 90, 120, 180, 240, 300, 360, 420, 480, 600, 800, 900, 1000,
           1100, 1200, 1500, 2000)
SCALES = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
NOISE = (0, 2, 4, 8, 12, 16, 24, 32, 48, 64)
DARK = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7)
WINDOWS = (30, 60, 120, 240)
CURVE_WINDOW, CURVE_STRIDE = 30, 15  # the quality curve's windows: short enough that a 120-frame render gets one
CURVE_MIN_FRAMES = 2 * CURVE_WINDOW  # a curve of fewer than 3 windows shows nothing
BLIND_FRAMES = 24  # frames per blind-spot variant (every fifth): FovVideoVDP costs ~0.5 s a frame on 2 CPU cores
LIMITS_VERSION = "v2"
MEASURED_BY = "python -m benchmarks.validity_calibration --write-limits (make validity)"


def pingpong(n_src: int, n: int) -> np.ndarray:
    """Indices 0,1,..,n_src-1,n_src-2,..,0,1,.. of length ``n``: a camera path travelled to and fro."""
    if n_src == 1:
        return np.zeros(n, dtype=int)
    period = np.r_[np.arange(n_src), np.arange(n_src - 2, 0, -1)]
    return np.resize(period, n)


def _frames(seq: str) -> np.ndarray:
    s = open_frame_folder(EXAMPLES_DIR / seq, MIN_FRAME_SIZE)
    return np.stack(list(s))


def _resize(frames: np.ndarray, scale: float) -> np.ndarray:
    from PIL import Image

    if scale == 1.0:
        return frames
    h, w = frames.shape[1:3]
    size = (round(w * scale), round(h * scale))
    return np.stack([np.asarray(Image.fromarray(f).resize(size, Image.BICUBIC)) for f in frames])


def _score(model: NVSSQA, feats: torch.Tensor) -> float:
    return float(model.predict(model.aggregate(feats))[0])


def _holes(h: int, w: int, fraction: float, seed: int = 0) -> np.ndarray:
    """A fixed mask of black discs covering ``fraction`` of an (h, w) frame (seeded)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), dtype=bool)
    yy, xx = np.mgrid[:h, :w]
    while mask.mean() < fraction:
        cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(min(h, w) // 20, min(h, w) // 6)
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    return mask


def measure(model: NVSSQA, seqs: list[str], cache: Path, batch: int = 2) -> dict:
    """All measurements (see the module docstring) as plain lists."""
    out: dict = {"sequences": seqs, "lengths": list(LENGTHS), "scales": list(SCALES), "noise": list(NOISE),
                 "dark": list(DARK), "windows": list(WINDOWS)}
    sha = model.info.get("checkpoint_sha256", "x")[:12]
    for seq in seqs:
        frames = _frames(seq)
        r: dict = {"n_frames": len(frames), "width": frames.shape[2], "height": frames.shape[1]}
        feats = {}
        for scale in SCALES:
            f = cache / f"{sha}-{seq}-{scale}.npy"
            if not f.is_file():
                arr = _resize(frames, scale)
                ff = model.frame_features(open_array(arr, MIN_FRAME_SIZE), batch, progress=True)
                cache.mkdir(parents=True, exist_ok=True)
                np.save(f, ff.numpy())
            feats[scale] = torch.from_numpy(np.load(f))
        r["resolution"] = [{"scale": s, "width": round(frames.shape[2] * s), "height": round(frames.shape[1] * s),
                            "score": _score(model, feats[s])} for s in SCALES]
        native = feats[1.0]
        r["length"] = [{"frames": n, "score": _score(model, native[pingpong(len(native), n)])} for n in LENGTHS]
        # windows on the native path repeated to 1200 frames (the example of a long render)
        long = native[pingpong(len(native), 1200)]
        r["windowed_1200"] = {w: model.score_features(long, w, w // 2).score for w in WINDOWS}
        # noise and holes on 24 evenly spaced frames (fewer frames: the comparison is against the same 24, clean)
        idx = np.linspace(0, len(frames) - 1, 24).round().astype(int)
        sub = frames[idx]
        rng = np.random.default_rng(0)
        noise_rows = []
        for sigma in NOISE:
            noisy = np.clip(np.rint(sub + rng.normal(0, sigma, sub.shape)), 0, 255).astype(np.uint8) if sigma \
                else sub
            st = FrameStats()
            ff = model.frame_features(open_array(np.stack(list(st.watch(noisy))), MIN_FRAME_SIZE), batch)
            noise_rows.append({"sigma": sigma, "estimated_sigma": st.noise_sigma, "score": _score(model, ff)})
        r["noise"] = noise_rows
        for key, value in (("dark", 0), ("white", 255)):  # holes or empty background, black or white
            rows = []
            for frac in DARK:
                holed = sub.copy()
                if frac:
                    holed[:, _holes(*sub.shape[1:3], frac)] = value
                st = FrameStats()
                ff = model.frame_features(open_array(np.stack(list(st.watch(holed))), MIN_FRAME_SIZE), batch)
                rows.append({"fraction": frac, "measured_fraction": st.background_fraction,
                             "score": _score(model, ff)})
            r[key] = rows
        r["sensitivity"] = noise_floor.measure_sequence(model, frames, native, CURVE_WINDOW, CURVE_STRIDE, batch)
        out[seq] = r
    out["ranking"] = ranking_agreement(model, [torch.from_numpy(np.load(cache / f"{sha}-{s}-1.0.npy")) for s in seqs])
    out["blind_spots"] = blind_spots.measure(model, {s: _frames(s)[::5][:BLIND_FRAMES] for s in seqs})
    return out


def ranking_agreement(model: NVSSQA, feats: list[torch.Tensor], trials: int = 200, seed: int = 0) -> dict:
    """Share of random sub-paths (same frames of both sequences, 130–360 frames of the to-and-fro path) whose
    windowed ranking of the two sequences equals their single-pass ranking, per window length (stride w/2)."""
    rng = np.random.default_rng(seed)
    long = [f[pingpong(len(f), 2000)] for f in feats]
    agree = {w: 0 for w in WINDOWS}
    for _ in range(trials):
        n = int(rng.integers(130, 361))
        s = int(rng.integers(0, 2000 - n))
        single = [_score(model, f[s:s + n]) for f in long]
        for w in WINDOWS:
            win = [model.score_features(f[s:s + n], w, w // 2).score for f in long]
            agree[w] += (single[0] > single[1]) == (win[0] > win[1])
    return {str(w): agree[w] / trials for w in WINDOWS} | {"trials": trials}


def _within(rows: list[dict], key: str, ref: float, tol: float) -> list:
    return [r[key] for r in rows if abs(r["score"] - ref) <= tol]


def rise_limit(rows: list[dict], key: str, tol: float) -> float:
    """The statistic ``key`` at which the score first rises ``tol`` above the clean score (row 0), linearly
    interpolated between the two levels around the crossing; the last level if it never does."""
    clean = rows[0]["score"]
    for prev, x in zip(rows, rows[1:], strict=False):
        if x["score"] > clean + tol:
            frac = (clean + tol - prev["score"]) / (x["score"] - prev["score"])
            return prev[key] + max(0.0, min(1.0, frac)) * (x[key] - prev[key])
    return rows[-1][key]


def derive_limits(m: dict, tol: float) -> Limits:
    """Limits from the measurements: the contiguous stable range around the native condition, on every sequence."""
    seqs = m["sequences"]
    lo_len, hi_len, lo_side, hi_side, noise_lim, dark_lim = [], [], [], [], [], []
    for s in seqs:
        r = m[s]
        ref = next(x["score"] for x in r["length"] if x["frames"] == r["n_frames"])
        ok = [abs(x["score"] - ref) <= tol for x in r["length"]]
        i0 = [x["frames"] for x in r["length"]].index(r["n_frames"])
        a, b = i0, i0
        while a > 0 and ok[a - 1]:
            a -= 1
        while b + 1 < len(ok) and ok[b + 1]:
            b += 1
        lo_len.append(r["length"][a]["frames"])
        hi_len.append(r["length"][b]["frames"])
        res = r["resolution"]
        ref_r = next(x["score"] for x in res if x["scale"] == 1.0)
        ok = [abs(x["score"] - ref_r) <= tol for x in res]
        i0 = [x["scale"] for x in res].index(1.0)
        a, b = i0, i0
        while a > 0 and ok[a - 1]:
            a -= 1
        while b + 1 < len(ok) and ok[b + 1]:
            b += 1
        lo_side.append(min(res[a]["width"], res[a]["height"]))
        hi_side.append(min(res[b]["width"], res[b]["height"]))
        noise_lim.append(rise_limit(r["noise"], "estimated_sigma", tol))
        dark_lim += [rise_limit(r[k], "measured_fraction", tol) for k in ("dark", "white")]
    window = max((w for w in WINDOWS if w <= min(hi_len)), default=min(hi_len))
    lo, hi = label_range()
    floor, curve_floor = noise_floor.floors({s: m[s]["sensitivity"] for s in seqs})
    return Limits(version=LIMITS_VERSION, min_frames=max(lo_len), max_frames=min(hi_len), window=window,
                  stride=window // 2, min_side=max(lo_side), max_side=min(hi_side), score_min=lo, score_max=hi,
                  max_background_fraction=round(min(dark_lim), 3), max_noise_sigma=round(min(noise_lim), 1),
                  tolerance_jod=tol, noise_floor_jod=floor, curve_window=CURVE_WINDOW, curve_stride=CURVE_STRIDE,
                  curve_min_frames=CURVE_MIN_FRAMES, curve_noise_floor_jod=curve_floor, measured_by=MEASURED_BY,
                  **blind_spots.derive(m["blind_spots"], tol))


def label_range(labels: Path = ROOT / "benchmark_bank" / BENCHMARK_LABELS_FILE) -> tuple[float, float]:
    """(lowest, highest) of the benchmark's JOD labels, to 2 decimals outward: the range a score is trusted in."""
    values = np.array(list(json.loads(labels.read_text())["labels"].values()), dtype=float)
    return math.floor(values.min() * 100) / 100, math.ceil(values.max() * 100) / 100


def figure(m: dict, lim: Limits) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(3, 2, figsize=(11, 11))
    for s in m["sequences"]:
        r = m[s]
        ax[0, 0].plot([x["frames"] for x in r["length"]], [x["score"] for x in r["length"]], "o-", ms=3, label=s)
        ax[0, 1].plot([min(x["width"], x["height"]) for x in r["resolution"]], [x["score"] for x in r["resolution"]],
                      "o-", label=s)
        ax[1, 0].plot([x["estimated_sigma"] for x in r["noise"]], [x["score"] for x in r["noise"]], "o-", label=s)
        for key, style in (("dark", "o-"), ("white", "s--")):
            ax[1, 1].plot([100 * x["measured_fraction"] for x in r[key]], [x["score"] for x in r[key]], style,
                          label=f"{s} ({'black' if key == 'dark' else 'white'})")
    ax[0, 0].set(xscale="log", xlabel="frames (one pass)", ylabel="JOD", title="score vs sequence length")
    ax[0, 0].axvspan(lim.min_frames, lim.max_frames, color="g", alpha=0.1, label="validated")
    ax[0, 1].set(xlabel="shorter side (px)", ylabel="JOD", title="score vs resolution (120 frames)")
    ax[0, 1].axvspan(lim.min_side, lim.max_side, color="g", alpha=0.1, label="validated")
    ax[1, 0].set(xlabel="estimated noise sigma (0-255)", ylabel="JOD", title="score vs added Gaussian noise (24 fr.)")
    ax[1, 0].axvspan(0, lim.max_noise_sigma, color="g", alpha=0.1, label="validated")
    ax[1, 1].set(xlabel="flat black / white pixels (%)", ylabel="JOD", title="score vs holes, black or white (24 fr.)")
    ax[1, 1].axvspan(0, 100 * lim.max_background_fraction, color="g", alpha=0.1, label="validated")
    blind_spot_panels(ax[2], m["blind_spots"], lim)
    for a in ax.flat:
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.suptitle(f"NVS-SQA released v0.0.1: where scores are stable (tolerance {lim.tolerance_jod} JOD)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def blind_spot_panels(ax: Any, rows: list[dict], lim: Limits) -> None:
    """Bias (NVS-SQA's change beyond FovVideoVDP's) against the noise estimate and the blockiness, with the
    inflation curves the report applies."""
    for a, kind, stat, curve in ((ax[0], "noise", "noise_sigma", lim.noise_bias),
                                 (ax[1], "jpeg", "blockiness", lim.blockiness_bias)):
        for (seq, base), style in zip(sorted({(r["sequence"], r["base"]) for r in rows if r["kind"] == kind}),
                                      ("o", "s", "^", "v"), strict=False):  # fmt: skip
            pts = [r for r in rows if (r["sequence"], r["base"]) == (seq, base) and r["kind"] in (kind, "base")]
            a.plot([r[stat] for r in pts], [r["bias"] for r in pts], style, ms=4, label=f"{seq} ({base})")
        a.plot(*zip(*curve, strict=True), "k-", lw=1.5, label="inflation curve (running max)")
        a.set(xlabel=stat.replace("_", " "), ylabel="bias (JOD)",
              title=f"{kind}: NVS-SQA's change minus FovVideoVDP's ({BLIND_FRAMES} fr.)")
    ax[1].axvline(lim.max_blockiness, color="r", lw=1, label="flagged beyond")


def report(m: dict, lim: Limits) -> str:
    seqs = m["sequences"]
    rows = [{"frames": n, **{s: m[s]["length"][i]["score"] for s in seqs}} for i, n in enumerate(m["lengths"])]
    res = [{"scale": sc, "size": f"{m[seqs[0]]['resolution'][i]['width']}x{m[seqs[0]]['resolution'][i]['height']}",
            **{s: m[s]["resolution"][i]["score"] for s in seqs}} for i, sc in enumerate(m["scales"])]
    noise = [{"sigma": m[seqs[0]]["noise"][i]["sigma"],
              **{f"{s} est.": m[s]["noise"][i]["estimated_sigma"] for s in seqs},
              **{s: m[s]["noise"][i]["score"] for s in seqs}} for i in range(len(m["noise"]))]
    holes = {key: [{"holes": m[seqs[0]][key][i]["fraction"],
                    **{f"{s} measured": m[s][key][i]["measured_fraction"] for s in seqs},
                    **{s: m[s][key][i]["score"] for s in seqs}} for i in range(len(m[seqs[0]][key]))]
             for key in ("dark", "white")}  # fmt: skip
    nuis = [{"change": r["change"], **{f"{s} ΔJOD": m[s]["sensitivity"]["nuisances"][i]["delta"] for s in seqs},
             **{f"{s} max window Δ": m[s]["sensitivity"]["nuisances"][i]["max_window_delta"] for s in seqs}}
            for i, r in enumerate(m[seqs[0]]["sensitivity"]["nuisances"])]  # fmt: skip
    pos = [{"blurred frames": r["blurred_frames"], **{s: m[s]["sensitivity"]["position"][i]["delta"] for s in seqs}}
           for i, r in enumerate(m[seqs[0]]["sensitivity"]["position"])]  # fmt: skip
    win = [{"window": w, "stride": w // 2, "ranking kept": m["ranking"][str(w)],
            **{f"{s} @1200": m[s]["windowed_1200"][w] for s in seqs}} for w in m["windows"]]
    fmt = "github"
    return "\n\n".join([
        "# Validity of NVS-SQA scores (released v0.0.1)\n\nMade by `python -m benchmarks.validity_calibration` "
        "(`make validity`); figure: docs/validity.png.",
        "## Limits\n\n" + table([lim.to_dict()], [k for k in lim.to_dict() if k not in ("notes", "measured_by")],
                                floatfmt="g", fmt=fmt),
        "## Score vs length (one pass; features repeated to and fro along the path)\n\n" + table(rows, list(rows[0]),
                                                                                               fmt=fmt),
        "## Score vs resolution (120 frames)\n\n" + table(res, list(res[0]), fmt=fmt),
        "## Windowed scoring: ranking of the two examples kept on random 130–360-frame sub-paths; mean window "
        "score at 1200 frames\n\n" + table(win, list(win[0]), fmt=fmt),
        "## Gaussian noise (24 frames)\n\n" + table(noise, list(noise[0]), fmt=fmt),
        "## Black holes (24 frames)\n\n" + table(holes["dark"], list(holes["dark"][0]), fmt=fmt),
        "## White holes / background (24 frames)\n\n" + table(holes["white"], list(holes["white"][0]), fmt=fmt),
        f"## Noise floor: score changes nobody would see (120 frames; curve windows {lim.curve_window}/"
        f"{lim.curve_stride})\n\nNoise floor {lim.noise_floor_jod:g} JOD (a score), {lim.curve_noise_floor_jod:g} "
        "JOD (a curve window): the largest change below, rounded up.\n\n" + table(nuis, list(nuis[0]), fmt=fmt),
        "## Blind spots: NVS-SQA's change beyond FovVideoVDP's (bias), against the estimated noise sigma and JPEG "
        f"blockiness ({BLIND_FRAMES} frames)\n\nInflation curves (the running maximum of the bias): noise "
        f"{lim.noise_bias}, blockiness {lim.blockiness_bias}; scores flagged past blockiness {lim.max_blockiness:g}."
        "\n\n" + table(m["blind_spots"], ["sequence", "base", "kind", "level", "noise_sigma", "blockiness", "nvs_sqa",
                                          "fvvdp", "bias"], fmt=fmt),
        f"## Position along the path: Gaussian blur (sigma {noise_floor.BLUR_SIGMA:g} px) on {noise_floor.BLUR_SPAN} "
        "of the 120 frames, ΔJOD\n\n" + table(pos, list(pos[0]), fmt=fmt),
    ]) + "\n"


@dataclass
class CalibrationConfig:
    """Flags of ``python -m benchmarks.validity_calibration`` (make validity)."""

    tolerance: float = opt(0.15, "JOD a stable score may move", min=0)
    write_limits: bool = opt(False, f"also write the limits file the library reads ({LIMITS_FILE.name})")
    threads: int = opt(0, "torch threads (0 = torch's choice)", min=0)
    out: str = opt(str(ROOT / "benchmarks"), "folder for validity.json and validity.md")


def run(cfg: CalibrationConfig) -> int:
    set_threads(cfg.threads)
    model = NVSSQA.from_checkpoint(None, "cpu")
    seqs = sorted(n for n in EXAMPLE_SEQUENCES if (EXAMPLES_DIR / n).is_dir())  # not app.py's outputs beside them
    m = measure(model, seqs, CACHE_DIR / "validity")
    lim = derive_limits(m, cfg.tolerance)
    out = Path(cfg.out)
    atomic_write_json(out / "validity.json", {**stamp(model=model.info), "limits": lim.to_dict(), "measurements": m})
    atomic_write_bytes(out / "validity.md", report(m, lim).encode())
    atomic_write_bytes(ROOT / "docs" / "validity.png", figure(m, lim))
    if cfg.write_limits:
        atomic_write_json(LIMITS_FILE, lim.to_dict())
    print(report(m, lim))
    return 0


main = cli.script(CalibrationConfig, run, __doc__.split("\n")[0])


if __name__ == "__main__":
    sys.exit(main())
