"""The methods of a scene, each with its frames paired with their ground truth, from the trees people have on disk.

A scene is every INPUT of one name (:func:`models.frames.folder_name`): ``runs_a/garden`` and ``runs_b/garden``, two
3DGS training runs, are one scene ``garden``. Every render an input holds (:func:`models.discovery.discover_all`) is a
method. With one input a method is named by its path relative to it (``nerfacto``, ``test/ours_30000``); with
several, by what tells the inputs apart (:func:`labels`: ``runs_a``, ``runs_b``), followed by that path where an
input holds several renders. A method given by name (``named``: report.py's ``--method NAME=PATH``) keeps the name
exactly as given.

Ground truth comes from ``gt`` (one folder of frames for every method) or from the ground-truth folder beside each
render (:func:`models.discovery.gt_beside`: 3DGS ``gt/`` beside ``renders/``, NerfBaselines ``gt-color/`` beside
``color/``, nerfstudio ``gt-rgb/``). A frame pairs with the ground-truth frame of the same name, else of the same
stem whatever the extension (``0001.jpg`` with ``0001.png``); a video's decoded frames pair by index with the
ground-truth frames in natural order, the shorter count used (one warning when the counts differ). Every entry passed
over on the way (a stray file, a sub-folder of a frame folder, a folder without frames) is counted in one line.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from consts import APP_OUTPUTS
from models.discovery import NOT_A_FRAME, SUBFOLDER, Found, discover_all, distinct, gt_beside, passed_over
from models.errors import InputError
from models.frames import folder_name, is_image, list_images, open_sequence, visible_entries
from models.pixels import read_image

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pair:
    """One frame of a method and its ground truth."""

    index: int  # the render's frame, 0-based along its path (a video: the decoded frame)
    frame: str  # its name in the tables: the render file's name; a video's frame takes its ground truth's
    gt: Path


@dataclass
class Method:
    """One method's render of a scene: its frames and, where known, each frame's ground truth."""

    scene: str
    name: str
    path: Path  # a folder of frames or a video
    frames: list[Path] = field(default_factory=list)  # empty for a video
    pairs: list[Pair] = field(default_factory=list)  # the frames with ground truth, in order
    unmatched: list[str] = field(default_factory=list)  # frames without ground truth (when there is ground truth)
    n_frames: int = 0  # its frames (a video: as its container declares them; 0 when it does not say)

    @property
    def key(self) -> str:
        return f"{self.scene}/{self.name}"

    @property
    def gt(self) -> dict[str, Path]:
        """Frame name (:attr:`Pair.frame`) -> its ground-truth file."""
        return {p.frame: p.gt for p in self.pairs}

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

    def render_label(self, pair: Pair) -> str:
        """How messages name a pair's render: its file, or the video and the frame's index."""
        return str(self.frames[pair.index]) if self.frames else f"{self.path} (frame {pair.index})"


class FrameProblems:
    """The problems of one method's frames, counted by kind (a message with the frame's own file names taken out):
    one line per kind, however many frames it hit."""

    def __init__(self) -> None:
        self.kinds: dict[str, list[tuple[str, str]]] = {}

    def add(self, frame: str, message: str, names: Sequence[str]) -> None:
        """A problem of ``frame``; ``names``: the strings naming that frame's files in ``message``."""
        key = message
        for n in names:
            key = key.replace(n, "\0")
        self.kinds.setdefault(key, []).append((frame, message))

    def __len__(self) -> int:
        return sum(len(v) for v in self.kinds.values())

    def lines(self, total: int) -> list[str]:
        """One line per kind: a single frame's message as is, else ``N of TOTAL frames: <the first> (also …)``."""
        out = []
        for items in self.kinds.values():
            first = items[0][1]
            if len(items) == 1:
                out.append(first)
                continue
            others = [f for f, _ in items[1:]]
            more = f", … ({len(others) - 3} more)" if len(others) > 3 else ""
            out.append(f"{len(items)} of {total} frames: {first} (the same for {', '.join(others[:3])}{more})")
        return out


