"""Per-pixel SSIM maps (the CrossScore target): Gaussian window 11, sigma 1.5, C1 = 0.01², C2 = 0.03².

Images are float tensors (B, C, H, W) in [0, 1]. Local statistics use the 11×11 Gaussian window with zero
padding of 5 pixels, so the map has the size of the image (the common pytorch-ssim recipe); the map is the
mean over colour channels. ``ssim_map(x, x)`` is exactly 1 everywhere.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

WINDOW_SIZE = 11
SIGMA = 1.5
C1 = 0.01**2
C2 = 0.03**2


def gaussian_window(size: int = WINDOW_SIZE, sigma: float = SIGMA) -> torch.Tensor:
    """The normalised 1-d Gaussian (float64) whose outer product is the 2-d SSIM window."""
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable depth-wise Gaussian filter with zero padding (same output size)."""
    c, pad = x.shape[1], g.numel() // 2
    gh = g.view(1, 1, 1, -1).expand(c, 1, 1, -1)
    gv = g.view(1, 1, -1, 1).expand(c, 1, -1, 1)
    x = F.conv2d(x, gh, padding=(0, pad), groups=c)
    return F.conv2d(x, gv, padding=(pad, 0), groups=c)


def ssim_map(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """SSIM of ``x`` against ``y`` per pixel, averaged over channels: (B, C, H, W) -> (B, H, W).

    Values lie in [-1, 1]; CrossScore targets clamp them to [0, 1] (see :func:`ssim_target`).
    """
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"ssim_map needs two (B, C, H, W) tensors of one shape: {tuple(x.shape)} {tuple(y.shape)}")
    g = gaussian_window().to(device=x.device, dtype=x.dtype)
    mu_x, mu_y = _blur(x, g), _blur(y, g)
    sxx = _blur(x * x, g) - mu_x**2
    syy = _blur(y * y, g) - mu_y**2
    sxy = _blur(x * y, g) - mu_x * mu_y
    num = (2 * mu_x * mu_y + C1) * (2 * sxy + C2)
    den = (mu_x**2 + mu_y**2 + C1) * (sxx + syy + C2)
    return (num / den).mean(dim=1)


def ssim_target(render: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """The training target of CrossScore: the SSIM map of a render against its ground truth, in [0, 1]."""
    return ssim_map(render, gt).clamp(0.0, 1.0)


def psnr_from_l1(l1: float) -> float:
    """Upstream's 'PSNR' of a map error: −10·log10(L1²) (inf for a perfect prediction)."""
    return math.inf if l1 <= 0 else -20.0 * math.log10(l1)
