"""SSIM blur alternatives on one 2.4 M-pixel sequence (60 × 3 × 200 × 200) on the CPU: seconds, error vs conv2d.

The numbers in docs/training.md ("Targets on the training device"). Run: ``python -m benchmarks.ssim_blur``.
The reference is the depthwise conv2d that ``models.ssim._blur`` used before (its replacement is "shifted").
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from models.ssim import C1, C2, gaussian_window

WIN = gaussian_window()


def conv_depthwise(x: torch.Tensor) -> torch.Tensor:
    c, k = x.shape[1], WIN.to(x.dtype)
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def conv_folded(x: torch.Tensor) -> torch.Tensor:  # channels folded into the batch: one-channel conv2d
    s, k = x.shape, WIN.to(x.dtype)
    y = F.conv2d(F.conv2d(x.reshape(-1, 1, *s[-2:]), k.view(1, 1, 1, -1)), k.view(1, 1, -1, 1))
    return y.view(*s[:-2], *y.shape[-2:])


def conv1d_twice(x: torch.Tensor) -> torch.Tensor:  # rows, then columns
    s, k = x.shape, WIN.to(x.dtype).view(1, 1, -1)
    y = F.conv1d(x.reshape(-1, 1, s[-1]), k).view(*s[:-1], -1)
    y = F.conv1d(y.transpose(-1, -2).reshape(-1, 1, s[-2]), k).view(*s[:-2], y.shape[-1], -1)
    return y.transpose(-1, -2)


def shifted(x: torch.Tensor) -> torch.Tensor:  # what models.ssim._blur does now
    k, w, h = WIN.tolist(), x.shape[-1] - 10, x.shape[-2] - 10
    y = x[..., 0:w] * k[0]
    for i in range(1, 11):
        y.add_(x[..., i:i + w], alpha=k[i])
    z = y[..., 0:h, :] * k[0]
    for i in range(1, 11):
        z.add_(y[..., i:i + h, :], alpha=k[i])
    return z


def banded_matmul(x: torch.Tensor) -> torch.Tensor:
    def band(n: int) -> torch.Tensor:
        m = torch.zeros(n, n - 10, dtype=x.dtype)
        for j in range(n - 10):
            m[j:j + 11, j] = WIN.to(x.dtype)
        return m

    return band(x.shape[-2]).T @ (x @ band(x.shape[-1]))


def unfolded(x: torch.Tensor) -> torch.Tensor:
    k = WIN.to(x.dtype)
    return (x.unfold(-1, 11, 1) @ k).unfold(-2, 11, 1) @ k


BLURS = {"depthwise conv2d": conv_depthwise, "folded 1-ch conv2d": conv_folded, "two conv1d": conv1d_twice,
         "shifted adds": shifted, "banded matmul": banded_matmul, "unfold @ k": unfolded}


def ssim_with(blur, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
    a, b = F.pad(a, (5,) * 4), F.pad(b, (5,) * 4)  # zero padding (--recipe upstream)
    n = a.shape[0]
    mu_a, mu_b, aa, bb, ab = blur(torch.cat([a, b, a * a, b * b, a * b])).split(n)
    va, vb, cov = aa - mu_a**2, bb - mu_b**2, ab - mu_a * mu_b
    return ((2 * mu_a * mu_b + C1) * (2 * cov + C2)) / ((mu_a**2 + mu_b**2 + C1) * (va + vb + C2))


def main() -> None:
    torch.manual_seed(0)
    a = torch.randint(0, 256, (60, 3, 200, 200)).double() / 255
    b = (a + 0.05 * torch.randn_like(a)).clamp(0, 1)
    ref = ssim_with(conv_depthwise, a, b)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for dt in (torch.float64, torch.float32):
            for name, blur in BLURS.items():
                x, y = a.to(dt), b.to(dt)
                ssim_with(blur, x[:2], y[:2])  # warm-up
                t0 = time.perf_counter()
                m = ssim_with(blur, x, y).double()
                t = time.perf_counter() - t0
                err = float((m - ref).abs().max())
                frame_err = float((m.mean((1, 2, 3)) - ref.mean((1, 2, 3))).abs().max())
                print(f"threads {threads} {str(dt)[6:]:8s} {name:20s} {t:6.2f} s  max|map err| {err:.1e}  "
                      f"max|frame-mean err| {frame_err:.1e}", flush=True)


if __name__ == "__main__":
    main()
