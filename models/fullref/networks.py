"""The networks of the learned metrics in plain torch (no torchvision, no hub): AlexNet and VGG16 feature taps,
LPIPS v0.1 and DISTS, filled from the converted weights of :mod:`models.fullref.weights`.

LPIPS follows richzhang/PerceptualSimilarity's ``lpips`` 0.1 (``LPIPS.forward``, ``ScalingLayer``,
``normalize_tensor``, ``spatial=True``); DISTS follows dingkeyan93/DISTS ``DISTS_pt.py`` (L2 pooling instead of
VGG's max pooling, stage 0 = the raw [0, 1] image, c1 = c2 = 1e-6, no resizing). docs/fullref.md has the details.
"""

from __future__ import annotations

import functools
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from consts import IMAGENET_MEAN, IMAGENET_STD
from models.fullref import weights

# (in, out, kernel, stride, padding) of torchvision's AlexNet features; LPIPS taps relu1 .. relu5
ALEX_CONVS = ((3, 64, 11, 4, 2), (64, 192, 5, 1, 2), (192, 384, 3, 1, 1), (384, 256, 3, 1, 1), (256, 256, 3, 1, 1))
# VGG16's five blocks (channels, convs); LPIPS and DISTS tap the last relu of each (relu1_2 .. relu5_3)
VGG16_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
LPIPS_SHIFT = (-0.030, -0.088, -0.188)  # lpips' ScalingLayer: ImageNet mean/std re-expressed for [-1, 1] input
LPIPS_SCALE = (0.458, 0.448, 0.450)
DISTS_CHANNELS = (3, 64, 128, 256, 512, 512)  # stage 0 (the image) + the five VGG taps
DISTS_C = 1e-6
Net = Literal["alex", "vgg"]
FeatureNorm = Literal["lpips", "torchmetrics"]


class AlexNetTaps(nn.Module):
    """AlexNet's five convolutions; ``forward`` returns relu1 .. relu5 (max pools 3/2 after relu1 and relu2)."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(i, o, k, s, p) for i, o, k, s, p in ALEX_CONVS)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for i, conv in enumerate(self.convs):
            if i in (1, 2):
                x = F.max_pool2d(x, 3, 2)
            x = F.relu(conv(x))
            taps.append(x)
        return taps


def l2_pool(x: torch.Tensor) -> torch.Tensor:
    """DISTS' L2pooling: sqrt of a 3×3 Hanning-weighted mean of x², stride 2, padding 1, per channel."""
    a = np.hanning(5)[1:-1]
    g = torch.tensor(a[:, None] * a[None, :], dtype=torch.float32)
    g = (g / g.sum()).to(x)
    c = x.shape[1]
    return (F.conv2d(x**2, g.expand(c, 1, 3, 3), stride=2, padding=1, groups=c) + 1e-12).sqrt()


class VGG16Taps(nn.Module):
    """VGG16's 13 convolutions; ``forward`` returns relu1_2 .. relu5_3 with max pooling 2/2 between blocks (LPIPS),
    or DISTS' L2 pooling (``pooling="l2"``)."""

    def __init__(self) -> None:
        super().__init__()
        chans, cin = [], 3
        for cout, n in VGG16_BLOCKS:
            for _ in range(n):
                chans.append((cin, cout))
                cin = cout
        self.convs = nn.ModuleList(nn.Conv2d(i, o, 3, padding=1) for i, o in chans)

    def forward(self, x: torch.Tensor, pooling: Literal["max", "l2"] = "max") -> list[torch.Tensor]:
        taps, i = [], 0
        for block, (_, n) in enumerate(VGG16_BLOCKS):
            if block:
                x = F.max_pool2d(x, 2, 2) if pooling == "max" else l2_pool(x)
            for _ in range(n):
                x = F.relu(self.convs[i](x))
                i += 1
            taps.append(x)
        return taps


@functools.cache
def backbone(net: Net, device: torch.device) -> nn.Module:
    """The ImageNet AlexNet or VGG16 taps on ``device``, in eval mode, frozen; one shared copy per device (LPIPS-vgg
    and DISTS use the same VGG16)."""
    model = AlexNetTaps() if net == "alex" else VGG16Taps()
    model.load_state_dict(weights.load("alexnet.pth" if net == "alex" else "vgg16.pth"), strict=True)
    return model.requires_grad_(False).eval().to(device)


