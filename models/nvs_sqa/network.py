"""NVS-SQA: per-frame view encoder + temporal transformer -> 384-d quality representation -> JOD.

Module and parameter names follow the upstream release (``view_encoder.conv_0.convna.0.weight`` ...), so
its state_dict loads with ``strict=True``. Facts: ../shared/specs/nvs-sqa.md.

Tensor conventions (dim_order): frames enter the view encoder as (B, 3, H, W) float in [0, 1] (uint8 / 255,
no mean/std normalisation); per-frame features are (T, 360); the sequence model is sequence-first
(T, B, 360); the output is (B, 384).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.errors import InputError

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------- config
@dataclass
class ModelConfig:
    """Hyper-parameters of a sequence model; the JSON fields of upstream's ``*_config.json``."""

    model_type: str = "TransEncoder"  # only the transformer encoder variant is implemented
    img_mode: str = "RGB"
    enc_type: str = "normal"  # the released view encoder ("efficient" MBConv variant not implemented)
    view_enc_size: int = 192  # main-branch feature size
    with_low_level: list[int] = field(default_factory=lambda: [24, 48, 96])  # low-level branch sizes
    view_pretrained: bool = False
    angular_feat_size: int = 384  # output representation size
    fusion: str = "last"  # last | mean | max over the transformer outputs
    num_layers: int = 2
    nhead: int = 6
    version: str = "v0.0.1"

    @property
    def frame_feat_size(self) -> int:
        return self.view_enc_size + sum(self.with_low_level)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"{source}: unknown config fields {unknown}; is this an NVS-SQA config.json?")
        cfg = cls(**d)
        if cfg.model_type != "TransEncoder" or cfg.enc_type != "normal" or cfg.img_mode != "RGB":
            raise InputError(
                f"{source}: unsupported variant model_type={cfg.model_type} enc_type={cfg.enc_type} "
                f"img_mode={cfg.img_mode}; only TransEncoder/normal/RGB (the released model) is implemented"
            )
        if cfg.fusion not in ("last", "mean", "max") or len(cfg.with_low_level) != 3:
            raise InputError(f"{source}: unsupported fusion={cfg.fusion} or with_low_level={cfg.with_low_level}")
        if cfg.frame_feat_size % cfg.nhead or cfg.frame_feat_size % 2:
            raise InputError(f"{source}: frame feature size {cfg.frame_feat_size} not divisible by nhead={cfg.nhead}")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------------- blocks
class _Residual(nn.Module):
    """``x + f(x)`` when shapes agree, else ``f(x)`` (upstream's rule for every conv block)."""

    convna: nn.Sequential

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.convna(x)
        return x + y if x.shape == y.shape else y


class ConvNormAct(_Residual):
    """Conv -> BatchNorm -> SiLU, reflect padding."""

    def __init__(self, cin: int, cout: int, k: int, padding: int | str = "same") -> None:
        super().__init__()
        self.convna = nn.Sequential(
            nn.Conv2d(cin, cout, k, padding=padding, padding_mode="reflect"), nn.BatchNorm2d(cout), nn.SiLU()
        )


class DoubleConv(_Residual):
    """Two Conv -> BatchNorm -> SiLU, reflect padding (upstream ``double_conv``)."""

    def __init__(
        self, cin: int, cmid: int, cout: int, k: tuple[int, int] = (3, 3), stride: tuple[int, int] = (1, 1),
        padding: int | str = "same",
    ) -> None:  # fmt: skip
        super().__init__()
        self.convna = nn.Sequential(
            nn.Conv2d(cin, cmid, k[0], stride=stride[0], padding=padding, padding_mode="reflect"),
            nn.BatchNorm2d(cmid),
            nn.SiLU(),
            nn.Conv2d(cmid, cout, k[1], stride=stride[1], padding=padding, padding_mode="reflect"),
            nn.BatchNorm2d(cout),
            nn.SiLU(),
        )


