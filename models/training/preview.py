"""``train.py --preview DIR``: the first training batches, as the loop would see them, written to look at.

No model, no optimisation, no run folder. The pairs come from the same objects as in
:func:`models.training.loop.train`: the same renders check, ``PairDataset(scenes, cfg.pairs, cfg.seed, per_epoch,
recipe=cfg.recipe, batch_size=cfg.batch_size)``, the same step order (:func:`models.training.config.epoch_batches`,
epoch after epoch), the same DataLoader (:func:`models.training.config.step_loader`) and the same targets
(:func:`models.training.device_targets.batch_targets` on the training device). Batch k is optimisation step k+1
of a new run with the same flags (the global batch: under DDP, all processes' shares together).

``DIR/batch_NNN.npz`` (``models.results.read_npz`` or ``np.load``, no pickle):

- ``seq1``, ``seq2`` (B, T, 3, h, w) uint8: pairs differ in length and crop size, so each pair is padded with
  zeros to the batch's largest; pair i is ``seq1[i, :lengths[i], :, :sizes[i, 0], :sizes[i, 1]]``;
- ``lengths`` (B,), ``sizes`` (B, 2) = crop h, w; ``replaced`` (B, T) bool: frames of seq2 taken from method 2;
- ``replace_ratio`` (B,) float, ``noise_keys`` (B, 2) int (keys into ``pairs.NOISES``), ``targets`` (B, 5)
  float32 (NaN where the head's weight is 0: the loop skips that target), ``target_names`` (5,);
- ``scenes`` (B,), ``methods`` (B, 2) strings; ``pair_ids`` (B,) global pair ids; ``step``, ``epoch``.

Fields a dataset item's spec does not carry are written as NaN (floats) or -1 / "" (integers / strings) and named in a
warning, so the files keep one layout. ``DIR/batch_NNN.png`` is a contact sheet: a row per pair with a few
frames of seq1 and of seq2 (replaced frames marked) and its scene, methods, ratio, noise keys and targets.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.results import atomic_write_bytes, check_writable, write_npz
from models.runtime import resolve_device
from models.training.config import TrainConfig, epoch_batches, step_loader, training_scenes
from models.training.device_targets import batch_targets
from models.training.pairs import NOISES, PairDataset
from models.training.targets import TARGETS

log = logging.getLogger(__name__)
SHOWN_FRAMES = 4  # frames per sequence on the contact sheet


def training_data(cfg: TrainConfig) -> tuple[PairDataset, int]:
    """The training dataset and its pairs per epoch, built and checked as ``loop.train`` builds them."""
    _, scenes, per_epoch = training_scenes(cfg)
    # the batch size: upstream's per-batch crop (as loop.train passes it)
    ds = PairDataset(scenes, cfg.pairs, cfg.seed, per_epoch, recipe=cfg.recipe, batch_size=cfg.batch_size)
    return ds, per_epoch


def first_steps(cfg: TrainConfig, per_epoch: int, k: int) -> list[tuple[int, list[int]]]:
    """(epoch, global pair ids) of the first ``k`` optimisation steps of a new run (fewer if the run is shorter)."""
    out: list[tuple[int, list[int]]] = []
    for epoch in range(cfg.epochs):
        out += [(epoch, b) for b in epoch_batches(cfg, per_epoch, epoch)]
        if len(out) >= k:
            break
    return out[:k]


def batch_arrays(batch: list[dict], targets: np.ndarray, pair_ids: list[int], step: int, epoch: int,
                 missing: set[str] | None = None) -> dict[str, np.ndarray]:
    """One collated batch (a list of dataset items) and its targets (B, 5) -> the arrays of ``batch_NNN.npz``;
    names of the fields the items lack are added to ``missing``."""
    missing = set() if missing is None else missing

    def field(name: str, attr: str, default: Any) -> Any:
        spec = item.get("spec")
        if spec is None or not hasattr(spec, attr):
            missing.add(name)
            return default
        return getattr(spec, attr)

    b = len(batch)
    shapes = [tuple(x["seq1"].shape) for x in batch]  # (L, 3, h, w)
    t, hh, ww = (max(s[i] for s in shapes) for i in (0, 2, 3))
    seq1, seq2 = (np.zeros((b, t, 3, hh, ww), np.uint8) for _ in range(2))
    replaced = np.zeros((b, t), bool)
    ratio = np.full(b, np.nan)
    noise = np.full((b, 2), -1, np.int64)
    scenes, methods = np.full(b, "", dtype=object), np.full((b, 2), "", dtype=object)
    for i, item in enumerate(batch):
        n, _, h, w = shapes[i]
        seq1[i, :n, :, :h, :w] = item["seq1"].numpy()
        seq2[i, :n, :, :h, :w] = item["seq2"].numpy()
        replaced[i, list(field("replaced", "replaced", []))] = True
        ratio[i] = field("replace_ratio", "ratio", np.nan)
        noise[i] = field("noise_keys", "noise", (-1, -1))
        scenes[i] = field("scenes", "scene", "")
        methods[i] = (field("methods", "m1", ""), field("methods", "m2", ""))
    return {
        "seq1": seq1, "seq2": seq2, "lengths": np.array([s[0] for s in shapes]),
        "sizes": np.array([(s[2], s[3]) for s in shapes]), "replaced": replaced, "replace_ratio": ratio,
        "noise_keys": noise, "targets": targets.astype(np.float32), "target_names": np.array(TARGETS),
        "scenes": scenes.astype(str), "methods": methods.astype(str), "pair_ids": np.array(pair_ids),
        "step": np.array(step), "epoch": np.array(epoch),
    }  # fmt: skip


def _noise(key: int) -> str:
    return f"{key} ({NOISES[key]})" if 0 <= key < len(NOISES) else "?"


def _crop(a: dict[str, np.ndarray], i: int, key: str) -> np.ndarray:
    """Pair ``i`` of a batch without its padding: (L, 3, h, w)."""
    return a[key][i, :a["lengths"][i], :, :a["sizes"][i, 0], :a["sizes"][i, 1]]


def contact_sheet(a: dict[str, np.ndarray], title: str) -> bytes:
    """PNG bytes: a row per pair, label then up to SHOWN_FRAMES frames of seq1 and the same frames of seq2."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b = len(a["seq1"])
    cols = 1 + 2 * SHOWN_FRAMES
    fig, axes = plt.subplots(b, cols, figsize=(3.4 + 2 * SHOWN_FRAMES * 1.35, 1.75 * b + 0.5), squeeze=False,
                             gridspec_kw={"width_ratios": [2.6] + [1] * (cols - 1)})
    for i in range(b):
        n, (h, w) = int(a["lengths"][i]), a["sizes"][i]
        m1, m2 = a["methods"][i]
        if not a["replaced"][i].any() and np.array_equal(_crop(a, i, "seq1"), _crop(a, i, "seq2")):
            seq2 = f"seq2 = seq1, same frames ({m2} unused)"  # e.g. upstream's all-or-nothing "nothing"
        else:
            seq2 = f"seq2: {m2} in {int(a['replaced'][i].sum())}/{n}, noise {_noise(a['noise_keys'][i, 1])}"
        tgs = [f"{name} {v:+.2f}" if np.isfinite(v) else f"{name} –"
               for name, v in zip(a["target_names"], a["targets"][i], strict=True)]
        label = (f"pair {a['pair_ids'][i]}  {a['scenes'][i]}  {w}x{h}, {n} frames\n"
                 f"seq1: {m1}, noise {_noise(a['noise_keys'][i, 0])}\n"
                 f"{seq2}\n"
                 f"replace ratio r = {a['replace_ratio'][i]:.3f}\n"
                 f"targets: {'  '.join(tgs[:2])}\n  {'  '.join(tgs[2:])}")
        axes[i, 0].text(0, 0.5, label, va="center", ha="left", fontsize=7, family="monospace",
                        transform=axes[i, 0].transAxes)
        shown = np.unique(np.linspace(0, n - 1, min(n, SHOWN_FRAMES)).round().astype(int))
        for j in range(SHOWN_FRAMES):
            for s, key in enumerate(("seq1", "seq2")):
                ax = axes[i, 1 + s * SHOWN_FRAMES + j]
                if j >= len(shown):
                    continue
                t = shown[j]
                ax.imshow(a[key][i, t, :, :h, :w].transpose(1, 2, 0))
                from_m2 = key == "seq2" and a["replaced"][i, t]
                ax.set_title(f"{key} t{t}" + (f" ←{m2}" if from_m2 else ""), fontsize=7,
                             color="tab:red" if from_m2 else "black")
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
            if ax is axes[i, 0] or not ax.images:
                ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def preview(cfg: TrainConfig, out: str | Path, batches: int = 2) -> list[Path]:
    """Write the first ``batches`` training batches of ``cfg`` to ``out`` (npz + png each); returns the npz paths.
    Bad input raises InputError before any pair is built."""
    out = Path(out)
    ds, per_epoch = training_data(cfg)
    steps = first_steps(cfg, per_epoch, batches)
    check_writable(out, "`out`")
    if len(steps) < batches:
        log.warning("the run has only %d steps: writing %d batches, not %d", len(steps), len(steps), batches)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device, needed = resolve_device(cfg.device), tuple(w > 0 for w in cfg.weights)
    loader = step_loader(ds, [ids for _, ids in steps], cfg.workers, cfg.seed)  # as loop.train's
    written, missing = [], set()
    for k, ((epoch, ids), batch) in enumerate(zip(steps, loader, strict=True)):
        targets = batch_targets(batch, cfg.recipe, needed, device).cpu().numpy()  # what the loss receives
        arrays = batch_arrays(batch, targets, ids, k + 1, epoch, missing)
        path = out / f"batch_{k:03d}.npz"
        write_npz(path, arrays)
        title = (f"{path.name}: optimisation step {k + 1} (epoch {epoch}) of preset {cfg.preset}, "
                 f"recipe {cfg.recipe}, seed {cfg.seed}, "
                 f"renders {cfg.renders}; {len(batch)} pairs")
        atomic_write_bytes(path.with_suffix(".png"), contact_sheet(arrays, title))
        written.append(path)
        log.info("wrote %s and %s", path, path.with_suffix(".png").name)
    if missing:
        log.warning("the dataset items carry no %s: written as NaN / -1 / empty", ", ".join(sorted(missing)))
    return written
