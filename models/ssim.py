"""Per-pixel SSIM maps (the CrossScore target): Gaussian window 11, sigma 1.5, C1 = 0.01², C2 = 0.03².

Images are float tensors (B, C, H, W) in [0, 1]. Local statistics use the 11×11 Gaussian window with zero
padding of 5 pixels, so the map has the size of the image (the common pytorch-ssim recipe); the map is the
mean over colour channels. ``ssim_map(x, x)`` is exactly 1 everywhere.
"""

from __future__ import annotations

import math

import torch

from models import targets

WINDOW_SIZE = 11
SIGMA = 1.5
C1 = 0.01**2
C2 = 0.03**2


def gaussian_window(size: int = WINDOW_SIZE, sigma: float = SIGMA) -> torch.Tensor:
    """The normalised 1-d Gaussian (float64) whose outer product is the 2-d SSIM window."""
    return targets.gaussian_window(size, sigma)


def ssim_map(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """SSIM of ``x`` against ``y`` per pixel, averaged over channels: (B, C, H, W) -> (B, H, W).

    One SSIM implementation serves the project (:func:`models.targets.ssim_map`); CrossScore uses its zero
    padding. Values lie in [-1, 1]; CrossScore targets clamp them to [0, 1] (see :func:`ssim_target`).
    """
    return targets.ssim_map(x, y, padding="zero", win_size=WINDOW_SIZE, sigma=SIGMA).mean(dim=1)


def ssim_target(render: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """The training target of CrossScore: the SSIM map of a render against its ground truth, in [0, 1]."""
    return ssim_map(render, gt).clamp(0.0, 1.0)


def psnr_from_l1(l1: float) -> float:
    """Upstream's 'PSNR' of a map error: −10·log10(L1²) (inf for a perfect prediction)."""
    return math.inf if l1 <= 0 else -20.0 * math.log10(l1)