class ViewEncoder(nn.Module):
    """Per-frame CNN: (B, 3, H, W) in [0, 1] -> (B, 24 + 48 + 96 + 192) = (B, 360) for the released sizes."""

    def __init__(self, view_enc_size: int = 192, with_low_level: Iterable[int] = (24, 48, 96)) -> None:
        super().__init__()
        chs = [12 * 2**i for i in range(5)]  # [12, 24, 48, 96, 192]
        self.conv_0 = DoubleConv(3, 6, 12, k=(5, 3), stride=(2, 2), padding=0)
        self.low_level_convs = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), DoubleConv(chs[i], d, d), nn.AdaptiveAvgPool2d(1))
            for i, d in enumerate(with_low_level)
        )
        self.fused_conv_1 = DoubleConv(chs[0], chs[1], chs[1])
        self.fused_conv_2 = DoubleConv(chs[1], chs[1], chs[1])
        self.fused_conv_3 = DoubleConv(chs[1], chs[2], chs[2])
        self.fused_conv_4 = DoubleConv(chs[2], chs[2], chs[2])
        self.dwise_conv_1 = DoubleConv(chs[2], chs[3], chs[3])
        self.dwise_conv_2 = DoubleConv(chs[3], chs[3], chs[3])
        self.pool_1, self.pool_2, self.pool_3 = nn.MaxPool2d(2), nn.MaxPool2d(2), nn.MaxPool2d(2)
        self.pwise_conv = ConvNormAct(chs[3], chs[4], 1, padding=0)
        self.out_feats = nn.Linear(chs[4], view_enc_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_0(x)
        low = [self.low_level_convs[0](x).flatten(1)]
        x = self.pool_1(self.fused_conv_2(self.fused_conv_1(x)))
        low.append(self.low_level_convs[1](x).flatten(1))
        x = self.pool_2(self.fused_conv_4(self.fused_conv_3(x)))
        low.append(self.low_level_convs[2](x).flatten(1))
        x = self.pwise_conv(self.pool_3(self.dwise_conv_2(self.dwise_conv_1(x))))
        x = self.out_feats(F.adaptive_avg_pool2d(x, 1).flatten(1))
        return torch.cat([*low, x], dim=1)


def sinusoidal_encoding(length: int, dim: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(length, dim) table: ``pe[:, 0::2] = sin(pos·div)``, ``pe[:, 1::2] = cos(pos·div)`` (upstream recipe)."""
    div = torch.exp(torch.arange(0, dim, 2) * -(torch.log(torch.tensor(10000.0)) / dim)).to(device)
    pos = torch.arange(length, device=device).unsqueeze(1)
    pe = torch.zeros(length, dim, device=device)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe


class SequenceModel(nn.Module):
    """View encoder + positional encoding + transformer encoder + fusion + Linear -> (B, angular_feat_size)."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        d = self.config.frame_feat_size
        self.view_encoder = ViewEncoder(self.config.view_enc_size, self.config.with_low_level)
        # nn defaults, as upstream: ff 2048, ReLU, post-norm, dropout 0.1, sequence-first.
        layer = nn.TransformerEncoderLayer(d_model=d, nhead=self.config.nhead)
        self.angular_encoder = nn.TransformerEncoder(layer, self.config.num_layers, enable_nested_tensor=False)
        self.fc = nn.Linear(d, self.config.angular_feat_size)

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> per-frame features (B, 360)."""
        return self.view_encoder(frames)

    def aggregate(self, frame_feats: torch.Tensor) -> torch.Tensor:
        """Per-frame features (T, B, 360), sequence-first -> representation (B, angular_feat_size)."""
        t = frame_feats.shape[0]
        x = frame_feats + sinusoidal_encoding(t, frame_feats.shape[-1], frame_feats.device).unsqueeze(1)
        x = self.angular_encoder(x)
        fusion = self.config.fusion
        x = x[-1] if fusion == "last" else x.mean(0) if fusion == "mean" else x.max(0).values
        return self.fc(x)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """Training path: clips (B, T, 3, H, W) -> (B, angular_feat_size)."""
        b, t = clips.shape[:2]
        feats = self.encode_frames(clips.flatten(0, 1)).view(b, t, -1).transpose(0, 1)
        return self.aggregate(feats)


def min_frame_size() -> int:
    """Smallest frame side the view encoder accepts (69 px): reflect padding needs every map ≥ 2 px, and the
    smallest map is low-level branch 2's, after conv_0 (two stride-2 convs) and three 2× max-pools."""
    s = 5
    while True:
        after_conv0 = ((s - 5) // 2 + 1 - 3) // 2 + 1
        if after_conv0 // 8 >= 2:
            return s
        s += 1


MIN_FRAME_SIZE = min_frame_size()


# --------------------------------------------------------------------------------------------- inference
def fold_batchnorm(encoder: ViewEncoder) -> ViewEncoder:
    """An eval-only copy of ``encoder`` with every BatchNorm folded into the convolution before it.

    Saves one full-resolution memory pass per convolution; results differ from the unfolded model only by
    float rounding (≈1e-6 on the features, checked by the parity test).
    """
    enc = copy.deepcopy(encoder).eval()
    for mod in enc.modules():
        if isinstance(mod, nn.Sequential):
            for i in range(len(mod) - 1):
                if isinstance(mod[i], nn.Conv2d) and isinstance(mod[i + 1], nn.BatchNorm2d):
                    mod[i] = torch.nn.utils.fusion.fuse_conv_bn_eval(mod[i], mod[i + 1])
                    mod[i + 1] = nn.Identity()
    return enc


class _ConvSiLU(nn.Module):
    """Reflect pad + convolution with SiLU applied inside oneDNN (CPU): one memory pass instead of two.
    ``fused = False`` runs the same maths as two ops (for a dtype that oneDNN's fused kernel lacks here)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.weight, self.bias = nn.Parameter(conv.weight.detach()), nn.Parameter(conv.bias.detach())
        self.stride = list(conv.stride)
        k = conv.kernel_size[0]
        self.pad = (k // 2,) * 4 if conv.padding == "same" else None
        self.fused = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convolve(self.pad_input(x))

    def pad_input(self, x: torch.Tensor) -> torch.Tensor:
        """The reflect-padded input (``x`` itself for an unpadded convolution)."""
        return F.pad(x, self.pad, mode="reflect") if self.pad else x

    def convolve(self, x: torch.Tensor) -> torch.Tensor:
        """SiLU(conv(x)) of an already padded ``x`` (roofline.py times the two steps apart)."""
        if not self.fused:
            return F.silu(F.conv2d(x, self.weight, self.bias, self.stride))
        return torch.ops.mkldnn._convolution_pointwise(
            x, self.weight, self.bias, [0, 0], self.stride, [1, 1], 1, "swish", [], ""
        )


def fused_conv_silu_works(dtype: torch.dtype = torch.float32) -> bool:
    """Whether oneDNN's fused conv+SiLU runs in ``dtype`` on this CPU and matches conv then SiLU."""
    try:
        conv = nn.Conv2d(3, 4, 3, padding="same", padding_mode="reflect").eval().to(dtype)
        x = torch.rand(1, 3, 8, 8).to(dtype)
        with torch.inference_mode():
            ref = F.silu(conv(x)).float()
            return bool(torch.allclose(_ConvSiLU(conv)(x).float(), ref, atol=1e-5 if dtype == torch.float32 else 2e-2))
    except (RuntimeError, AttributeError):  # op missing in this torch build, or no kernel for dtype on this CPU
        return False


def optimize_for_inference(encoder: ViewEncoder, device: torch.device) -> ViewEncoder:
    """BN folded, conv+SiLU fused on CPU (oneDNN post-op), channels_last. Eval only (timed by make bench)."""
    enc = fold_batchnorm(encoder)
    if device.type == "cpu" and torch.backends.mkldnn.is_available() and fused_conv_silu_works():
        for mod in enc.modules():
            if isinstance(mod, nn.Sequential):
                for i in range(len(mod) - 2):
                    if isinstance(mod[i], nn.Conv2d) and isinstance(mod[i + 2], nn.SiLU):
                        mod[i], mod[i + 2] = _ConvSiLU(mod[i]), nn.Identity()
    return enc.to(device, memory_format=torch.channels_last)


@dataclass
class Regressor:
    """Ridge regressor ``score = features · coef + intercept`` (float32, as upstream's scikit-learn model)."""

    coef: np.ndarray  # (384,) float32
    intercept: float
    alpha: float = 1.0
    source_sha256: str = ""

    def predict(self, feats: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(np.asarray(feats, dtype=np.float32))
        coef = self.coef.astype(np.float32)
        # One dot per row: a score does not depend on which other sequences share the call.
        return np.array([np.dot(r, coef) + np.float32(self.intercept) for r in x], dtype=np.float64)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
