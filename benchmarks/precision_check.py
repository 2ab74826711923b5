"""Errors of the precision modes (exact / mixed / bf16) on the examples and on sequences made from them here.

    python -m benchmarks.precision_check     # -> benchmarks/precision.json and benchmarks/precision.md

For each mode: max |feature difference| from the exact mode (and, on the examples, from the release's own
features in ``../shared/reference``), the JOD difference, and whether the JOD ranking of the sequences (all of
one scene, Giraffe) changes. Where this CPU has no native bfloat16 the bf16 layers run in oneDNN's emulation
(same roundings of inputs and weights, float32 accumulation; slow): the errors are those of the mode, the speed
is not (that is ``make bench``'s job). The made sequences (:func:`made_sequences`) are seeded, so the run
repeats bit for bit; tests/benchmarks/test_precision_check.py holds ``mixed`` to what docs/scoring.md states on them.
"""

from __future__ import annotations

import io
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from consts import EXAMPLE_SEQUENCES, EXAMPLES_DIR, REFERENCE_FEATURES, ROOT
from models import cli
from models.cli import opt
from models.nvs_sqa import NVSSQA
from models.results import read_npz, stamp, table, write_report
from models.runtime import cpu_name

log = logging.getLogger(__name__)


@dataclass
class PrecisionCheckConfig:
    """Flags of ``python -m benchmarks.precision_check``."""

    out: str = opt(str(ROOT / "benchmarks"), "folder for precision.json and precision.md")


def _frames(name: str, examples: Path) -> list[np.ndarray]:
    from models.pixels import read_image

    return [read_image(p) for p in sorted((examples / name).glob("*.jpg"))]


def _resize(hwc: np.ndarray, w: int, h: int):
    from PIL import Image

    return Image.fromarray(hwc).resize((w, h), Image.Resampling.BOX)


def made_sequences(examples: Path = EXAMPLES_DIR, seed: int = 0) -> dict[str, np.ndarray]:
    """Input kinds the examples do not cover, made from them (uint8 THWC, deterministic for a seed):
    ``downscaled`` (40 frames at 240×192), ``degraded`` (24 frames at 480×384, JPEG quality 10 then a blur),
    ``noisy`` (24 frames at 480×384 plus Gaussian noise σ = 12), ``long`` (300 frames at 160×128: both
    examples, back and forth)."""
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(seed)
    nerf, ibr = _frames(EXAMPLE_SEQUENCES[0], examples), _frames(EXAMPLE_SEQUENCES[1], examples)
    out = {"downscaled": np.stack([np.asarray(_resize(f, 240, 192)) for f in nerf[::3]])}
    degraded = []
    for f in ibr[::5]:
        buf = io.BytesIO()
        _resize(f, 480, 384).save(buf, "JPEG", quality=10)
        with Image.open(buf) as im:
            degraded.append(np.asarray(im.convert("RGB").filter(ImageFilter.GaussianBlur(1.5))))
    out["degraded"] = np.stack(degraded)
    small = np.stack([np.asarray(_resize(f, 480, 384)) for f in nerf[::5]]).astype(np.float32)
    out["noisy"] = np.clip(np.rint(small + rng.normal(0, 12, small.shape)), 0, 255).astype(np.uint8)
    tiny = [np.asarray(_resize(f, 160, 128)) for f in nerf + ibr]
    out["long"] = np.stack((tiny + tiny[::-1])[:300])
    return out


def measure(modes: tuple[str, ...] = ("exact", "mixed", "bf16"), examples: Path = EXAMPLES_DIR) -> dict:
    """Features and JOD of every sequence in every mode, and each mode's errors against exact / the reference."""
    seqs: dict[str, object] = {n: examples / n for n in EXAMPLE_SEQUENCES}
    seqs.update(made_sequences(examples))
    ref = read_npz(REFERENCE_FEATURES)
    feats: dict[str, dict[str, np.ndarray]] = {}
    jod: dict[str, dict[str, float]] = {}
    for mode in modes:
        model = NVSSQA.from_checkpoint(None, device="cpu", precision=mode, emulate=True)
        feats[mode] = {n: model.features(s) for n, s in seqs.items()}  # type: ignore[arg-type]
        jod[mode] = {n: float(model.predict(f)[0]) for n, f in feats[mode].items()}
        log.info("%s done", mode)
    rows = []
    exact_rank = sorted(jod["exact"], key=jod["exact"].get)  # type: ignore[arg-type]
    for mode in modes:
        rank = sorted(jod[mode], key=jod[mode].get)  # type: ignore[arg-type]
        for name in seqs:
            row = {"mode": mode, "sequence": name, "jod": jod[mode][name],
                   "feature_err_vs_exact": float(np.abs(feats[mode][name] - feats["exact"][name]).max()),
                   "jod_err_vs_exact": jod[mode][name] - jod["exact"][name]}
            if name in ref:
                row["feature_err_vs_reference"] = float(np.abs(feats[mode][name] - ref[name]).max())
            rows.append(row)
        rows.append({"mode": mode, "sequence": "(ranking of all 6)", "ranking_changed": rank != exact_rank})
    return {"rows": rows, "ranking_exact": exact_rank}


def render_md(result: dict) -> str:
    """benchmarks/precision.md."""
    shown = []
    for r in result["rows"]:
        if "ranking_changed" in r:
            continue
        ref = r.get("feature_err_vs_reference")
        shown.append({"mode": r["mode"], "sequence": r["sequence"], "JOD": f"{r['jod']:.4f}",
                      "feature_err_vs_exact": f"{r['feature_err_vs_exact']:.1e}",
                      "feature_err_vs_reference": "-" if ref is None else f"{ref:.1e}",
                      "JOD_minus_exact": f"{r['jod_err_vs_exact']:+.1e}"})
    changed = {r["mode"]: r["ranking_changed"] for r in result["rows"] if "ranking_changed" in r}
    how = "native" if result["cpu_native_bf16"] else "emulated by oneDNN: the errors of native bf16, not its speed"
    return (f"Made by `python -m benchmarks.precision_check` on {result['machine']}, {result['created']} "
            f"(bfloat16 {how}).\n\n" + table(shown, list(shown[0]), fmt="github", text=tuple(shown[0]))
            + "\n\nJOD ranking of the six sequences (one scene) changed against exact: "
            + ", ".join(f"{m}: {'yes' if c else 'no'}" for m, c in changed.items()) + ".\n")


def run(cfg: PrecisionCheckConfig) -> int:
    from models.nvs_sqa.precision import native_bf16

    result = stamp(machine=f"{cpu_name()}, {os.cpu_count()} cores", cpu_native_bf16=native_bf16(), **measure())
    write_report(Path(cfg.out), "precision", result, render_md(result))
    return 0


main = cli.script(PrecisionCheckConfig, run,
                  "Feature and JOD errors of the precision modes -> benchmarks/precision.{json,md}")


if __name__ == "__main__":
    sys.exit(main())
