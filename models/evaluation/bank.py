"""The benchmark bank on disk and its feature cache.

Layout (upstream): ``{bank}/{dataset}/{scene}/{method}/frames/*.png|jpg``. A video is accepted instead of the
frames folder: the single video inside ``{bank}/{dataset}/{scene}/{method}/``, or
``{bank}/{dataset}/{scene}/{method}.mp4`` (any of consts.VIDEO_EXTS).

Features are cached on disk, one ``.npy`` per sequence, named by the sha256 of (checkpoint sha256, the
sequence's files with their resolved paths, sizes and mtimes): a re-run reads them back, a changed checkpoint
or a touched/replaced frame gives a new name and is recomputed.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from consts import VIDEO_EXTS
from models.errors import InputError
from models.frames import FrameSequence, is_image, is_video, open_sequence
from models.results import atomic_write_bytes

log = logging.getLogger(__name__)


def sequence_path(bank: Path, key: str) -> Path | None:
    """Where the sequence ``dataset+scene+method`` lives in ``bank`` (frames folder or video), or None."""
    dataset, scene, method = key.split("+")
    folder = bank / dataset / scene / method
    frames = folder / "frames"
    if frames.is_dir() and any(is_image(p) for p in frames.iterdir()):
        return frames
    if folder.is_dir():
        videos = sorted(p for p in folder.iterdir() if p.is_file() and is_video(p))
        if len(videos) == 1:
            return videos[0]
    for ext in VIDEO_EXTS:
        if (folder.parent / f"{method}{ext}").is_file():
            return folder.parent / f"{method}{ext}"
    return None


def scan_bank(bank: Path, keys: Iterable[str]) -> tuple[dict[str, Path], list[str]]:
    """({key: sequence path} for the keys present, [keys absent]). A bank with none of them is an error."""
    if not bank.is_dir():
        raise InputError(f"{bank}: benchmark bank folder not found; pass --bank, or --features FILE.npz")
    found, missing = {}, []
    for key in sorted(keys):
        path = sequence_path(bank, key)
        if path is None:
            missing.append(key)
        else:
            found[key] = path
    if not found:
        raise InputError(
            f"{bank}: no benchmark sequence with frames found; expected "
            f"{bank}/<dataset>/<scene>/<method>/frames/*.png|jpg (or a video per method)"
        )
    return found, missing


def sequence_identity(seq: FrameSequence) -> list[list]:
    """[[resolved path, size, mtime_ns], ...] of the files a sequence is read from, in frame order."""
    files = seq.files if seq.kind == "frames" else [Path(seq.source)]
    out = []
    for p in files:
        st = p.stat()
        out.append([str(p.resolve()), st.st_size, st.st_mtime_ns])
    return out


class FeatureCache:
    """On-disk cache of 384-d sequence features for one checkpoint: ``{root}/{sha256[:16]}/{key}.npy``."""

    def __init__(self, root: Path, checkpoint_sha256: str) -> None:
        self.checkpoint_sha256 = checkpoint_sha256
        self.dir = root / checkpoint_sha256[:16]

    def key(self, seq: FrameSequence) -> str:
        ident = {"checkpoint": self.checkpoint_sha256, "files": sequence_identity(seq)}
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()

    def get(self, seq: FrameSequence) -> np.ndarray | None:
        path = self.dir / f"{self.key(seq)}.npy"
        if not path.is_file():
            return None
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):  # a damaged entry is recomputed, not fatal
            log.warning("%s: unreadable cache entry, recomputing", path)
            return None

    def put(self, seq: FrameSequence, feat: np.ndarray) -> None:
        buf = io.BytesIO()
        np.save(buf, np.asarray(feat, dtype=np.float32))
        atomic_write_bytes(self.dir / f"{self.key(seq)}.npy", buf.getvalue())


def bank_features(
    model, paths: dict[str, Path], cache: FeatureCache | None, batch_size: int, progress: bool = True,
) -> tuple[dict[str, np.ndarray], int]:  # fmt: skip
    """Features of every sequence in ``paths`` ({key: path}) with the scorer engine ``model`` (an NVSSQA).

    Returns ({key: 384-d float32}, number of sequences computed rather than read from the cache).
    """
    from tqdm import tqdm

    from models.nvs_sqa import MIN_FRAME_SIZE

    feats, computed = {}, 0
    for key, path in tqdm(paths.items(), desc="features", unit="seq", disable=not progress):
        seq = open_sequence(path, MIN_FRAME_SIZE)
        hit = cache.get(seq) if cache else None
        if hit is None:
            hit = model.aggregate(model.frame_features(seq, batch_size, progress=False))
            computed += 1
            if cache:
                cache.put(seq, hit)
        feats[key] = hit
    return feats, computed
