"""Score neurally synthesised sequences with NVS-SQA (no reference): features + JOD scores.

    python app.py                               # scores examples/ (a folder of sequence folders)
    python app.py renders/scene__nerfacto       # one folder of frames
    python app.py a.mp4 b/ --out results/       # several inputs; videos are decoded as a stream

Writes to --out (default: the input folder, as upstream): output_features.npz ({name: 384-d float32}),
scores.csv and scores.json (rows + model version, checkpoint sha256, project version).
Exit code: 0 all scored, 1 some inputs failed (the others are still written), 2 nothing could be scored.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from consts import EXAMPLES_DIR
from models import cli
from models.cli import opt
from models.errors import InputError
from models.frames import discover, open_sequence
from models.results import JOD_HELP, check_writable, stamp, table, write_csv, write_json, write_npz
from models.runtime import DEVICES

log = logging.getLogger("app")
CSV_COLUMNS = ("name", "score", "frames", "width", "height", "source", "seconds")


@dataclass
class AppConfig:
    """Options of one scoring run (all flags of app.py)."""

    inputs: list[str] = opt([str(EXAMPLES_DIR)], "a folder of frames, a folder of such folders, or a video "
                            "(default: examples/)", positional=True, metavar="INPUT")
    out: str | None = opt(None, "output folder (default: the input folder; with several inputs, the current one)")
    checkpoint: str | None = opt(None, "checkpoint folder with config.json + model.pth (default: released v0.0.1)")
    device: str = opt("auto", "auto (cuda if present) | cpu | cuda", choices=DEVICES)
    batch_size: int = opt(0, "frames per network call (0 = auto: 2 on CPU, measured fastest; 16 on CUDA)", min=0)
    features_only: bool = opt(False, "write features only, no JOD scores (checkpoints without regressor.json)")
    sort: str = opt("natural", "frame order within a folder: natural (frame2 before frame10) | plain (upstream's "
                    "sorted())", choices=("natural", "plain"))
    quiet: bool = opt(False, "no progress bars or info messages, the table only")


def parse_args(argv: list[str] | None = None) -> AppConfig:
    return cli.parse(AppConfig, argv, description="Score rendered sequences (folders of frames or videos) with "
                     "NVS-SQA: 384-d features + JOD.", epilog=JOD_HELP).config


def default_out(inputs: list[str]) -> Path:
    if len(inputs) == 1:
        p = Path(inputs[0])
        return p if p.is_dir() else p.parent
    return Path.cwd()


def unique_name(name: str, taken: set[str]) -> str:
    out, i = name, 2
    while out in taken:
        out, i = f"{name}-{i}", i + 1
    taken.add(out)
    return out


def run(cfg: AppConfig) -> int:
    """Score every sequence of ``cfg.inputs``; returns the process exit code."""
    from models.nvs_sqa import MIN_FRAME_SIZE, NVSSQA

    failures: list[str] = []
    paths: list[Path] = []
    for item in cfg.inputs:
        try:
            paths += discover(Path(item))
        except InputError as e:
            failures.append(str(e))
            log.error("%s", e)
    out = Path(cfg.out) if cfg.out else default_out(cfg.inputs)
    if not paths:
        return 2  # every input failed; each already said why in one line
    try:
        check_writable(out)
        model = NVSSQA.from_checkpoint(cfg.checkpoint, cfg.device)
        if model.regressor is None and not cfg.features_only:
            model.predict([])  # raises the one-line "no regressor" error
    except InputError as e:
        log.error("%s", e)
        return 2
    batch = cfg.batch_size or (16 if model.device.type == "cuda" else 2)

    rows, feats, taken = [], {}, set()
    for path in paths:
        t0 = time.perf_counter()
        try:
            seq = open_sequence(path, MIN_FRAME_SIZE, cfg.sort)  # type: ignore[arg-type]
            f = model.aggregate(model.frame_features(seq, batch, progress=not cfg.quiet))
        except InputError as e:
            failures.append(str(e))
            log.error("%s (skipped)", e)
            continue
        name = unique_name(seq.name, taken)
        feats[name] = f
        rows.append({"name": name, "frames": seq.n_frames, "width": seq.width, "height": seq.height,
                     "source": seq.source, "seconds": round(time.perf_counter() - t0, 2)})
    if not rows:
        return 2  # nothing scored, nothing written; each failure was reported above
    if not cfg.features_only:
        import numpy as np

        for row, s in zip(rows, model.predict(np.stack(list(feats.values()))), strict=True):
            row["score"] = float(s)

    write_npz(out / "output_features.npz", feats)
    meta = stamp(model_version=model.info.get("model_version"), checkpoint=model.info.get("path"),
                 checkpoint_sha256=model.info.get("checkpoint_sha256"),
                 regressor_sha256=model.info.get("regressor_sha256"), device=str(model.device),
                 config=asdict(cfg), failed=failures)
    if not cfg.features_only:
        write_csv(out / "scores.csv", rows, CSV_COLUMNS)
        write_json(out / "scores.json", {**meta, "jod_help": JOD_HELP, "rows": rows})
    cols = ["name", "frames", "width", "height"] + ([] if cfg.features_only else ["score"]) + ["seconds"]
    print(table(rows, [c for c in cols if c != "seconds"] + ["seconds"]))
    if not cfg.features_only:
        print(JOD_HELP)
    written = "output_features.npz" + ("" if cfg.features_only else ", scores.csv, scores.json")
    print(f"wrote {written} to {out}")
    if failures:
        print(f"{len(failures)} input(s) failed; see the errors above", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    return cli.main(parse_args, run, argv, interrupted="interrupted; nothing written")


if __name__ == "__main__":
    sys.exit(main())