def render_problem(method: Method, problems: FrameProblems, pair: Pair, message: str) -> None:
    """Count a pair's problem. A message about decoded pixels names them as the full-reference API names arrays
    (``render``, ``gt``): here they are named by their files (a video's frame: by the video and its index)."""
    label = method.render_label(pair)
    message = re.sub(r"^render: ", f"{label}: ", message)
    message = message.replace("the ground truth gt ", f"the ground truth {pair.gt} ")
    problems.add(pair.frame, message, [label, str(pair.gt)])


# ------------------------------------------------------------------------------------------ pairing
def _few(names: Sequence[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (", …" if len(names) > n else "")


def _pair_frames(m: Method, truth: list[Path], where: Path) -> None:
    """Frames with the ground truth of the same name, else of the same stem (extension aside; a stem that two
    ground-truth files share pairs by name only)."""
    by_name = {p.name: p for p in truth}
    by_stem: dict[str, list[Path]] = {}
    for p in truth:
        by_stem.setdefault(p.stem, []).append(p)
    for i, f in enumerate(m.frames):
        same = by_name.get(f.name) or (by_stem[f.stem][0] if len(by_stem.get(f.stem, ())) == 1 else None)
        if same is None:
            m.unmatched.append(f.name)
        else:
            m.pairs.append(Pair(i, f.name, same))
    if m.unmatched:
        how = f"{len(m.unmatched)} of {len(m.frames)} frames have" if m.pairs else f"none of its {len(m.frames)} " \
            "frames has"  # fmt: skip
        log.warning("%s: %s no ground truth of the same name (any extension) in %s (renders: %s; ground truth: %s); "
                    "the full-reference metrics use %s", m.key, how, where, _few(m.unmatched),
                    _few([p.name for p in truth]), "the others" if m.pairs else "none of them")


def _pair_video(m: Method, truth: list[Path], where: Path) -> None:
    """A video's frames with the ground-truth frames by index (natural order), the shorter count used."""
    count = len(truth) if m.n_frames == 0 else min(m.n_frames, len(truth))
    m.pairs = [Pair(i, truth[i].name, truth[i]) for i in range(count)]
    if m.n_frames and m.n_frames != len(truth):
        m.unmatched = [f"frame {i}" for i in range(len(truth), m.n_frames)]
        log.warning("%s: the video has %d frames and its ground truth %s %d; frames pair by index, the first %d of "
                    "each", m.key, m.n_frames, where, len(truth), count)


def _declared_frames(video: Path) -> int:
    """The frame count a video's container declares (0: it does not say, or the video cannot be opened: the
    metrics that read it say why)."""
    from models import video as av_video

    try:
        return av_video.probe(video).declared
    except InputError:
        return 0


def method_of(scene: str, name: str, path: Path, gt: Path | None) -> Method:
    """One method with its frames and their ground truth (``gt``, else the folder beside the render)."""
    if path.is_dir():
        frames = list_images(path)
        m = Method(scene, name, path, frames, n_frames=len(frames))
    else:
        m = Method(scene, name, path, n_frames=_declared_frames(path))
    where = gt if gt is not None else gt_beside(path)
    truth = list_images(where) if where is not None else []
    if truth:
        (_pair_frames if m.frames else _pair_video)(m, truth, where)  # type: ignore[arg-type]
    return m


def check_gt(gt: Path, methods: Sequence[Method]) -> None:
    """``gt`` given for every method: one InputError, with an example name from each side, when no frame of any
    method pairs with it."""
    if not methods or any(m.pairs for m in methods):
        return
    truth = list_images(gt)
    if not truth:
        raise InputError(f"gt={gt}: no frames (.png/.jpg/.jpeg) in this folder; give the folder of ground-truth frames")
    render = next((f"{m.name}/{m.frames[0].name}" for m in methods if m.frames), None)
    raise InputError(f"gt={gt}: no ground-truth frame has the name of a render's frame (e.g. render {render}, ground "
                     f"truth {truth[0].name}); name the ground-truth frames as the renders' (the extension may "
                     "differ)")


# ------------------------------------------------------------------------------------------ naming
def labels(inputs: Sequence[Path]) -> list[str]:
    """What tells the inputs of one scene apart: of each one's parent path, after the end they all share, the
    shortest end that no other input's has (``runs_a/garden``, ``runs_b/garden`` -> ``runs_a``, ``runs_b``;
    ``x/a/runs/garden``, ``y/a/runs/garden``, ``b/runs/garden`` -> ``x/a``, ``y/a``, ``b``)."""
    parts = [Path(os.path.abspath(p)).parent.parts[1:] for p in inputs]
    common = 0
    while all(len(ps) > common for ps in parts) and len({ps[len(ps) - 1 - common] for ps in parts}) == 1:
        common += 1
    parts = [ps[:len(ps) - common] for ps in parts]
    out = []
    for i, ps in enumerate(parts):
        n = next((n for n in range(1, len(ps) + 1) if all(o[-n:] != ps[-n:] for j, o in enumerate(parts) if j != i)),
                 len(ps))
        out.append("/".join(ps[-n:]) if n else os.path.abspath(inputs[i]))
    return out


def _named(found: list[tuple[Path, list[Found]]]) -> list[tuple[str, Path]]:
    """(name, path) of every render of a scene's inputs (see the module docstring)."""
    if len(found) == 1:
        return [(f.name, f.path) for f in found[0][1]]
    out = []
    for label, (_, renders) in zip(labels([inp for inp, _ in found]), found, strict=True):
        out += [(label if len(renders) == 1 else f"{label}/{f.name}", f.path) for f in renders]
    return [(f.name, f.path) for f in distinct([Found(p, n) for n, p in out])]


def one_render(path: Path) -> tuple[Path, list[tuple[Path, str]]]:
    """The one render at ``path`` (a frame folder, a video, or a folder holding one render) and what was passed over."""
    d = discover_all(path, warn=False)
    renders = d.renders()
    if len(renders) != 1:
        raise InputError(f"{path}: holds {len(renders)} renders ({_few([f.name for f in renders])}); give one frame "
                         "folder or video per method name")
    return renders[0].path, d.skipped


def _inner(folder: Path) -> list[tuple[Path, str]]:
    """What a frame folder holds besides its frames (our own outputs aside): sub-folders and other files."""
    try:
        entries = visible_entries(folder)
    except OSError:
        return []
    return [(p, SUBFOLDER if p.is_dir() else NOT_A_FRAME) for p in entries
            if not (p.is_file() and is_image(p)) and p.name not in APP_OUTPUTS]


def split_named(spec: str) -> tuple[str, Path]:
    """``NAME=PATH`` -> (NAME, PATH), NAME kept exactly as typed. Names and paths may both hold ``=``
    (``λ=0.5``, hydra's ``lr=0.01/``): the split is at the first ``=`` after which an existing path follows, else
    at the first."""
    cuts = [i for i, c in enumerate(spec) if c == "="]
    cut = next((i for i in cuts if Path(spec[i + 1:]).exists()), cuts[0] if cuts else -1)
    name, path = spec[:cut], spec[cut + 1:]
    if cut < 0 or not name or not path:
        raise InputError(f"method={spec!r}: expected NAME=PATH (a method's name, then its frame folder or video)")
    return name, Path(path)


def group_inputs(inputs: Sequence[Path], named: Sequence[str]) -> dict[str, tuple[list[Path], list[tuple[str, Path]]]]:
    """Scene name -> (its INPUTs, its named methods): INPUTs of one folder name are one scene; each ``NAME=PATH`` of
    ``named`` joins the only scene, or with several the one its ``SCENE/`` prefix names; without INPUTs the named
    methods make one scene, named after the folder their paths share."""
    groups: dict[str, tuple[list[Path], list[tuple[str, Path]]]] = {}
    for inp in inputs:
        groups.setdefault(folder_name(inp), ([], []))[0].append(inp)
    pairs = [split_named(spec) for spec in named]
    if not groups and pairs:
        shared = os.path.commonpath([os.path.abspath(p.parent) for _, p in pairs])
        groups[folder_name(Path(shared))] = ([], [])
    for spec, (name, path) in zip(named, pairs, strict=True):
        scene = next(iter(groups))
        if len(groups) > 1:
            scene, _, name = name.partition("/")
            if scene not in groups or not name:
                raise InputError(f"method={spec}: with several scenes ({', '.join(groups)}) name the method "
                                 "SCENE/NAME=PATH")
        groups[scene][1].append((name, path))
    return groups


# ------------------------------------------------------------------------------------------ the scene
@dataclass
class Scene:
    """One scene's methods, the inputs that could not be read (one line each) and every entry passed over (one
    line)."""

    name: str
    methods: list[Method]
    errors: list[str] = field(default_factory=list)
    passed_over: str | None = None


def load_scene(name: str, inputs: Sequence[Path], gt: Path | None = None,
               named: Sequence[tuple[str, Path]] = ()) -> Scene:
    """The methods of scene ``name`` from its ``inputs`` (trees or single renders) and ``named`` (name, path)
    methods, each paired with ``gt`` or the ground truth beside it. Two methods of one name are an InputError."""
    found, errors, skipped = [], [], []
    seen: dict[str, Path] = {}
    for inp in inputs:
        key = os.path.abspath(inp)
        if key in seen:
            raise InputError(f"{inp}: given twice for scene {name!r} (as {seen[key]})")
        seen[key] = inp
        try:
            d = discover_all(inp, warn=False)
        except InputError as e:
            errors.append(str(e))
            continue
        found.append((inp, d.renders()))
        skipped += d.skipped
    renders = _named(found) if found else []
    for method, path in named:
        try:
            render, passed = one_render(path)
        except InputError as e:
            errors.append(str(e))
            continue
        renders.append((method, render))
        skipped += passed
    _check_unique(name, renders)
    methods = [method_of(name, n, p, gt) for n, p in renders]
    for m in methods:
        if m.frames:
            skipped += _inner(m.path)
    _check_lengths(methods)
    return Scene(name, methods, errors, _passed_over(name, inputs, skipped))


def _check_unique(scene: str, renders: list[tuple[str, Path]]) -> None:
    paths: dict[str, Path] = {}
    for n, p in renders:
        if n in paths:
            raise InputError(f"{p}: scene {scene!r} has another method named {n!r} ({paths[n]}); give each method "
                             "its own name (NAME=PATH)")
        paths[n] = p


def _passed_over(scene: str, inputs: Sequence[Path], skipped: list[tuple[Path, str]]) -> str | None:
    """Every entry passed over in the scene's inputs, in one line (logged once)."""
    unique = list(dict.fromkeys((Path(os.path.abspath(p)), why) for p, why in skipped))
    if not unique:
        return None
    roots = [os.path.abspath(i) for i in inputs] or [str(unique[0][0].parent)]
    root = Path(roots[0] if len(roots) == 1 else os.path.commonpath(roots))
    line = passed_over(scene, unique, root)
    log.warning("%s", line)
    return line


def _check_lengths(methods: list[Method]) -> None:
    counts = {m.name: m.n_frames for m in methods if m.n_frames}
    if len(set(counts.values())) > 1:
        most = max(set(counts.values()), key=list(counts.values()).count)
        odd = ", ".join(f"{n} ({c})" for n, c in counts.items() if c != most)
        log.warning("%s: frame counts differ (most methods have %d; %s): each is scored on its own frames; paired "
                    "comparisons use the frames they share", methods[0].scene, most, odd)