def _unit(x: torch.Tensor, rule: FeatureNorm) -> torch.Tensor:
    """Channel-wise unit length: lpips' ``x / (‖x‖ + 1e-10)``, or torchmetrics' ``x / sqrt(‖x‖² + 1e-8)``."""
    sq = x.pow(2).sum(1, keepdim=True)
    return x / (sq.sqrt() + 1e-10) if rule == "lpips" else x / (sq + 1e-8).sqrt()


class LPIPS(nn.Module):
    """LPIPS v0.1 (lin layers on, as ``lpips.LPIPS(net=..., version="0.1")``) of (B, 3, H, W) images in [0, 1].

    ``scale_input``: map [0, 1] to [-1, 1] first (lpips' ``normalize=True``); False feeds [0, 1] to a network
    made for [-1, 1], as 3DGS' lpipsPyTorch does. ``feature_norm``: the unit-length rule (:func:`_unit`).
    """

    def __init__(self, net: Net, device: torch.device, scale_input: bool = True,
                 feature_norm: FeatureNorm = "lpips") -> None:
        super().__init__()
        self.net, self.scale_input, self.feature_norm = backbone(net, device), scale_input, feature_norm
        lin = weights.load("lpips_v0.1_lin.pth")
        self.lins = [lin[f"{net}.{i}"].to(device) for i in range(5)]
        self.shift = torch.tensor(LPIPS_SHIFT, device=device).view(1, 3, 1, 1)
        self.scale = torch.tensor(LPIPS_SCALE, device=device).view(1, 3, 1, 1)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, y: torch.Tensor, spatial: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(values (B,), the per-pixel map (B, H, W) when ``spatial``): the map is the sum over layers of each
        layer's distance map upsampled bilinearly to the input size (lpips' ``spatial=True``); the value is the sum
        of each layer map's spatial mean (so it is not exactly the mean of the upsampled map)."""
        n, size = x.shape[0], x.shape[-2:]
        both = torch.cat([x, y]).float()
        if self.scale_input:
            both = 2 * both - 1
        value = torch.zeros(n, device=x.device)
        pixel_map = torch.zeros(n, 1, *size, device=x.device) if spatial else None
        for feat, w in zip(self.net((both - self.shift) / self.scale), self.lins, strict=True):
            d = F.conv2d((_unit(feat[:n], self.feature_norm) - _unit(feat[n:], self.feature_norm)) ** 2, w)
            value += d.mean((1, 2, 3))
            if pixel_map is not None:
                pixel_map += F.interpolate(d, size=size, mode="bilinear", align_corners=False)
        return value, None if pixel_map is None else pixel_map[:, 0]


class DISTS(nn.Module):
    """DISTS (Ding et al. 2020) of (B, 3, H, W) images in [0, 1] -> (B,); lower is more similar."""

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.net = backbone("vgg", device)
        ab = weights.load("dists.pth")
        total = ab["alpha"].sum() + ab["beta"].sum()
        self.alpha = torch.split((ab["alpha"] / total).to(device), DISTS_CHANNELS, dim=1)
        self.beta = torch.split((ab["beta"] / total).to(device), DISTS_CHANNELS, dim=1)
        self.mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        both = torch.cat([x, y]).float()
        texture = structure = torch.zeros(n, device=x.device)  # DISTS' dist1 (means, alpha), dist2 (covariances, beta)
        for k, f in enumerate([both, *self.net((both - self.mean) / self.std, pooling="l2")]):
            fx, fy = f[:n], f[n:]
            mx, my = fx.mean((2, 3), keepdim=True), fy.mean((2, 3), keepdim=True)
            vx, vy = ((fx - mx) ** 2).mean((2, 3), keepdim=True), ((fy - my) ** 2).mean((2, 3), keepdim=True)
            cov = (fx * fy).mean((2, 3), keepdim=True) - mx * my
            s1 = (2 * mx * my + DISTS_C) / (mx**2 + my**2 + DISTS_C)
            s2 = (2 * cov + DISTS_C) / (vx + vy + DISTS_C)
            structure = structure + (self.alpha[k] * s1).sum((1, 2, 3))
            texture = texture + (self.beta[k] * s2).sum((1, 2, 3))
        return 1 - (structure + texture)
