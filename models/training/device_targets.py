"""The five targets of a batch of pairs, batched on the training device (upstream computes them in its loss).

The one route by which a run scores its pairs: the training steps, the validation pairs (scored once, each its
own shape) and ``--preview`` all call :func:`batch_targets`. DataLoader workers only read, crop, flip, mix and
degrade (uint8 sequences). Pairs of one shape (every batch under ``--recipe upstream``, whose crop and length are
per batch) are stacked and scored in one call per target; other shapes form their own groups. The definition is
:func:`models.training.targets.pair_targets` (one pair at a time): on CPU the two agree to ≤1e-6
(tests/training/test_device_targets.py). FovVideoVDP: on CUDA all pairs of one shape in one call
(:meth:`~models.fullref.fvvdp.FovVideoVDP.batch`: pyfvvdp's own loop, one frame of one pair at a time, is some 70k
small operations a pair, launch-bound on a GPU); on the CPU pair by pair, where pyfvvdp's frame-sized tensors stay in
cache and run faster than a batch (the same values either way).
"""

from __future__ import annotations

import functools
import math

import torch

from models.fullref.fvvdp import FovVideoVDP
from models.ssim import ssim_map
from models.training.strred import strred
from models.training.targets import (
    TARGETS,
    Recipe,
    get_recipe,
    jod_to_target,
    luminance,
    psnr_to_target,
    replace_to_target,
    ssim_to_target,
    strred_to_target,
)

CHUNK_VALUES = 2**26  # sequence values scored per call (see batch_targets)


@functools.cache
def _fvvdp(device: str) -> FovVideoVDP:
    return FovVideoVDP(device)


def group_targets(s1: torch.Tensor, s2: torch.Tensor, ratios: torch.Tensor, recipe: Recipe,
                  needed: tuple[bool, ...]) -> torch.Tensor:
    """Targets (N, 5) float64 of N pairs of one shape: (N, T, 3, H, W) uint8 on any device; NaN where not needed.

    Head 4 (FovVideoVDP) is left NaN here (see :func:`batch_targets`).
    """
    n, t = s1.shape[:2]
    out = torch.full((n, len(TARGETS)), float("nan"), dtype=torch.float64, device=s1.device)
    a, b = (s.flatten(0, 1).float() / 255 for s in (s1, s2))  # (N·T, 3, H, W)
    if needed[0]:
        if recipe.map_per_frame:  # float64, as pair_targets (upstream's formula without fp32 cancellation)
            per_frame = ssim_map(a.double(), b.double(), padding=recipe.ssim_padding).mean((1, 2, 3)).view(n, t)
            out[:, 0] = ssim_to_target(per_frame).mean(1)
        else:
            per_frame = ssim_map(a, b, padding=recipe.ssim_padding).mean((1, 2, 3)).view(n, t)
            out[:, 0] = ssim_to_target(per_frame.mean(1))
    if needed[1]:
        mse = (a.double() - b.double()).pow(2).mean((1, 2, 3)).view(n, t)
        if recipe.map_per_frame:
            out[:, 1] = psnr_to_target(20 * torch.log10(1 / torch.sqrt(mse))).mean(1)
        else:
            out[:, 1] = psnr_to_target((10 * torch.log10(1 / mse)).mean(1))
    if needed[2]:
        out[:, 2] = replace_to_target(ratios.to(s1.device))
    if needed[3]:
        k = recipe.strred_scale / 255
        out[:, 3] = strred_to_target(strred(luminance(s1.float() * k), luminance(s2.float() * k)))
    return out


def batch_targets(batch: list[dict], recipe: str | Recipe, needed: tuple[bool, ...],
                  device: str | torch.device = "cpu", seqs: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
                  chunk_values: int = CHUNK_VALUES, fvvdp_batched: bool | None = None) -> torch.Tensor:  # fmt: skip
    """Targets (B, 5) float32 in [−1, 1] of a batch of PairDataset items (``seq1``, ``seq2``, ``spec.ratio``).

    ``seqs``: the items' sequences already on ``device`` (the loop's copies), else they are moved here.
    NaN where ``needed`` is False (a zero loss weight). Pairs of one shape are scored together,
    ``chunk_values`` sequence values (N·T·3·H·W) at a time, at least one pair: that bounds the float64
    temporaries of SSIM (≈15 copies, ≈8 GB at the default 2²⁶). ``fvvdp_batched``: FovVideoVDP of a shape's
    pairs in one call (None: on CUDA), its pyramids ``chunk_values`` / 4 pixels at a time.
    """
    recipe, device = get_recipe(recipe), torch.device(device)
    seqs = seqs or [(x["seq1"].to(device), x["seq2"].to(device)) for x in batch]
    out = torch.full((len(batch), len(TARGETS)), float("nan"), dtype=torch.float64, device=device)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, (s1, _) in enumerate(seqs):
        groups.setdefault(tuple(s1.shape), []).append(i)
    for shape, members in groups.items():
        step = max(1, chunk_values // math.prod(shape))
        for idx in (members[j:j + step] for j in range(0, len(members), step)):
            s1 = torch.stack([seqs[i][0] for i in idx])
            s2 = torch.stack([seqs[i][1] for i in idx])
            ratios = torch.tensor([batch[i]["spec"].ratio for i in idx], dtype=torch.float64)
            out[idx] = group_targets(s1, s2, ratios, recipe, needed)
    if needed[4]:
        out[:, 4] = fvvdp_targets(seqs, groups, device, chunk_values,
                                  device.type == "cuda" if fvvdp_batched is None else fvvdp_batched)
    return out.float()


def fvvdp_targets(seqs: list[tuple[torch.Tensor, torch.Tensor]], groups: dict[tuple[int, ...], list[int]],
                  device: torch.device, chunk_values: int, batched: bool) -> torch.Tensor:  # fmt: skip
    """Head 4 of each pair (B,) float64: FovVideoVDP of sequence 2 against sequence 1, pair by pair or a shape's
    pairs in one call (their frames ``chunk_values`` / 4 pixels at a time: the pyramid holds four channels)."""
    metric = _fvvdp(str(device))
    if not batched:
        return torch.stack([jod_to_target(metric(s2, s1)) for s1, s2 in seqs]).to(device)
    out = torch.empty(len(seqs), dtype=torch.float64, device=device)
    for shape, members in groups.items():
        chunk = max(1, chunk_values // (4 * shape[-1] * shape[-2]))
        jods = metric.batch(torch.stack([seqs[i][1] for i in members]), torch.stack([seqs[i][0] for i in members]),
                            chunk)  # fmt: skip
        out[members] = jod_to_target(jods.to(device)).to(device)
    return out
