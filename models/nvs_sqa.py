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
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.frames import FrameSequence, InputError, SortOrder, open_sequence, prefetch

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
    """Smallest square frame the view encoder accepts (reflect padding needs every map ≥ 2 px)."""
    s = 5
    while True:
        a = (s - 5) // 2 + 1
        b = (a - 3) // 2 + 1
        if b // 8 >= 2:  # low-level branch 2 convolves a b//4//2 map: its reflect pad of 1 needs ≥ 2 px
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
    """Reflect pad + convolution with SiLU applied inside oneDNN (CPU): one memory pass instead of two."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.weight, self.bias = nn.Parameter(conv.weight.detach()), nn.Parameter(conv.bias.detach())
        self.stride = list(conv.stride)
        k = conv.kernel_size[0]
        self.pad = (k // 2,) * 4 if conv.padding == "same" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad:
            x = F.pad(x, self.pad, mode="reflect")
        return torch.ops.mkldnn._convolution_pointwise(
            x, self.weight, self.bias, [0, 0], self.stride, [1, 1], 1, "swish", [], ""
        )


def _fused_conv_silu_works() -> bool:
    try:
        conv = nn.Conv2d(3, 4, 3, padding="same", padding_mode="reflect").eval()
        x = torch.rand(1, 3, 8, 8)
        with torch.inference_mode():
            return bool(torch.allclose(_ConvSiLU(conv)(x), F.silu(conv(x)), atol=1e-5))
    except (RuntimeError, AttributeError):  # op missing in this torch build
        return False


def optimize_for_inference(encoder: ViewEncoder, device: torch.device) -> ViewEncoder:
    """BN folded, conv+SiLU fused on CPU (oneDNN post-op), channels_last. Eval only; see bench.py."""
    enc = fold_batchnorm(encoder)
    if device.type == "cpu" and torch.backends.mkldnn.is_available() and _fused_conv_silu_works():
        for mod in enc.modules():
            if isinstance(mod, nn.Sequential):
                for i in range(len(mod) - 2):
                    if isinstance(mod[i], nn.Conv2d) and isinstance(mod[i + 2], nn.SiLU):
                        mod[i], mod[i + 2] = _ConvSiLU(mod[i]), nn.Identity()
    return enc.to(device, memory_format=torch.channels_last)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; a clear error when CUDA is asked for but absent."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    return dev


@dataclass
class Regressor:
    """Ridge regressor ``score = features · coef + intercept`` (float32, as upstream's scikit-learn model)."""

    coef: np.ndarray  # (384,) float32
    intercept: float
    alpha: float = 1.0
    source_sha256: str = ""

    def predict(self, feats: np.ndarray) -> np.ndarray:
        x = np.asarray(feats, dtype=np.float32)
        return (x @ self.coef.astype(np.float32) + np.float32(self.intercept)).astype(np.float64)


class NVSSQA:
    """The scorer: load once, then :meth:`features` / :meth:`score` for any number of sequences.

    >>> m = NVSSQA.from_checkpoint()                    # released v0.0.1 weights, CPU or CUDA
    >>> m.score("examples/Giraffe+NeRF")                # a frame folder, a video, a path list or an array
    -2.0440...
    """

    def __init__(
        self, model: SequenceModel, regressor: Regressor | None = None, device: str | torch.device = "auto",
        fast: bool = True, info: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        self.device = resolve_device(device)
        self.model = model.eval().to(self.device)
        self.regressor = regressor
        self.info = info or {}
        # Fast path for inference (measured by bench.py, see README); fast=False runs the plain modules.
        enc = self.model.view_encoder
        self._encoder = optimize_for_inference(enc, self.device) if fast else enc

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, device: str | torch.device = "auto",
                        fast: bool = True) -> NVSSQA:
        """Load a checkpoint folder (default: the released v0.0.1 in ``checkpoints/``)."""
        from models.checkpoints import load_checkpoint

        ckpt = load_checkpoint(path)
        return cls(ckpt.model, ckpt.regressor, device, fast, ckpt.info)

    def _batches(self, frames: Iterator[np.ndarray], batch_size: int) -> Iterator[torch.Tensor]:
        buf: list[np.ndarray] = []
        for f in frames:
            buf.append(f)
            if len(buf) == batch_size:
                yield torch.from_numpy(np.stack(buf))
                buf = []
        if buf:
            yield torch.from_numpy(np.stack(buf))

    @torch.inference_mode()
    def frame_features(
        self, seq: FrameSequence, batch_size: int = 4, progress: bool = False, prefetch_depth: int = 8
    ) -> torch.Tensor:
        """Per-frame 360-d features (T, 360) of a sequence, streamed: memory does not grow with T."""
        from tqdm import tqdm

        feats: list[torch.Tensor] = []
        frames: Iterator[np.ndarray] = prefetch(iter(seq), prefetch_depth) if prefetch_depth else iter(seq)
        bar = tqdm(total=seq.n_frames, desc=seq.name, unit="frame", disable=not progress, leave=False)
        with bar:
            for hwc in self._batches(frames, batch_size):
                # (B, H, W, 3) uint8 -> (B, 3, H, W) view, already channels_last in memory; /255 as upstream.
                x = hwc.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float() / 255.0
                feats.append(self._encoder(x).float().cpu())
                bar.update(len(hwc))
        return torch.cat(feats)

    @torch.inference_mode()
    def aggregate(self, frame_feats: torch.Tensor) -> np.ndarray:
        """(T, 360) per-frame features -> the 384-d float32 quality representation."""
        x = frame_feats.to(self.device).unsqueeze(1)
        return self.model.aggregate(x)[0].float().cpu().numpy()

    def features(
        self, source: str | Path | list | np.ndarray | torch.Tensor | FrameSequence, batch_size: int = 4,
        progress: bool = False, sort: SortOrder = "natural",
    ) -> np.ndarray:  # fmt: skip
        """The 384-d quality representation of one sequence (folder, video, path list, array or tensor)."""
        seq = source if isinstance(source, FrameSequence) else open_sequence(source, MIN_FRAME_SIZE, sort)
        return self.aggregate(self.frame_features(seq, batch_size, progress))

    def predict(self, feats: np.ndarray) -> np.ndarray:
        """JOD scores from representations (N, 384) or (384,)."""
        if self.regressor is None:
            raise InputError(
                f"{self.info.get('path', 'checkpoint')}: has no regressor.json, so no JOD score; "
                "use --features-only, or fit one with evaluate.py --save-regressor"
            )
        return self.regressor.predict(np.atleast_2d(feats))

    def score(self, source: Any, batch_size: int = 4, progress: bool = False) -> float:
        """JOD score (offset by the reference; higher is better) of one sequence."""
        return float(self.predict(self.features(source, batch_size, progress))[0])


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
