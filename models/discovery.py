"""Finding the sequences of one INPUT, in the render trees people have on disk, and naming them for the user.

A sequence is a folder holding frames (.png/.jpg/.jpeg) or a video file. An INPUT is one sequence, or a folder
of them at any depth (up to :data:`MAX_DEPTH` levels): ``renders/{scene}/{method}/`` with or without a
``frames/`` folder, nerfstudio's ``ns-render`` output, the 3D Gaussian Splatting tree
``{model}/test/ours_{iter}/{renders,gt}`` and NerfBaselines' ``predictions/{color,gt-color}``.

Names keep the user's meaning (:func:`sequence_name`): a sequence's name is its path relative to the input it
was found under, posix-style, its last part dropped when that is only a render folder's conventional name
(``renders``, ``color``, ``rgb``, ``frames``) — ``garden/test/ours_30000`` for
``output/garden/test/ours_30000/renders`` under ``output/``. An input that is itself a sequence is named after
itself (its parent for a conventional leaf). Links keep the name they were given (never their target's).
Two sequences that would share a name keep what tells them apart (:func:`distinct`): ``a/frames`` and
``a/renders`` their leaf, a folder ``a/`` and a video ``a.mp4`` the video's extension (``a`` and ``a.mp4``).
Ground-truth folders (``gt``, ``gt-color``, ``gt-rgb``, ``gt_rgb``) are found with ``role="gt"``: the
full-reference metrics pair them with their renders (:func:`gt_beside`); scoring a render passes them over.
Which files are frames is :func:`models.frames.is_image` (hidden files and macOS ``._name`` forks are not).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from consts import APP_OUTPUTS, VIDEO_EXTS
from models.errors import InputError
from models.frames import folder_name, is_image, is_video, list_images, visible_entries

log = logging.getLogger(__name__)

MAX_DEPTH = 4  # levels below an INPUT that are searched for sequences
RENDER_LEAVES = frozenset({"renders", "color", "rgb", "frames"})  # a render folder's conventional names
GT_LEAVES = frozenset({"gt", "gt-color", "gt-rgb", "gt_rgb"})  # ground truth beside the renders
Role = Literal["render", "gt"]
SUBFOLDER = "a sub-folder of a frame folder (pass it as its own input to score it)"
NOT_A_FRAME = "not a frame (.png/.jpg/.jpeg)"
NO_FRAMES = "a folder without frames (.png/.jpg/.jpeg)"
NOT_A_SEQUENCE = "neither a frame folder nor a video"


@dataclass(frozen=True)
class Found:
    """One sequence of an INPUT: where it is (as found, links unresolved), its name, render or ground truth."""

    path: Path
    name: str
    role: Role = "render"


@dataclass
class Discovery:
    """What one INPUT expands to: the sequences, and every entry passed over, with the reason."""

    found: list[Found]
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        """The renders' paths (ground truth left out)."""
        return [f.path for f in self.found if f.role == "render"]

    def renders(self) -> list[Found]:
        return [f for f in self.found if f.role == "render"]


def sequence_name(path: Path, root: Path) -> str:
    """The name of the sequence at ``path`` found under the INPUT ``root`` (see the module docstring)."""
    rel = Path(os.path.relpath(os.path.abspath(path), os.path.abspath(root))) if path != root else Path(".")
    parts = [p for p in rel.parts if p != "."]
    if not parts:  # the input is the sequence itself
        parts = [folder_name(root)]
        if parts[0] in RENDER_LEAVES and folder_name(root.parent) not in ("", "/"):
            parts = [folder_name(root.parent)]
    elif len(parts) > 1 and parts[-1] in RENDER_LEAVES:
        parts = parts[:-1]
    name = "/".join(parts)
    return name.rsplit(".", 1)[0] if is_video(path) else name


def role_of(path: Path) -> Role:
    return "gt" if path.name.lower() in GT_LEAVES else "render"


def _list(folder: Path) -> list[Path]:
    """A folder's visible entries in natural order, our own outputs left out (OSError as is)."""
    return [p for p in visible_entries(folder) if p.name not in APP_OUTPUTS]


def _entries(folder: Path) -> list[Path]:
    """:func:`_list`, an unlistable folder being one InputError line."""
    try:
        return _list(folder)
    except OSError as e:
        raise InputError(f"{folder}: cannot list this folder ({e.strerror or e}); check its permissions") from None


def _holds_frames(entries: Sequence[Path]) -> bool:
    return any(p.is_file() and is_image(p) for p in entries)


def _walk(folder: Path, root: Path, depth: int, ancestors: frozenset[Path], out: Discovery) -> None:
    """Collect the sequences below ``folder`` (a folder without frames of its own); ``ancestors``: the resolved
    folders on the way down (a link back to one of them is a loop, not followed)."""
    for p in _entries(folder):
        if p.is_file():
            if is_video(p):
                out.found.append(Found(p, sequence_name(p, root)))
            else:
                out.skipped.append((p, NOT_A_SEQUENCE))
            continue
        real = p.resolve()
        if real in ancestors:
            out.skipped.append((p, "a link back to a folder above it"))
            continue
        try:
            entries = _list(p)
        except OSError as e:
            out.skipped.append((p, f"cannot be listed ({e.strerror or type(e).__name__})"))
            continue
        if _holds_frames(entries):
            out.found.append(Found(p, sequence_name(p, root), role_of(p)))
        elif depth < MAX_DEPTH and entries:
            _walk(p, root, depth + 1, ancestors | {real}, out)
        else:
            out.skipped.append((p, NO_FRAMES if depth < MAX_DEPTH or not entries
                                else f"deeper than {MAX_DEPTH} levels below the input"))


