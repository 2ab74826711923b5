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
LPIPS_LAYERS = ("relu1", "relu2", "relu3", "relu4", "relu5")  # the five taps, one lin layer each
CHANNELS_LAST = torch.channels_last
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
            x = F.relu(conv(x), inplace=True)
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
                x = F.relu(self.convs[i](x), inplace=True)
                i += 1
            taps.append(x)
        return taps


@functools.cache
def _state(net: Net, device: torch.device) -> dict[str, torch.Tensor]:
    """The converted backbone weights on ``device``, convolution kernels channels-last; read once per device."""
    state = weights.load("alexnet.pth" if net == "alex" else "vgg16.pth")
    return {k: v.to(device).contiguous(memory_format=CHANNELS_LAST if v.dim() == 4 else torch.contiguous_format)
            for k, v in state.items()}


def backbone(net: Net, device: torch.device) -> nn.Module:
    """The ImageNet AlexNet or VGG16 taps on ``device``, in eval mode, frozen. The weights are read once per device
    and shared (LPIPS-vgg and DISTS use the same VGG16), each module holding its own parameters over them, so that
    ``.to()`` on one module moves that module only."""
    with torch.device("meta"):  # no random initialisation: every parameter is assigned below
        model = AlexNetTaps() if net == "alex" else VGG16Taps()
    model.load_state_dict(_state(net, device), strict=True, assign=True)
    return model.requires_grad_(False).eval()


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """NHWC memory layout, oneDNN's own on the CPU: the convolutions skip a reorder per layer (about 20 % faster on
    this project's CPUs; values move by float32 rounding only)."""
    return x.contiguous(memory_format=CHANNELS_LAST)


def _squared_unit_difference(fx: torch.Tensor, fy: torch.Tensor, rule: FeatureNorm) -> torch.Tensor:
    """(fx / ‖fx‖ − fy / ‖fy‖)² channel by channel, ‖·‖ over channels by ``rule``: lpips' ``‖x‖ + 1e-10`` or
    torchmetrics' ``sqrt(‖x‖² + 1e-8)``. Computed in place in ``fx`` and ``fy`` (taps nothing else reads)."""
    for f in (fx, fy):
        norm = torch.linalg.vector_norm(f, dim=1, keepdim=True)
        f.div_(norm.add_(1e-10) if rule == "lpips" else norm.square_().add_(1e-8).sqrt_())
    return fx.sub_(fy).square_()


class LPIPS(nn.Module):
    """LPIPS v0.1 (lin layers on, as ``lpips.LPIPS(net=..., version="0.1")``) of (B, 3, H, W) images in [0, 1].

    ``scale_input``: map [0, 1] to [-1, 1] first (lpips' ``normalize=True``); False feeds [0, 1] to a network
    made for [-1, 1], as 3DGS' lpipsPyTorch does. ``feature_norm``: the unit-length rule
    (:func:`_squared_unit_difference`). Every tensor is a parameter or buffer: ``.to(device / dtype)`` moves it all.
    """

    def __init__(self, net: Net, device: torch.device, scale_input: bool = True,
                 feature_norm: FeatureNorm = "lpips") -> None:
        super().__init__()
        self.net, self.scale_input, self.feature_norm = backbone(net, device), scale_input, feature_norm
        lin = weights.load("lpips_v0.1_lin.pth")
        for i in range(len(LPIPS_LAYERS)):
            self.register_buffer(f"lin{i}", lin[f"{net}.{i}"].to(device))
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT, device=device).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE, device=device).view(1, 3, 1, 1))

    @torch.inference_mode()
    def forward(self, x: torch.Tensor, y: torch.Tensor, spatial: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(values (B,), the per-pixel map (B, H, W) when ``spatial``): the map is the sum over layers of each
        layer's distance map upsampled bilinearly to the input size (lpips' ``spatial=True``); the value is the sum
        of each layer map's spatial mean (so it is not exactly the mean of the upsampled map)."""
        n, size = x.shape[0], x.shape[-2:]
        both = torch.cat([x, y]).to(self.shift.dtype)
        if self.scale_input:
            both = 2 * both - 1
        value = both.new_zeros(n)
        pixel_map = both.new_zeros(n, 1, *size) if spatial else None
        for i, feat in enumerate(self.net(_channels_last((both - self.shift) / self.scale))):
            d = F.conv2d(_squared_unit_difference(feat[:n], feat[n:], self.feature_norm), getattr(self, f"lin{i}"))
            value += d.mean((1, 2, 3))
            if pixel_map is not None:
                pixel_map += F.interpolate(d, size=size, mode="bilinear", align_corners=False)
        return value, None if pixel_map is None else pixel_map[:, 0]


def _moments(fx: torch.Tensor, fy: torch.Tensor) -> tuple[tuple[torch.Tensor, torch.Tensor],
                                                           tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    """((mean, variance) of fx, of fy, their covariance) per image and channel over the pixels, (B, C) each, from
    sums over a (B, H·W, C) view (contiguous in channels_last; one pass per sum; DISTS_pt.py takes the variance in
    two passes, which moves values by float32 rounding only)."""
    x, y = (t.permute(0, 2, 3, 1).reshape(t.shape[0], -1, t.shape[1]) for t in (fx, fy))
    mx, my = x.mean(1), y.mean(1)
    var_x, var_y = (x * x).mean(1) - mx * mx, (y * y).mean(1) - my * my
    return (mx, var_x), (my, var_y), (x * y).mean(1) - mx * my


class DISTS(nn.Module):
    """DISTS (Ding et al. 2020) of (B, 3, H, W) images in [0, 1] -> (B,); lower is more similar. Every tensor is a
    parameter or buffer: ``.to(device / dtype)`` moves it all."""

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.net = backbone("vgg", device)
        ab = weights.load("dists.pth")
        total = ab["alpha"].sum() + ab["beta"].sum()
        self.register_buffer("alpha", (ab["alpha"] / total).to(device))  # (1, 1475, 1, 1): the texture weights
        self.register_buffer("beta", (ab["beta"] / total).to(device))  # the structure weights
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1))

    @torch.inference_mode()
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """1 − Σ over stages and channels of α·texture + β·structure, as the paper names the terms: texture compares
        the feature maps' global means, structure their correlation (DISTS_pt.py's dist1 and dist2)."""
        n = x.shape[0]
        both = torch.cat([x, y]).to(self.mean.dtype)
        alpha, beta = torch.split(self.alpha, DISTS_CHANNELS, dim=1), torch.split(self.beta, DISTS_CHANNELS, dim=1)
        texture = structure = both.new_zeros(n)
        for k, f in enumerate([both, *self.net(_channels_last((both - self.mean) / self.std), pooling="l2")]):
            (mx, vx), (my, vy), cov = _moments(f[:n], f[n:])
            texture = texture + (alpha[k][..., 0, 0] * (2 * mx * my + DISTS_C) / (mx**2 + my**2 + DISTS_C)).sum(1)
            structure = structure + (beta[k][..., 0, 0] * (2 * cov + DISTS_C) / (vx + vy + DISTS_C)).sum(1)
        return 1 - (texture + structure)

