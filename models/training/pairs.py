"""Training pairs for self-supervised NVS-SQA: validate ``renders/``, sample pairs, build and degrade them.

``renders/{scene}__{method}/00000.png…``: every method of a scene renders the same camera path, so frame i of
two methods shows the same view. A pair (spec: ../shared/specs/nvs-sqa.md, Self-supervised training):

- a scene and two different methods m1, m2; one random crop (w, h uniform in [crop_min, crop_max], clipped
  to the smallest frame minus ``crop_margin``) and random h/v flips, shared by both sequences;
- segment length L = ``segment_pixels / (w·h)`` frames (paper: 200·200·60·16/16), capped by the sequence,
  at least ``min_segment``; a random start;
- sequence 1 = the m1 frames; sequence 2 = the same frames with floor(r·L) random positions replaced by the
  m2 frames, r ~ U[0.5, 1];
- each sequence gets one noise key 0..11 (NOISES; 6–11 = none).

That is the paper's description (``--recipe paper``). The authors' training code differs in several ways
(spec: "What the upstream training code actually does"); ``--recipe upstream`` (the default) reproduces it.
:class:`~models.training.targets.Recipe` holds every difference, one field each, and ``RECIPES`` the two
recipes (both, and the noises, live in targets.py beside the targets they change; re-exported here).

Every random choice of pair ``index`` in ``epoch`` comes from ``np.random.default_rng([seed, stream, epoch,
index])`` (and, under a per-batch crop, the batch's crop and length from ``default_rng([seed, stream, epoch,
batch, 1])``): a pair does not depend on the worker that builds it, on the number of workers, or on what was
sampled before, which is what makes ``--resume`` exact. These seeded streams differ from upstream's global
``random``/``np.random`` draws; the distributions are the same.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models import cli
from models.cli import opt
from models.errors import InputError
from models.frames import is_image, natural_key, open_frame_folder, read_image
from models.training.targets import (  # noqa: F401  (re-exported: the recipes and noises, as pairs.X)
    NOISES,
    RECIPES,
    Recipe,
    apply_noise,
    get_recipe,
    noise_frame_upstream,
    noise_values_upstream,
)

log = logging.getLogger(__name__)
SEP = "__"  # renders/{scene}__{method}
TRAIN_STREAM, VAL_STREAM = 0, 1


# --------------------------------------------------------------------------------------------- renders/
@dataclass
class Scene:
    """All renders of one scene: method -> frame files (same count and size for every method)."""

    name: str
    methods: dict[str, list[Path]]
    width: int
    height: int

    @property
    def n_frames(self) -> int:
        return len(next(iter(self.methods.values())))


def scan_renders(root: str | Path, min_size: int = 1) -> list[Scene]:
    """Validate ``root`` = ``renders/`` and index it. Errors name the offending folder and the fix."""
    root = Path(root)
    if not root.is_dir():
        what = "a file, not a folder" if root.exists() else "no such folder"
        raise InputError(f"{root}: {what}; lay out training renders as {root}/<scene>{SEP}<method>/00000.png")
    groups: dict[str, dict[str, Path]] = defaultdict(dict)
    for d in sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                    key=lambda p: natural_key(p.name)):
        if not any(is_image(f) for f in d.iterdir()):
            log.warning("%s: no frames, ignored", d)
            continue
        scene, sep, method = d.name.partition(SEP)
        if not sep or not scene or not method:
            raise InputError(f"{d}: folder name must be <scene>{SEP}<method> (e.g. Giraffe{SEP}NeRF); rename it")
        groups[scene][method] = d
    if not groups:
        raise InputError(f"{root}: no <scene>{SEP}<method> folders with frames; render some first (preprocess.py)")
    scenes = []
    for name, methods in groups.items():
        if len(methods) < 2:
            only = next(iter(methods.values()))
            raise InputError(f"{only}: scene '{name}' has one method; training pairs need ≥2 methods per scene "
                             f"(add another {name}{SEP}<method> folder or remove this one)")
        seqs = {m: open_frame_folder(d, min_size) for m, d in methods.items()}
        first_m, first = next(iter(seqs.items()))
        for m, s in seqs.items():
            if (s.n_frames, s.width, s.height) != (first.n_frames, first.width, first.height):
                raise InputError(
                    f"{methods[m]}: {s.n_frames} frames of {s.width}x{s.height}, but {methods[first_m].name} has "
                    f"{first.n_frames} of {first.width}x{first.height}; all methods of a scene must render the "
                    "same camera path at one size"
                )
        scenes.append(Scene(name, {m: s.files for m, s in seqs.items()}, first.width, first.height))
    return scenes


def link_example_renders(root: str | Path) -> Path:
    """Lay out the two example sequences (one camera path, two methods) as ``root/Giraffe__NeRF`` and
    ``root/Giraffe__IBRNet-C`` symlinks: a real, tiny training set for the cpu-smoke preset."""
    from consts import EXAMPLES_DIR

    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        for method in ("NeRF", "IBRNet-C"):
            link = root / f"Giraffe{SEP}{method}"
            if not link.exists():
                link.symlink_to((EXAMPLES_DIR / f"Giraffe+{method}").resolve(), target_is_directory=True)
    except OSError as e:
        raise InputError(f"{root}: cannot lay out the example renders here ({e.strerror or e}); "
                         "choose a writable folder") from e
    return root


# --------------------------------------------------------------------------------------------- sampling
@dataclass
class PairConfig:
    """How pairs are drawn (paper values as defaults; the flags of train.py's pair sampling group)."""

    crop_min: int = opt(150, "smallest crop width/height in px (crop sides are uniform in [crop-min, crop-max]; "
                        "the encoder needs >= 69)", min=1)
    crop_max: int = opt(600, "largest crop width/height in px", min=1)
    crop_margin: int = opt(75, "--recipe paper: crop sides are also capped at the smallest frame side minus this "
                           "many px (--recipe upstream uses the authors' 15 px in x, 5 px in y)", min=0)
    segment_pixels: int = opt(200 * 200 * 60, "pixel budget of a segment: length L = segment-pixels / (crop w*h) "
                              "frames (paper: 200*200*60)", min=1)
    min_segment: int = opt(2, "fewest frames in a segment when the sequence has them (ST-RRED compares frame pairs)",
                           min=1)
    replace_min: float = opt(0.5, "smallest replace ratio r ~ U[replace-min, replace-max]: --recipe paper replaces "
                             "floor(r*L) frames of sequence 2; upstream all of them with probability floor(r*L)/L",
                             min=0)
    replace_max: float = opt(1.0, "largest share r of replaced frames (at most 1)", min=0)
    noise: bool = opt(True, "degrade each sequence with one of the noises (keys 0..11, half of them none); "
                      "--no-noise: clean pairs")
    jpeg_quality: tuple[int, int] = opt((10, 75), "JPEG quality range of the jpeg noise (uniform, inclusive, 0..100)",
                                        min=0, metavar="Q")

    def __post_init__(self) -> None:
        self.jpeg_quality = tuple(self.jpeg_quality)  # type: ignore[assignment]  # JSON gives a list
        if not 0 <= self.replace_min <= self.replace_max <= 1:
            raise InputError(f"--replace-min {self.replace_min} / --replace-max {self.replace_max}: need "
                             "0 <= replace-min <= replace-max <= 1 (shares of replaced frames)")
        if not 0 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100:
            raise InputError(f"--jpeg-quality {' '.join(map(str, self.jpeg_quality))}: need 0 <= low <= high <= 100")


@dataclass
class PairSpec:
    """Everything random about one pair (so it can be logged, replayed, or built in any process)."""

    scene: str
    m1: str
    m2: str
    box: tuple[int, int, int, int]  # x, y, w, h
    hflip: bool
    vflip: bool
    start: int
    length: int
    replaced: list[int]  # positions in [0, length) taken from m2 in sequence 2
    ratio: float  # r
    noise: tuple[int, int]  # noise key of sequence 1, 2
    noise_seed: int = 0
    recipe: str = "paper"  # how build_pair degrades and mixes (Recipe.noise / Recipe.replacement)


def sample_pair(scene: Scene, cfg: PairConfig, rng: np.random.Generator) -> PairSpec:
    methods = sorted(scene.methods)
    i1, i2 = rng.choice(len(methods), size=2, replace=False)
    hi_w, hi_h = min(cfg.crop_max, scene.width - cfg.crop_margin), min(cfg.crop_max, scene.height - cfg.crop_margin)
    if min(hi_w, hi_h) < cfg.crop_min:
        raise InputError(f"scene {scene.name}: frames are {scene.width}x{scene.height}, too small for crops of "
                         f"≥{cfg.crop_min} px plus a {cfg.crop_margin} px margin; lower `crop_min`/`crop_margin`")
    w, h = int(rng.integers(cfg.crop_min, hi_w + 1)), int(rng.integers(cfg.crop_min, hi_h + 1))
    x, y = int(rng.integers(0, scene.width - w + 1)), int(rng.integers(0, scene.height - h + 1))
    hflip, vflip = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
    n = scene.n_frames
    length = min(n, max(cfg.min_segment, cfg.segment_pixels // (w * h)))
    start = int(rng.integers(0, n - length + 1))
    ratio = float(rng.uniform(cfg.replace_min, cfg.replace_max))
    replaced = sorted(int(i) for i in rng.choice(length, size=int(np.floor(ratio * length)), replace=False))
    noise = (int(rng.integers(0, 12)), int(rng.integers(0, 12))) if cfg.noise else (11, 11)
    return PairSpec(scene.name, methods[i1], methods[i2], (x, y, w, h), hflip, vflip, start, length, replaced,
                    ratio, noise, int(rng.integers(0, 2**31)))


def epoch_order(seed: int, per_epoch: int, epoch: int) -> np.ndarray:
    """Pair indices of ``epoch`` in training order (a seeded shuffle; consecutive runs of batch_size = batches)."""
    return np.random.default_rng([seed, 2, epoch]).permutation(per_epoch)


def batch_shape(scenes: list[Scene], cfg: PairConfig, recipe: Recipe, rng: np.random.Generator) -> tuple[int, int, int]:
    """Upstream's per-batch crop (w, h) and segment length L for a batch of pairs from ``scenes``.

    w, h ~ randint[crop_min, crop_max] each, then clipped to the batch's smallest frame minus the margin;
    L = segment_pixels // (w·h) (at least min_segment), capped by the batch's shortest sequence.
    """
    mx, my = recipe.crop_margin or (cfg.crop_margin, cfg.crop_margin)
    w, h = int(rng.integers(cfg.crop_min, cfg.crop_max + 1)), int(rng.integers(cfg.crop_min, cfg.crop_max + 1))
    small = min(scenes, key=lambda s: min(s.width - mx, s.height - my))
    w, h = min(w, min(s.width for s in scenes) - mx), min(h, min(s.height for s in scenes) - my)
    if min(w, h) < cfg.crop_min:
        raise InputError(f"scene {small.name}: frames are {small.width}x{small.height}, too small for crops of "
                         f"≥{cfg.crop_min} px plus a {mx}x{my} px margin; lower `crop_min`")
    length = min(min(s.n_frames for s in scenes), max(cfg.min_segment, cfg.segment_pixels // (w * h)))
    return w, h, length


def sample_pair_upstream(scene: Scene, cfg: PairConfig, rng: np.random.Generator, w: int, h: int,
                         length: int) -> PairSpec:
    """A pair as the authors' code draws it, inside a batch whose crop is w×h and segment length ``length``:
    all-or-nothing replacement with probability floor(rL)/L (the replace target stays 1 − 2r)."""
    methods = sorted(scene.methods)
    i1, i2 = rng.choice(len(methods), size=2, replace=False)
    x, y = int(rng.integers(0, scene.width - w + 1)), int(rng.integers(0, scene.height - h + 1))
    hflip, vflip = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
    start = int(rng.integers(0, scene.n_frames - length + 1))
    ratio = float(rng.uniform(cfg.replace_min, cfg.replace_max))
    whole = bool(rng.random() < np.floor(ratio * length) / length)
    noise = (int(rng.integers(0, 12)), int(rng.integers(0, 12))) if cfg.noise else (11, 11)
    return PairSpec(scene.name, methods[i1], methods[i2], (x, y, w, h), hflip, vflip, start, length,
                    list(range(length)) if whole else [], ratio, noise, int(rng.integers(0, 2**31)), "upstream")


# --------------------------------------------------------------------------------------------- building
def _read_noisy(files: list[Path], idx: list[int], box: tuple[int, int, int, int], key: int,
                rng: np.random.Generator, jpeg_quality: tuple[int, int]) -> np.ndarray:
    """Upstream order: each full frame is degraded, then cropped."""
    x, y, w, h = box
    return np.stack([noise_frame_upstream(read_image(files[i]), key, rng, jpeg_quality)[y:y + h, x:x + w]
                     for i in idx])


def _build_upstream(scene: Scene, spec: PairSpec, cfg: PairConfig) -> tuple[np.ndarray, np.ndarray]:
    idx = list(range(spec.start, spec.start + spec.length))
    rng = np.random.default_rng(spec.noise_seed)
    s1 = _read_noisy(scene.methods[spec.m1], idx, spec.box, spec.noise[0], rng, cfg.jpeg_quality)
    # all or nothing: sequence 2 is m2's frames with its own noise, or sequence 1 itself (same noisy frames)
    s2 = _read_noisy(scene.methods[spec.m2], idx, spec.box, spec.noise[1], rng, cfg.jpeg_quality) \
        if spec.replaced else s1
    return s1, s2


def _read(files: list[Path], idx: list[int], box: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = box
    return np.stack([read_image(files[i])[y:y + h, x:x + w] for i in idx])


def build_pair(scene: Scene, spec: PairSpec, cfg: PairConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode, crop, flip, mix and degrade: two (L, 3, h, w) uint8 tensors. Only the needed frames are read.

    ``spec.recipe == "upstream"``: noise per full frame, then crop, then flips (the authors' order)."""
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).contiguous()  # noqa: E731
    if spec.recipe == "upstream":
        s1, s2 = _build_upstream(scene, spec, cfg)
        same = s2 is s1
        if spec.hflip:
            s1 = s1[:, :, ::-1]
        if spec.vflip:
            s1 = s1[:, ::-1]
        if same:
            t1 = to_t(s1)
            return t1, t1.clone()
        if spec.hflip:
            s2 = s2[:, :, ::-1]
        if spec.vflip:
            s2 = s2[:, ::-1]
        return to_t(s1), to_t(s2)
    idx = list(range(spec.start, spec.start + spec.length))
    s1 = _read(scene.methods[spec.m1], idx, spec.box)
    s2 = s1.copy()
    if spec.replaced:
        s2[spec.replaced] = _read(scene.methods[spec.m2], [idx[i] for i in spec.replaced], spec.box)
    if spec.hflip:
        s1, s2 = s1[:, :, ::-1], s2[:, :, ::-1]
    if spec.vflip:
        s1, s2 = s1[:, ::-1], s2[:, ::-1]
    rng = np.random.default_rng(spec.noise_seed)
    s1 = apply_noise(np.ascontiguousarray(s1), spec.noise[0], rng, cfg.jpeg_quality)
    s2 = apply_noise(np.ascontiguousarray(s2), spec.noise[1], rng, cfg.jpeg_quality)
    return to_t(s1), to_t(s2)


class PairDataset(torch.utils.data.Dataset):
    """Pair ``g`` = (epoch, index) with ``g = epoch · per_epoch + index``; returns the two sequences, the pair's
    :class:`PairSpec` and the worker's timings. The targets are not computed here: the training loop (and the
    preview) score a batch on the training device with :func:`~models.training.device_targets.batch_targets`.

    ``recipe`` (a name of RECIPES or a Recipe) picks the behaviour. Under a per-batch crop (upstream) the
    batches are consecutive runs of ``batch_size`` pairs of :func:`epoch_order` (what the training loop feeds);
    a batch's crop and length come from (seed, stream, epoch, batch index) and the batch's scenes, so each pair
    is still built on its own, in any worker. ``batch_size=1``: every pair is its own batch (validation).
    """

    def __init__(self, scenes: list[Scene], cfg: PairConfig, seed: int, per_epoch: int, stream: int = TRAIN_STREAM,
                 recipe: str | Recipe = "upstream", batch_size: int = 1) -> None:
        self.scenes, self.cfg, self.seed, self.per_epoch, self.stream = scenes, cfg, seed, per_epoch, stream
        self.recipe, self.batch_size = get_recipe(recipe), max(1, batch_size)
        self._orders: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.per_epoch

    def spec(self, g: int) -> PairSpec:
        epoch, index = divmod(g, self.per_epoch)
        rng = np.random.default_rng([self.seed, self.stream, epoch, index])
        scene = self.scenes[index % len(self.scenes)]
        if self.recipe.crop == "pair":
            spec = sample_pair(scene, self.cfg, rng)
        else:
            spec = sample_pair_upstream(scene, self.cfg, rng, *self.batch_shape(epoch, index))
        return spec

    def batch_members(self, epoch: int, index: int) -> tuple[int, list[int]]:
        """(batch index, pair indices of that batch) of pair ``index`` of ``epoch``."""
        if self.batch_size == 1:
            return index, [index]
        if epoch not in self._orders:
            self._orders = {epoch: epoch_order(self.seed, self.per_epoch, epoch)}
        order = self._orders[epoch]
        b = int(np.flatnonzero(order == index)[0]) // self.batch_size
        return b, order[b * self.batch_size:(b + 1) * self.batch_size].tolist()

    def batch_shape(self, epoch: int, index: int) -> tuple[int, int, int]:
        """(w, h, L) shared by the batch of pair ``index`` of ``epoch`` (upstream's per-batch crop)."""
        b, members = self.batch_members(epoch, index)
        rng = np.random.default_rng([self.seed, self.stream, epoch, b, 1])
        return batch_shape([self.scenes[i % len(self.scenes)] for i in members], self.cfg, self.recipe, rng)

    def __getitem__(self, g: int) -> dict:
        # wall and this thread's CPU seconds (a loaded machine stretches the first, not the second)
        t0, c0 = time.perf_counter(), time.thread_time()
        spec = self.spec(g)
        scene = next(s for s in self.scenes if s.name == spec.scene)
        s1, s2 = build_pair(scene, spec, self.cfg)
        timings = {"load": time.perf_counter() - t0, "load_cpu": time.thread_time() - c0}
        return {"seq1": s1, "seq2": s2, "spec": spec, "timings": timings}


def collate_pairs(items: list[dict]) -> list[dict]:
    """Pairs differ in crop size and length, so a batch stays a list."""
    return items


def worker_init(worker_id: int) -> None:
    """One intra-op thread per worker (the cores belong to the training loop) and seeded global RNGs."""
    import random

    torch.set_num_threads(1)
    seed = torch.initial_seed() % 2**32  # DataLoader's per-worker seed (base seed from its generator + id)
    np.random.seed(seed)
    random.seed(seed)


# --------------------------------------------------------------------------------------------- entry point
@dataclass
class LinkConfig:
    """``python -m models.training.pairs --link-examples DIR`` (make demo-renders)."""

    link_examples: str = opt("renders", "lay out the two example sequences as DIR/Giraffe__NeRF and "
                             "DIR/Giraffe__IBRNet-C symlinks (a tiny training set)", metavar="DIR")


def main(argv: list[str] | None = None) -> int:
    def run(cfg: LinkConfig) -> int:
        print(f"training renders: {link_example_renders(cfg.link_examples)}")
        return 0

    return cli.main(lambda a: cli.parse(LinkConfig, a, description="Training-set helpers.").config, run, argv)


if __name__ == "__main__":
    import sys

    sys.exit(main())