def distinct(found: list[Found]) -> list[Found]:
    """Sequences that would share a name keep what tells them apart: a render leaf its leaf (``a/frames``,
    ``a/renders``), a video its extension (``a`` for the folder ``a/``, ``a.mp4`` for the video)."""
    names = [f.name for f in found]
    clash = {n for n in names if names.count(n) > 1}

    def kept(f: Found) -> Found:
        if f.name not in clash:
            return f
        if is_video(f.path):
            return Found(f.path, f.name + f.path.suffix, f.role)
        return Found(f.path, f"{f.name}/{f.path.name}", f.role) if f.path.name in RENDER_LEAVES else f

    return [kept(f) for f in found]


def passed_over(label: str, skipped: Sequence[tuple[Path, str]], root: Path | None = None, shown: int = 3) -> str:
    """One line for every entry passed over: per reason the count and a few examples (relative to ``root``)."""
    by: dict[str, list[str]] = {}
    for p, why in skipped:
        rel = p.relative_to(root) if root is not None and p.is_relative_to(root) and p != root else p
        by.setdefault(why, []).append(f"{rel.as_posix()}{'/' if p.is_dir() else ''}")
    kinds = [f"{len(items)} × {why}: {', '.join(items[:shown])}" + (f" (+{len(items) - shown} more)"
                                                                   if len(items) > shown else "")
             for why, items in by.items()]  # fmt: skip
    n = len(skipped)
    return f"{label}: passed over {n} entr{'y' if n == 1 else 'ies'}: " + "; ".join(kinds)


def discover_all(path: Path, warn: bool = True) -> Discovery:
    """Expand one INPUT into its sequences (renders and ground truth), reporting what is passed over (never
    silently; one warning with ``warn``). A folder holding frames is one sequence; its sub-folders are not searched."""
    if not path.exists():
        raise InputError(f"{path}: no such file or folder; check the path")
    if path.is_file():
        if is_video(path) or is_image(path):
            return Discovery([Found(path, sequence_name(path, path.parent) if is_video(path) else path.stem)])
        raise InputError(f"{path}: not a frame folder or a video ({', '.join(VIDEO_EXTS)})")
    entries = _entries(path)
    if _holds_frames(entries):
        skipped = [(p, SUBFOLDER) for p in entries if p.is_dir()] + \
            [(p, NOT_A_FRAME) for p in entries if p.is_file() and not is_image(p)]  # fmt: skip
        return Discovery([Found(path, sequence_name(path, path), role_of(path))], skipped)
    out = Discovery([])
    _walk(path, path, 1, frozenset({path.resolve()}), out)
    out.found = distinct(out.found)
    if not out.found:
        listed = [f"{p.name}{'/' if p.is_dir() else ''} ({why})" for p, why in out.skipped]
        raise InputError(f"{path}: no frames (.png/.jpg/.jpeg), videos or sequence folders found"
                         + (f" (skipped: {', '.join(listed[:3])})" if listed else "")
                         + "; point at a folder of frames, a folder of such folders, or a video")
    if warn and out.skipped:
        log.warning("%s", passed_over(str(path), out.skipped, path))
    return out


def discover(path: Path) -> list[Path]:
    """The render paths of one INPUT (:func:`discover_all` without the skipped list, which it still logs)."""
    return discover_all(path).paths


def name_inputs(found: list[tuple[str, Found]]) -> list[Found]:
    """One run's sequences from several INPUTs, named uniquely: a name found under two inputs is prefixed, in each
    of them, with the folder its input is (or is in, for an input that is one sequence) — ``sceneA/nerfacto`` and
    ``sceneB/nerfacto`` — instead of being numbered."""
    inputs_of: dict[str, set[str]] = {}
    for item, f in found:
        inputs_of.setdefault(f.name, set()).add(item)
    out = []
    for item, f in found:
        if len(inputs_of[f.name]) > 1:
            root = Path(item)
            prefix = folder_name(root.parent if Path(f.path) == root else root)
            f = Found(f.path, f"{prefix}/{f.name}", f.role)
        out.append(f)
    return distinct(out)


def gt_beside(render: Path) -> Path | None:
    """The ground-truth folder beside a render (a folder or a video): the first entry of its parent named as one
    (:data:`GT_LEAVES`) that holds frames; None if there is none (or the parent cannot be listed)."""
    try:
        near = _list(render.parent)
    except OSError:
        return None
    return next((p for p in near if p != render and p.is_dir() and role_of(p) == "gt" and list_images(p)), None)


def fingerprint(path: Path) -> str:
    """A cheap identity of a sequence's content: the names, sizes and modification times of its frame files (of a
    video: its own). A frame changed, added or removed changes it; reading a frame does not."""
    h = hashlib.sha256()
    items = [path] if path.is_file() else sorted(list_images(path))
    for p in items:
        st = p.stat()
        h.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]
