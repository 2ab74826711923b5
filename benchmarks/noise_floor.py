"""How much a score moves for changes nobody would see: the noise floor of NVS-SQA scores (part of ``make validity``).

On each example sequence (120 frames at 960x768, released weights, CPU), scored in one pass and as the quality
curve's short windows:

- ``+1`` / ``-1``: every pixel shifted by one code value (clipped at 0 and 255): invisible;
- ``jpeg95`` / ``jpeg90``: every frame through a JPEG round trip (Pillow, 4:2:0) at quality 95 / 90;
- ``h264-crf18`` / ``h264-crf23``: the sequence as an H.264 video (yuv420p, BT.709 tagged; PyAV), decoded back;
- ``reversed``: the same frames in reverse order (the same content, the camera path walked backwards).

The noise floor is the largest |score change| over the first six (invisible, or the encodes renders commonly go
through), on every sequence, rounded up to 0.01 JOD: a difference under it between two renders is not a
difference. The curve's floor is the same over every window. ``reversed`` is reported, not counted: two renders
of one scene compared by a user walk the same path the same way.
Beside it, the position effect (not noise — the model's own behaviour, reported): a Gaussian blur (sigma 3 px) on
30 consecutive frames of the 120, at start frames 0, 15, …, 90: the score change depends on where along the path
the defect is.
"""

from __future__ import annotations

import io
import math
import tempfile
from pathlib import Path

import numpy as np
import torch

from models import video
from models.frames import open_array, open_video
from models.nvs_sqa.network import MIN_FRAME_SIZE
from models.nvs_sqa.scorer import NVSSQA

NUISANCES = ("+1", "-1", "jpeg95", "jpeg90", "h264-crf18", "h264-crf23", "reversed")
IN_FLOOR = NUISANCES[:6]  # what the noise floor is taken over (see the module docstring)
BLUR_SIGMA = 3.0
BLUR_SPAN = 30


def _jpeg(frames: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    out = []
    for f in frames:
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, "JPEG", quality=quality)
        out.append(np.asarray(Image.open(buf).convert("RGB")))
    return np.stack(out)


def _h264(frames: np.ndarray, crf: int) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.mp4"
        video.encode(path, frames, codec="libx264", pix_fmt="yuv420p", options={"crf": str(crf)})
        return np.stack(list(open_video(path, MIN_FRAME_SIZE)))


def perturbed(frames: np.ndarray, kind: str) -> np.ndarray:
    """``frames`` (T, H, W, 3) uint8 after one of :data:`NUISANCES` (except ``reversed``, done on features)."""
    if kind in ("+1", "-1"):
        return np.clip(frames.astype(np.int16) + (1 if kind == "+1" else -1), 0, 255).astype(np.uint8)
    if kind.startswith("jpeg"):
        return _jpeg(frames, int(kind[4:]))
    if kind.startswith("h264-crf"):
        return _h264(frames, int(kind[8:]))
    raise ValueError(kind)


def _blurred(frames: np.ndarray) -> np.ndarray:
    import cv2

    return np.stack([cv2.GaussianBlur(f, (0, 0), BLUR_SIGMA, borderType=cv2.BORDER_REFLECT) for f in frames])


def _scores(model: NVSSQA, feats: torch.Tensor, window: int, stride: int) -> tuple[float, np.ndarray]:
    """(single-pass score, scores of the curve's windows)."""
    return model.score_features(feats, 0).score, model.score_features(feats, window, stride).scores


def measure_sequence(model: NVSSQA, frames: np.ndarray, feats: torch.Tensor, window: int, stride: int,
                     batch: int = 2) -> dict:  # fmt: skip
    """The score changes of one sequence (``feats``: its clean per-frame features)."""
    clean, clean_w = _scores(model, feats, window, stride)
    rows = []
    for kind in NUISANCES:
        if kind == "reversed":
            f = feats.flip(0)
            s, w = _scores(model, f, window, stride)
            w = w[::-1]  # window i of the reversed path covers the frames of window n-1-i
        else:
            f = model.frame_features(open_array(perturbed(frames, kind), MIN_FRAME_SIZE), batch)
            s, w = _scores(model, f, window, stride)
        rows.append({"change": kind, "score": s, "delta": s - clean,
                     "max_window_delta": float(np.abs(np.asarray(w) - clean_w).max())})
    blur = model.frame_features(open_array(_blurred(frames), MIN_FRAME_SIZE), batch)
    position = []
    for start in range(0, len(frames) - BLUR_SPAN + 1, 15):
        f = feats.clone()
        f[start:start + BLUR_SPAN] = blur[start:start + BLUR_SPAN]
        s = model.score_features(f, 0).score
        position.append({"blurred_frames": f"{start}-{start + BLUR_SPAN - 1}", "start": start, "delta": s - clean})
    return {"clean": clean, "nuisances": rows, "position": position}


def floors(per_seq: dict[str, dict]) -> tuple[float, float]:
    """(noise floor of a score, of one curve window): the largest change, rounded up to 0.01 JOD."""
    def up(x: float) -> float:
        return math.ceil(x * 100 - 1e-9) / 100

    rows = [r for m in per_seq.values() for r in m["nuisances"] if r["change"] in IN_FLOOR]
    score, window = max(abs(r["delta"]) for r in rows), max(r["max_window_delta"] for r in rows)
    return up(score), up(window)
