"""A known-order bank for the scene report: scenes whose order is known by construction, report.py run on them,
and every decisive claim of report.csv checked against that order (``make report-validate``).

    python -m benchmarks.report_validate                    # the full bank -> benchmarks/report_validate.{json,md}
    python -m benchmarks.report_validate --size small       # the bank the tests run (tests/report/test_validate.py)

Each scene is an example sequence (``--frames`` frames, every other one, cropped to ``--crop``) with its frames as
ground truth (PNG) and one method per construction, seeded (:mod:`models.evaluation.degrade`):

- ``copy`` the ground truth itself, ``short`` the same without its middle frame, ``q95`` a JPEG round trip at
  quality 95 (near lossless);
- graded levels of one distortion: blur 1 < 2.5 < 4 px, Gaussian noise sigma 3 < 6 < 15, JPEG quality 50 > 15,
  down-then-up scaling 2 < 4; ``partblur``: the 4 px blur on the middle third of the path only.

Known: ``copy`` is better than every construction except ``short`` (equal to it on every shared frame; so is no
metric allowed to decide between them), ``short`` is better than every distortion, each level is better than the
stronger levels of its own distortion, ``partblur`` is better than ``blur4``. Pairs of different distortions have
no known order (their claims are counted as unverifiable, not judged). For every metric the bank counts decisive
claims that agree with the known order, that contradict it (false), abstentions on known pairs, and rank
inversions (a known-worse method ranked above a known-better one).
"""

from __future__ import annotations

import itertools
import shutil
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from consts import EXAMPLE_SEQUENCES, ROOT
from models import cli
from models.cli import opt
from models.evaluation import degrade
from models.results import read_csv, stamp, table, write_report

# method -> (distortion, level, chain): a chain's levels are ordered best first
CONSTRUCTIONS = {
    "copy": (None, 0.0, ""), "short": (None, 0.0, ""), "q95": ("jpeg", 95.0, "jpeg"),
    "blur1": ("blur", 1.0, "blur"), "blur2.5": ("blur", 2.5, "blur"), "blur4": ("blur", 4.0, "blur"),
    "noise3": ("noise", 3.0, "noise"), "noise6": ("noise", 6.0, "noise"), "noise15": ("noise", 15.0, "noise"),
    "jpeg50": ("jpeg", 50.0, "jpeg"), "jpeg15": ("jpeg", 15.0, "jpeg"),
    "down2": ("downup", 2.0, "downup"), "down4": ("downup", 4.0, "downup"),
    "partblur": ("blur", 4.0, "part"),
}  # fmt: skip
SIZES = {  # --size: methods, frames, crop (h, w), metrics, scenes
    "full": (tuple(CONSTRUCTIONS), 60, None, (), 2),
    "small": (("copy", "short", "blur1", "blur2.5", "noise3", "noise15", "jpeg15"), 36, (576, 720),
              ("jod", "psnr", "ssim"), 1),
}  # fmt: skip


def relation(a: str, b: str) -> int | None:
    """+1 when ``a`` is known better than ``b``, -1 worse, 0 equal, None when no order is known."""
    if {a, b} == {"copy", "short"}:
        return 0
    for top in ("copy", "short"):
        if top in (a, b):
            return 1 if a == top else -1
    if {a, b} == {"partblur", "blur4"}:
        return 1 if a == "partblur" else -1
    (da, la, ca), (_, lb, cb) = CONSTRUCTIONS[a], CONSTRUCTIONS[b]
    if ca != cb or ca == "part":
        return None
    better_a = la > lb if da == "jpeg" else la < lb  # JPEG: higher quality is better; else a weaker distortion
    return 1 if better_a else -1


