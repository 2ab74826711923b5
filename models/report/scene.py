"""The methods of a scene, each with its frames and its ground truth, from the render trees people have on disk.

A scene is one INPUT of :func:`models.discovery.discover_all`: every render it holds is a method, named by its path
relative to the scene (``nerfacto``, ``test/ours_30000``). Ground truth comes from ``--gt`` (one folder of frames,
matched to each method's frames by file name) or, without it, from the ground-truth folder found beside each render
(3DGS ``gt/`` beside ``renders/``, NerfBaselines ``gt-color/`` beside ``color/``, nerfstudio ``gt-rgb/``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.discovery import Found, discover_all
from models.errors import InputError
from models.frames import folder_name, list_images, open_sequence
from models.pixels import read_image

log = logging.getLogger(__name__)


@dataclass
class Method:
    """One method's render of a scene: its frames and, where known, each frame's ground truth."""

    scene: str
    name: str
    path: Path  # a folder of frames or a video
    frames: list[Path] = field(default_factory=list)  # empty for a video
    gt: dict[str, Path] = field(default_factory=dict)  # frame file name -> ground-truth file
    unmatched: list[str] = field(default_factory=list)  # frames without ground truth (when there is ground truth)

    @property
    def key(self) -> str:
        return f"{self.scene}/{self.name}"

    def read(self, indices: Iterable[int]) -> dict[int, np.ndarray]:
        """Frames ``indices`` (0-based, along the path) as uint8 (H, W, 3) arrays; a video is decoded up to the
        last one. Indices past the end are left out."""
        want = set(indices)
        if self.frames:
            return {i: read_image(self.frames[i]) for i in sorted(want) if 0 <= i < len(self.frames)}
        out = {}
        for i, frame in enumerate(open_sequence(self.path, min_size=1)):
            if i in want:
                out[i] = frame
            if i >= max(want, default=-1):
                break
        return out

    def frame_name(self, index: int) -> str:
        return self.frames[index].name if self.frames else f"frame {index}"


def _pair(method: Method, gt_folder: Path | None) -> None:
    if gt_folder is None or not method.frames:
        return
    truth = {p.name: p for p in list_images(gt_folder)}
    method.gt = {f.name: truth[f.name] for f in method.frames if f.name in truth}
    method.unmatched = [f.name for f in method.frames if f.name not in truth]
    if method.unmatched:
        log.warning("%s: %d of %d frames have no ground truth of the same name in %s (%s%s); the full-reference "
                    "metrics use the others", method.key, len(method.unmatched), len(method.frames), gt_folder,
                    ", ".join(method.unmatched[:3]), ", …" if len(method.unmatched) > 3 else "")


def scene_methods(scene: Path, gt: Path | None = None) -> tuple[list[Method], list[str]]:
    """The methods of ``scene`` with their frames and ground truth, and one line per entry passed over (a method
    folder without frames, a stray file; discovery also warns about them). An unusable scene is one InputError."""
    d = discover_all(scene)
    skipped = [f"{p}: passed over ({why})" for p, why in d.skipped]
    truths = [f for f in d.found if f.role == "gt"]
    if gt is not None and not Path(gt).is_dir():
        raise InputError(f"{gt}: ground-truth folder not found; give a folder of frames named as the renders'")
    name = folder_name(scene)
    methods = []
    for f in d.renders():
        m = Method(name, f.name, f.path, list_images(f.path) if f.path.is_dir() else [])
        _pair(m, Path(gt) if gt is not None else _beside(f, truths))
        methods.append(m)
    _check_lengths(methods)
    return methods, skipped


def _beside(render: Found, truths: list[Found]) -> Path | None:
    """The ground-truth folder next to a render folder (same parent), if any."""
    return next((t.path for t in truths if t.path.parent == render.path.parent), None)


def _check_lengths(methods: list[Method]) -> None:
    counts = {m.name: len(m.frames) for m in methods if m.frames}
    if len(set(counts.values())) > 1:
        most = max(set(counts.values()), key=list(counts.values()).count)
        odd = ", ".join(f"{n} ({c})" for n, c in counts.items() if c != most)
        log.warning("%s: frame counts differ (most methods have %d; %s): each is scored on its own frames; paired "
                    "comparisons use the frames they share", methods[0].scene, most, odd)
