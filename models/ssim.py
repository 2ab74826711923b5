"""The one SSIM / PSNR of the toolkit: training targets of NVS-SQA, the CrossScore target, the full-reference metrics.

Gaussian window 11, sigma 1.5, C1 = (0.01·L)², C2 = (0.03·L)², on float tensors (B, C, H, W) in [0, L], one SSIM
per colour channel (no grey conversion). ``padding`` picks the border rule: ``"valid"`` (the usual mean SSIM:
dm_pix, pytorch_msssim, torchmetrics <= 1.4), ``"reflect"`` (a full-size per-pixel map; torchmetrics >= 1.5),
``"zero"`` (the pytorch-ssim recipe that CrossScore's targets and 3DGS' metrics.py use). ``clamp`` picks how the
local (co)variances are kept valid, ``data_range="auto"`` takes L from the images (torchmetrics' ``data_range=None``).
``ssim_map(x, x)`` is exactly 1.
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import torch
import torch.nn.functional as F

WINDOW_SIZE = 11
SIGMA = 1.5
C1 = 0.01**2
C2 = 0.03**2
# The variance rule: "none" (the textbook formula, pytorch_msssim, 3DGS), "variance" (variances clamped at 0, as
# torchmetrics >= 1.4), "dm_pix" (variances at least float32 eps², covariance clipped to ±sqrt(var_a·var_b), as
# dm_pix / tf.image.ssim and NerfBaselines' copy of it).
Clamp = Literal["none", "variance", "dm_pix"]
DM_PIX_EPS = float(torch.finfo(torch.float32).eps) ** 2
DataRange = float | torch.Tensor | Literal["auto"]


@functools.cache
def gaussian_window(size: int = WINDOW_SIZE, sigma: float = SIGMA) -> torch.Tensor:
    """Normalised 1-d Gaussian (size,), float64 (cast where used)."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _blur(x: torch.Tensor, win: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter of (..., H, W), 'valid' (no padding): 11 shifted multiply-adds per axis.

    On a 2-core CPU this is 2.5x (float64) to 3.6x (float32) faster than the depthwise conv2d it replaced, and
    equal to it within 1e-14 (docs/training.md, "Targets on the training device"); it runs on any device.
    """
    k, n = win.tolist(), len(win)
    w = x.shape[-1] - n + 1
    y = x[..., 0:w] * k[0]
    for i in range(1, n):
        y.add_(x[..., i:i + w], alpha=k[i])
    h = x.shape[-2] - n + 1
    z = y[..., 0:h, :] * k[0]
    for i in range(1, n):
        z.add_(y[..., i:i + h, :], alpha=k[i])
    return z


def _data_range(a: torch.Tensor, b: torch.Tensor, data_range: DataRange) -> float | torch.Tensor:
    """L as a number, or one per image (B, 1, 1, 1): ``"auto"`` is the larger of the two images' value ranges (max −
    min), torchmetrics' ``data_range=None`` applied to one image at a time (as nerfstudio calls it)."""
    if isinstance(data_range, str):
        if data_range != "auto":
            raise ValueError(f"ssim: data_range must be a number, a tensor or 'auto', got {data_range!r}")
        span = lambda x: (x.amax((1, 2, 3)) - x.amin((1, 2, 3)))  # noqa: E731
        return torch.maximum(span(a), span(b)).view(-1, 1, 1, 1)
    if isinstance(data_range, torch.Tensor) and data_range.dim() == 1:
        return data_range.to(a).view(-1, 1, 1, 1)
    return data_range