def build_scene(out: Path, source: np.ndarray, methods: Iterable[str], seed: int) -> None:
    """One scene folder: ``gt/`` and one PNG frame folder per method."""
    from PIL import Image

    def save(folder: Path, frames: np.ndarray, skip: int | None = None) -> None:
        folder.mkdir(parents=True)
        for i, f in enumerate(frames):
            if i != skip:
                Image.fromarray(f).save(folder / f"{i:04d}.png", compress_level=1)

    save(out / "gt", source)
    n = len(source)
    for i, name in enumerate(methods):
        kind, level, chain = CONSTRUCTIONS[name]
        rng = np.random.default_rng([seed, i])
        frames = source.copy()
        if chain == "part":
            frames[n // 3:2 * n // 3] = degrade.blur(source[n // 3:2 * n // 3], level, rng)
        elif kind is not None:
            frames = getattr(degrade, kind)(source, level, rng)
        save(out / name, frames, skip=n // 2 if name == "short" else None)


def source_frames(seq: str, n: int, crop: tuple[int, int] | None) -> np.ndarray:
    """``n`` frames of an example sequence (every other one), centre-cropped to ``crop`` (h, w)."""
    from benchmarks.report_scene import example

    frames = example(seq)[::2][:n]
    if crop:
        h, w = frames.shape[1:3]
        y, x = (h - crop[0]) // 2, (w - crop[1]) // 2
        frames = frames[:, y:y + crop[0], x:x + crop[1]]
    return np.ascontiguousarray(frames)


def judge(rows: list[dict[str, str]]) -> tuple[dict[str, dict[str, int]], list[str]]:
    """Per metric: decisive claims that agree / contradict the known order, abstentions on known pairs,
    unverifiable decisive claims, rank inversions; and one line per false claim."""
    counts: dict[str, dict[str, int]] = {}
    false: list[str] = []
    ranks = {(r["scene"], r["metric"], r["method"]): r["value"] for r in rows if r["field"] == "rank"}
    for r in rows:
        if r["field"] != "delta" or not r["method"] < r["against"]:
            continue
        c = counts.setdefault(r["metric"], dict.fromkeys(("agree", "false", "abstain", "unverifiable",
                                                           "rank_inversions"), 0))  # fmt: skip
        known, decided = relation(r["method"], r["against"]), {"better": 1, "worse": -1}.get(r["decision"])
        if known is None:
            c["unverifiable"] += decided is not None
        elif decided is None:
            c["abstain"] += known != 0
        elif decided == known:
            c["agree"] += 1
        else:
            c["false"] += 1
            false.append(f"{r['scene']} {r['metric']}: {r['method']} {r['decision']} than {r['against']} "
                         f"(Δ {r['value']}; {r['why']})")
        ra, rb = (ranks.get((r["scene"], r["metric"], m), "") for m in (r["method"], r["against"]))
        if known and ra and rb and (int(ra) - int(rb)) * known > 0:
            c["rank_inversions"] += 1
            false.append(f"{r['scene']} {r['metric']}: rank {ra} for {r['method']}, {rb} for {r['against']}")
    return counts, false


@dataclass
class ValidateConfig:
    """Flags of ``python -m benchmarks.report_validate`` (make report-validate)."""

    size: str = opt("full", "full: 14 methods x 60 frames on both examples, every default metric | small: the "
                    "bank the tests run (7 methods x 36 frames, one example, 720x576, jod psnr ssim)",
                    choices=tuple(SIZES))  # fmt: skip
    work: str = opt(str(ROOT / "runs" / "report-validate"), "folder for the bank and its report (replaced)")
    out: str = opt(str(ROOT / "benchmarks"), "folder for report_validate.json and report_validate.md")
    seed: int = opt(0, "seed of the constructions", min=0)


def make_bank(work: Path, size: str, seed: int) -> list[Path]:
    """The bank's scene folders under ``work`` (replaced)."""
    methods, n, crop, _, n_scenes = SIZES[size]
    if work.exists():
        shutil.rmtree(work)
    scenes = []
    for seq in EXAMPLE_SEQUENCES[:n_scenes]:
        scenes.append(work / seq.split("+", 1)[1])
        build_scene(scenes[-1], source_frames(seq, n, crop), methods, seed)
    return scenes


def validate(cfg: ValidateConfig) -> dict:
    """Build the bank, run report.py on it, judge its claims."""
    from report import main as report_main

    work = Path(cfg.work)
    scenes = make_bank(work, cfg.size, cfg.seed)
    metrics = SIZES[cfg.size][3]
    argv = [*map(str, scenes), "--out", str(work / "report"), "--quiet", "--seed", str(cfg.seed)]
    code = report_main(argv + (["--metrics", *metrics] if metrics else []))
    counts, false = judge(read_csv(work / "report" / "report.csv"))
    known = sum(relation(a, b) is not None for a, b in itertools.combinations(SIZES[cfg.size][0], 2))
    return {"size": cfg.size, "exit_code": code, "known_pairs_per_scene": known, "counts": counts, "false": false}


def run(cfg: ValidateConfig) -> int:
    start = time.monotonic()
    res = validate(cfg)
    res["seconds"] = round(time.monotonic() - start, 1)
    prov = stamp()
    rows = [{"metric": m, **c} for m, c in res["counts"].items()]
    md = (f"# Known-order bank of the scene report ({cfg.size})\n\nMade by `python -m benchmarks.report_validate "
          f"--size {cfg.size}` (`make report-validate`) on {prov['cpu']}, {prov['cpus']} cores, torch "
          f"{prov['torch']}, {prov['created'][:10]}: {res['seconds']:.0f} s; report.py exit code {res['exit_code']}; "
          f"{res['known_pairs_per_scene']} pairs of known order per scene. Decisive claims that agree with the known "
          "order, contradict it (false), abstentions on known pairs, decisive claims on pairs of no known order, and "
          "rank inversions:\n\n" + table(rows, list(rows[0]) if rows else ["metric"], fmt="github") + "\n\n"
          + ("False claims:\n\n" + "\n".join(f"- {line}" for line in res["false"]) if res["false"]
             else "No false claim.") + "\n")  # fmt: skip
    write_report(Path(cfg.out), f"report_validate{'' if cfg.size == 'full' else '_' + cfg.size}", {**prov, **res}, md)
    return 0 if not res["false"] else 1


main = cli.script(ValidateConfig, run, __doc__.split("\n")[0])

if __name__ == "__main__":
    sys.exit(main())
