"""Precision modes of the view encoder (``--precision``): which layers run in which float type.

- ``exact`` (default): float32 everywhere; features within 1e-6 of the release's (the parity tests).
- ``mixed``: bfloat16 for the 24- to 192-channel trunk, float32 for ``conv_0`` (the 3-channel input convolution,
  on the raw pixels) and the three low-level branches (their pooled outputs are 168 of the 360 per-frame
  features and are averaged over whole frames, so a bf16 rounding there reaches the features unattenuated).
  Measured within 1e-4 of the reference features (docs/scoring.md, "Precision modes").
- ``bf16``: bfloat16 everywhere (≈1e-3 on the features; not for comparisons against exact results).
- ``fp16``: float16 everywhere; CUDA only.

On CPU, ``mixed`` and ``bf16`` need native bfloat16 arithmetic (AVX512_BF16 or AMX); elsewhere oneDNN emulates it
about ten times slower than float32, so they fall back to ``exact`` with one warning. The temporal model and the
regressor always run in float32 (they cost < 1 % of the time).
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from models.errors import InputError

log = logging.getLogger(__name__)

PRECISIONS = ("exact", "mixed", "bf16", "fp16")
DTYPES = {"mixed": torch.bfloat16, "bf16": torch.bfloat16, "fp16": torch.float16}
# Submodules of ViewEncoder that stay float32 in ``mixed`` (measured: docs/scoring.md, "Precision modes").
MIXED_FP32 = ("conv_0", "low_level_convs")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU feature flags of the first core listed in ``cpuinfo`` (empty where it is not readable)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bf16(flags: set[str] | None = None) -> bool:
    """True where this CPU multiplies bfloat16 natively (AVX512_BF16 or AMX-BF16)."""
    return bool((cpu_flags() if flags is None else flags) & set(NATIVE_BF16_FLAGS))


def resolve_precision(requested: str, device: torch.device, flags: set[str] | None = None,
                      emulate: bool = False) -> tuple[str, str | None]:
    """(the mode that will run, a one-line reason when it is not ``requested``) on ``device``. ``emulate``: run
    ``mixed``/``bf16`` on a CPU without native bfloat16 anyway (ten times slower; what measuring their error on
    such a CPU needs — the rounding is native bfloat16's)."""
    if requested not in PRECISIONS:
        raise InputError(f"precision={requested!r}: use one of {', '.join(PRECISIONS)}")
    if requested == "exact":
        return "exact", None
    if device.type == "cuda":
        if requested != "fp16" and not torch.cuda.is_bf16_supported():
            return "exact", f"precision={requested!r}: this GPU has no bfloat16; running exact (float32)"
        return requested, None
    if requested == "fp16":
        return "exact", "precision='fp16': float16 is for CUDA; running exact (float32) on the CPU"
    if not native_bf16(flags) and not emulate:
        return "exact", (f"precision={requested!r}: this CPU has no native bfloat16 (AVX512_BF16 or AMX), where "
                         "bfloat16 is slower than float32; running exact (float32)")
    return requested, None


@contextlib.contextmanager
def exact_float32(device: torch.device) -> Iterator[None]:
    """On CUDA, convolutions in IEEE float32 for the duration (cuDNN may otherwise use TF32, PyTorch's default on
    Ampere and later, ≈1e-3 off per layer): what ``exact`` promises. The flag is global, so it is restored after;
    the scorer encodes on one thread on CUDA. Elsewhere nothing changes."""
    if device.type != "cuda":
        yield
        return
    cudnn = torch.backends.cudnn
    before = cudnn.allow_tf32
    cudnn.allow_tf32 = False
    try:
        yield
    finally:
        cudnn.allow_tf32 = before


class Cast(nn.Module):
    """Runs ``module`` on its input cast to ``dtype``; the output is cast to ``out`` when given."""

    def __init__(self, module: nn.Module, dtype: torch.dtype, out: torch.dtype | None = None) -> None:
        super().__init__()
        self.module, self.dtype, self.out = module.to(dtype), dtype, out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.module(x.to(self.dtype))
        return y if self.out is None else y.to(self.out)


def _unfuse_where_unsupported(module: nn.Module, dtype: torch.dtype) -> None:
    from models.nvs_sqa.network import _ConvSiLU, fused_conv_silu_works

    convs = [m for m in module.modules() if isinstance(m, _ConvSiLU)]
    if convs and not fused_conv_silu_works(dtype):
        for m in convs:
            m.fused = False


def apply_precision(encoder: nn.Module, mode: str) -> nn.Module:
    """A copy of an inference-ready view encoder (``optimize_for_inference``) set up for ``mode`` (as resolved by
    :func:`resolve_precision`); it takes float32 frames and returns float32 features in every mode."""
    if mode == "exact":
        return encoder
    dtype = DTYPES[mode]
    enc = copy.deepcopy(encoder)
    if mode in ("bf16", "fp16"):
        _unfuse_where_unsupported(enc, dtype)
        return Cast(enc, dtype, out=torch.float32)
    names = [n for n, _ in enc.named_children()]
    for name in names:
        child = getattr(enc, name)
        if name in MIXED_FP32:
            wrapped = nn.ModuleList(Cast(m, torch.float32) for m in child) if isinstance(child, nn.ModuleList) \
                else child  # fmt: skip
        else:
            _unfuse_where_unsupported(child, dtype)
            wrapped = Cast(child, dtype, out=torch.float32 if name == "out_feats" else None)
        setattr(enc, name, wrapped)
    return enc