def working_precision(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both images in float64 if ``a`` is, else float32 (the working precision of this module)."""
    dtype = torch.float64 if a.dtype == torch.float64 else torch.float32
    return a.to(dtype), b.to(dtype)


def _stack(a: torch.Tensor, b: torch.Tensor, var_sum_only: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The images to filter, stacked on the batch axis, with a0 = a − c and b0 = b − c (c: one value per image and
    channel, the mean of both) and d = a − b: a0, d, a0·d (or a0² + b0² where only σa² + σb² is needed), d², a0²;
    and c, (B, C, 1, 1)."""
    n = a.shape[0]
    centre = (a.mean((2, 3), keepdim=True) + b.mean((2, 3), keepdim=True)) / 2
    out = a.new_empty((n * (4 if var_sum_only else 5), *a.shape[1:]))
    a0, d, cross, dd, *aa = out.split(n)
    torch.sub(a, centre, out=a0)
    torch.sub(a, b, out=d)
    torch.mul(d, d, out=dd)
    if var_sum_only:
        b0 = b - centre
        torch.mul(a0, a0, out=cross).addcmul_(b0, b0)
    else:
        torch.mul(a0, d, out=cross)
        torch.mul(a0, a0, out=aa[0])
    return out, centre


def _terms(
    a: torch.Tensor, b: torch.Tensor, data_range: DataRange, padding: str, win_size: int, sigma: float, clamp: Clamp,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """SSIM's two factors per pixel, (B, C, H', W') each: luminance l = (2μaμb + C1) / (μa² + μb² + C1) and
    contrast-structure cs = (2σab + C2) / (σa² + σb² + C2).

    The moments are taken so that float32 keeps the digits SSIM depends on: both images centred on one value per
    image and channel (SSIM does not change), the difference d = a − b filtered directly, and the covariance derived
    from variances, σab = (σa² + σb² − σd²) / 2. Then 1 − l = (μa − μb)² / (μa² + μb² + C1) and
    1 − cs = σd² / (σa² + σb² + C2) are ratios of small, accurately known numbers; the textbook E[ab] − E[a]E[b]
    cancels the leading digits where an area is flat (in float32 up to 8e-5 on an image's mean SSIM where a render
    is noisy on a flat white background; this form stays within 4e-6 of float64 there and ~1e-7 on photographs:
    tests/fullref/test_precision.py). 'variance' and 'dm_pix' clamp the variances at 0 before the covariance is
    derived from them (exactly they are >= 0); 'dm_pix' then raises them to float32 eps² and clips σab to ±√(σa²σb²).
    """
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"ssim_map: expected two (B, C, H, W) tensors of one shape, got {tuple(a.shape)}, "
                         f"{tuple(b.shape)}")
    if clamp not in ("none", "variance", "dm_pix"):
        raise ValueError(f"ssim_map: clamp must be 'none', 'variance' or 'dm_pix', got {clamp!r}")
    a, b = working_precision(a, b)
    rng = _data_range(a, b, data_range)
    if padding in ("reflect", "zero"):
        p, mode = win_size // 2, "reflect" if padding == "reflect" else "constant"
        a, b = F.pad(a, (p, p, p, p), mode=mode), F.pad(b, (p, p, p, p), mode=mode)
    c1, c2 = C1 * rng**2, C2 * rng**2
    stack, centre = _stack(a, b, var_sum_only=clamp == "none")  # without a clamp only σa² + σb² is needed
    m_a, m_d, cross, var_d, *aa = _blur(stack, gaussian_window(win_size, sigma)).split(a.shape[0])
    m_b = m_a - m_d
    var_d.addcmul_(m_d, m_d, value=-1)
    if clamp == "none":
        den = cross.addcmul_(m_a, m_a, value=-1).addcmul_(m_b, m_b, value=-1).add_(c2)  # σa² + σb² + C2
        num = den - var_d
    else:
        # σb² = σa² − 2σad + σd², σab = σa² − σad: both from σa², so that its rounding moves them alike
        var_a, cov_ad = aa[0].addcmul_(m_a, m_a, value=-1), cross.addcmul_(m_a, m_d, value=-1)
        var_b = (var_a - 2 * cov_ad).add_(var_d).clamp_(min=0.0)
        var_a.clamp_(min=0.0)
        cov = (var_a + var_b - var_d).mul_(0.5)
        if clamp == "dm_pix":
            var_a, var_b = var_a.clamp_(min=DM_PIX_EPS), var_b.clamp_(min=DM_PIX_EPS)
            cov = torch.sign(cov) * torch.minimum(torch.sqrt(var_a * var_b), cov.abs())
        num, den = cov.mul_(2).add_(c2), var_a.add_(var_b).add_(c2)
    mu_a, mu_b = m_a.add_(centre), m_b.add_(centre)
    lum_den = mu_a.square_().add_(mu_b.square_()).add_(c1)
    return torch.sub(1.0, m_d.square_().div_(lum_den)), num.div_(den)


def ssim_map(
    a: torch.Tensor, b: torch.Tensor, data_range: DataRange = 1.0,
    padding: Literal["valid", "reflect", "zero"] = "reflect",
    win_size: int = WINDOW_SIZE, sigma: float = SIGMA, *, clamp: Clamp = "none",
) -> torch.Tensor:  # fmt: skip
    """Per-pixel SSIM of (B, C, H, W) float images in [0, data_range]: Gaussian window, C1=(0.01·L)², C2=(0.03·L)².


    ``padding="reflect"`` returns a map of the input size (borders from reflected neighbours, for per-pixel
    targets); ``"zero"`` too, with zero padding (the pytorch-ssim recipe CrossScore's targets use);
    ``"valid"`` returns the (H − 10, W − 10) interior only (the usual convention for a mean SSIM).
    ``clamp``: the variance rule (:data:`Clamp`); ``data_range``: L, one per image as a (B,) tensor, or ``"auto"``.
    Computed in float32 at least (float64 inputs stay float64); see :func:`_terms` for how float32 stays accurate.
    """
    lum, cs = _terms(a, b, data_range, padding, win_size, sigma, clamp)
    return lum.mul_(cs)


def ssim_and_cs(
    a: torch.Tensor, b: torch.Tensor, data_range: DataRange = 1.0,
    padding: Literal["valid", "reflect", "zero"] = "valid",
    win_size: int = WINDOW_SIZE, sigma: float = SIGMA, *, clamp: Clamp = "none",
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """The SSIM map and its contrast-structure factor ``cs = (2σab + C2) / (σa² + σb² + C2)`` (what MS-SSIM
    multiplies over scales), both (B, C, H', W'); same arguments as :func:`ssim_map`."""
    lum, cs = _terms(a, b, data_range, padding, win_size, sigma, clamp)
    return lum.mul_(cs), cs


def ssim(
    a: torch.Tensor, b: torch.Tensor, data_range: DataRange = 1.0,
    padding: Literal["valid", "reflect", "zero"] = "valid", *, clamp: Clamp = "none",
) -> torch.Tensor:  # fmt: skip
    """Mean SSIM per image of (B, C, H, W) -> (B,): the mean over channels and pixels of the map (= the mean of the
    per-channel SSIMs); 'valid' window by default (frames must be at least 11×11)."""
    return ssim_map(a, b, data_range, padding=padding, clamp=clamp).mean((1, 2, 3))


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image of (B, C, H, W) -> (B,) float64, all in the working precision: a float32
    difference of two float32 values is exact or off by half an ulp, and torch's summation (cascaded on the CPU,
    tree-reduced on CUDA) keeps a float32 sum of 2.2 M squares within ~1e-7 of float64 (PSNR: ~1e-7 dB)."""
    a, b = working_precision(a, b)
    return (a - b).square_().sum((1, 2, 3)).double() / a[0].numel()


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR in dB per image of (B, C, H, W) -> (B,) float64 (from :func:`mse`); identical images give +inf."""
    return 10 * torch.log10(data_range**2 / mse(a, b))


def ssim_target(render: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """CrossScore's training target: the zero-padded SSIM map of a render against its ground truth, averaged over
    colour channels and clamped to [0, 1]: (B, C, H, W) -> (B, H, W)."""
    return ssim_map(render, gt, padding="zero").mean(dim=1).clamp(0.0, 1.0)


def psnr_from_l1(l1: float) -> float:
    """Upstream CrossScore's 'PSNR' of a map error: −10·log10(L1²) (inf for a perfect prediction)."""
    return math.inf if l1 <= 0 else -20.0 * math.log10(l1)
