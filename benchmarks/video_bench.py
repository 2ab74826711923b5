"""What video encoding and decoding do to NVS-SQA scores: the example sequences as videos, scored by the released model.

    python -m benchmarks.video_bench   -> benchmarks/video.{json,md}

Each example (960x768, 120 frames) is encoded with :func:`models.video.encode` (PyAV) and scored from the video
(decoded by :mod:`models.video`); the scores are compared with the score of the frames themselves:

- FFV1 ``bgr0`` in .mkv: lossless RGB (must score as the frames, to float rounding);
- FFV1 ``yuv420p`` and ``yuv420p10le``, BT.709 limited range: lossless YUV, so only the RGB -> YUV 4:2:0 -> RGB
  conversion differs (8- and 10-bit);
- libx264 CRF 18 and 23, ``yuv420p``, BT.709 limited range, tagged: typical lossy encodes;
- libx264 CRF 23, BT.601, untagged: swscale's default matrix when RGB becomes YUV without a given one, no tags
  (decoded right, since untagged video is decoded as BT.601);
- libx264 CRF 23, BT.709, untagged: a mis-tagged video, decoded as BT.601 (what ignoring the tags costs);
- the CRF 23 BT.709 tagged file read by OpenCV (``cv2.VideoCapture``), the decoder this project used before.

Decode time is a separate pass (decode + RGB conversion only) on the same machine.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from consts import EXAMPLE_SEQUENCES, EXAMPLES_DIR, ROOT
from models import cli, video
from models.cli import opt
from models.frames import open_array, open_frame_folder, open_video
from models.nvs_sqa.network import MIN_FRAME_SIZE
from models.nvs_sqa.scorer import NVSSQA
from models.results import stamp, table, write_report

log = logging.getLogger(__name__)
X264 = {"codec": "libx264", "pix_fmt": "yuv420p"}
# name -> (file suffix, encode() arguments)
ENCODES: dict[str, tuple[str, dict]] = {
    "ffv1 rgb (lossless)": (".mkv", {"codec": "ffv1", "pix_fmt": "bgr0"}),
    "ffv1 yuv420p bt709": (".mkv", {"codec": "ffv1", "pix_fmt": "yuv420p"}),
    "ffv1 yuv420p10le bt709": (".mkv", {"codec": "ffv1", "pix_fmt": "yuv420p10le"}),
    "h264 crf18 bt709": (".mp4", {**X264, "options": {"crf": "18"}}),
    "h264 crf23 bt709": (".mp4", {**X264, "options": {"crf": "23"}}),
    "h264 crf23 bt601 untagged": (".mp4", {**X264, "options": {"crf": "23"}, "matrix": "BT.601", "tag": False}),
    "h264 crf23 bt709 untagged": (".mp4", {**X264, "options": {"crf": "23"}, "tag": False}),
}
OPENCV_OF = "h264 crf23 bt709"


@dataclass
class VideoBenchConfig:
    """Flags of ``python -m benchmarks.video_bench``."""

    frames: int = opt(120, "frames per example (default: all 120)", min=1)
    out: str = opt(str(ROOT / "benchmarks"), "folder for video.json and video.md")


def _opencv_frames(path: Path) -> np.ndarray:
    import cv2

    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return np.stack(out)


def _score(model: NVSSQA, source) -> float:
    return float(model.predict(model.features(source, batch_size=2))[0])


def measure(model: NVSSQA, seq: str, work: Path, n_frames: int) -> list[dict]:
    frames = np.stack(list(open_frame_folder(EXAMPLES_DIR / seq, MIN_FRAME_SIZE)))[:n_frames]
    ref = _score(model, open_array(frames, MIN_FRAME_SIZE))
    rows = [{"sequence": seq, "input": "frames", "decoded as": "8-bit RGB", "MB": None, "decode ms/frame": None,
             "mean |dpixel|": 0.0, "max |dpixel|": 0, "JOD": ref, "dJOD": 0.0}]
    paths = {}
    for name, (suffix, kw) in ENCODES.items():
        path = paths[name] = work / f"{seq}-{name.replace(' ', '_')}{suffix}"
        video.encode(path, frames, **kw)
        t0 = time.perf_counter()
        got = np.stack(list(video.frames(path, frames.shape[2], frames.shape[1])))
        ms = (time.perf_counter() - t0) / len(got) * 1000
        assert len(got) == len(frames), f"{path}: {len(got)} frames decoded of {len(frames)}"
        jod = _score(model, open_video(path, MIN_FRAME_SIZE))
        rows.append(_row(seq, name, video.probe(path).colour.describe(), path, ms, got, frames, jod, ref))
    t0 = time.perf_counter()
    got = _opencv_frames(paths[OPENCV_OF])
    ms = (time.perf_counter() - t0) / len(got) * 1000
    jod = _score(model, open_array(got, MIN_FRAME_SIZE))
    rows.append(_row(seq, f"{OPENCV_OF}, read by OpenCV", "OpenCV", paths[OPENCV_OF], ms, got, frames, jod, ref))
    return rows


def _row(seq: str, name: str, decoded: str, path: Path, ms: float, got: np.ndarray, frames: np.ndarray, jod: float,
         ref: float) -> dict:
    d = np.abs(got.astype(np.int16) - frames.astype(np.int16))
    return {"sequence": seq, "input": name, "decoded as": decoded, "MB": round(path.stat().st_size / 2**20, 2),
            "decode ms/frame": round(ms, 1), "mean |dpixel|": round(float(d.mean()), 3), "max |dpixel|": int(d.max()),
            "JOD": jod, "dJOD": jod - ref}


def report(rows: list[dict], n_frames: int) -> str:
    cols = list(rows[0])
    return "\n\n".join([
        "# Scores of the examples as videos (released v0.0.1)",
        f"Made by `python -m benchmarks.video_bench` ({n_frames} frames per example); decoding by "
        "models/video.py (PyAV); see docs/scoring.md, 'Videos'. `dJOD` = video score - frames score; "
        "`|dpixel|` on the 0-255 scale, decoded frames vs the source frames.",
        table(rows, cols, fmt="github", text=("input", "decoded as"),
              floatfmt=("", "", "", ".2f", ".1f", ".3f", "", ".4f", "+.4f")),  # type: ignore[arg-type]
    ]) + "\n"


def run(cfg: VideoBenchConfig) -> int:
    import av
    import cv2

    model = NVSSQA.from_checkpoint(None, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [r for seq in EXAMPLE_SEQUENCES for r in measure(model, seq, Path(tmp), cfg.frames)]
    result = {**stamp(model=model.info, av=av.__version__, opencv=cv2.__version__, ffmpeg=av.library_versions),
              "rows": rows}
    write_report(Path(cfg.out), "video", result, report(rows, cfg.frames))
    return 0


main = cli.script(VideoBenchConfig, run, __doc__.split("\n")[0])


if __name__ == "__main__":
    sys.exit(main())
