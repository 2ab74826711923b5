"""CrossScore network: a DINOv2 backbone, a fixed positional table, a 2-layer cross-reference decoder, a patch
head and the jigsaw reassembly into a per-pixel SSIM map (facts: ../shared/specs/crossscore.md).

Module names follow upstream's ``CrossScoreNet`` so that a state_dict maps 1:1 onto the Lightning checkpoint
(``model.`` prefix, DINOv2 parameter names of transformers 4.x; see ``models/crossscore/checkpoint.py``).

Fewer references than the batch holds are handled with a key-padding mask on the cross-attention (padded
views never receive attention), not with black images. With no reference at all (``n_ref = 0``) the decoder
attends to the query's own tokens: the *no-reference variant* of the same network, used as a baseline.
"""

from __future__ import annotations

import copy
import logging
import math
import types
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from consts import CROSSSCORE_TINY_BACKBONE, IMAGENET_MEAN, IMAGENET_STD
from models.errors import InputError

log = logging.getLogger(__name__)


@dataclass
class CrossScoreConfig:
    """Hyper-parameters of a CrossScore network (saved as ``config.json`` beside ``model.pth``)."""

    backbone: str = "facebook/dinov2-small"  # "tiny" | local transformers folder | hub id (from the local cache)
    backbone_config: dict[str, Any] = field(default_factory=dict)  # Dinov2Config fields; filled when built
    train_backbone: bool = False  # upstream freezes DINOv2; the tiny offline backbone is trained
    pe_h: int = 40  # fixed random positional table (1, pe_h, pe_w, hidden)
    pe_w: int = 40
    n_heads: int = 8  # decoder attention heads
    n_layers: int = 2  # decoder layers
    ff_dim: int = 0  # decoder feed-forward width; 0 = hidden size (upstream)
    seed: int = 0  # seeds the positional table and the randomly initialised parts
    # DINOv2 position-embedding interpolation for a token grid other than the table's (see POS_RULES)
    pos_interp: str = "hf-4.33"
    version: str = "crossscore-v1"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> CrossScoreConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"{source}: unknown CrossScore config field(s) {unknown}; is this a CrossScore config?")
        if "pos_interp" not in d:  # such a config was trained and tested under transformers 5.x's rule: keep it
            d = {**d, "pos_interp": "hf-5"}
        if d["pos_interp"] not in POS_RULES:
            raise InputError(f"{source}: pos_interp {d['pos_interp']!r} is not one of {sorted(POS_RULES)}")
        return cls(**d)


# --------------------------------------------------------------------------------------------- backbone
def build_backbone(spec: str, config: dict[str, Any] | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """A ``transformers.Dinov2Model`` and its config dict. Never downloads anything.

    ``config`` given: a randomly initialised model of that shape (its tensors come from a checkpoint next).
    ``spec == "tiny"``: a small random configuration for offline training. A local folder: ``from_pretrained``
    on it. Anything else is a hub id, looked up in the local Hugging Face cache only.
    """
    from transformers import Dinov2Config, Dinov2Model

    if config:
        return Dinov2Model(Dinov2Config(**config)).eval(), dict(config)
    if spec == "tiny":
        cfg = Dinov2Config(**CROSSSCORE_TINY_BACKBONE)
        return Dinov2Model(cfg), _config_dict(cfg)
    try:
        model = Dinov2Model.from_pretrained(spec, local_files_only=True)
    except (OSError, ValueError) as e:
        where = "folder" if Path(spec).exists() else "hub id (not in the local Hugging Face cache)"
        raise InputError(
            f"{spec}: cannot load a DINOv2 backbone from this {where} ({str(e).splitlines()[0][:120]}); pass a "
            "local transformers folder (config.json + weights), or 'tiny' as the backbone; downloads never happen at "
            "run time (fetch once with `hf download facebook/dinov2-small --local-dir DIR` where a network is)"
        ) from None
    return model.eval(), _config_dict(model.config)


def _interp_hf433(self: nn.Module, embeddings: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """transformers 4.33.3's ``Dinov2Embeddings.interpolate_pos_encoding`` (upstream's pinned version): bicubic
    with ``scale_factor=((h + 0.1) / N, (w + 0.1) / N)``, skipped only for a square image of the table's grid."""
    pos = self.position_embeddings
    n_patches, n_pos = embeddings.shape[1] - 1, pos.shape[1] - 1
    if n_patches == n_pos and height == width:
        return pos
    dim, side = embeddings.shape[-1], math.sqrt(n_pos)  # a float, as 4.33.3 divides by it
    gh, gw = height // self.config.patch_size + 0.1, width // self.config.patch_size + 0.1
    table = pos[:, 1:].reshape(1, int(side), int(side), dim).permute(0, 3, 1, 2)
    # fp32 whatever the autocast: upstream's parameters are fp32 under Lightning's 16-mixed
    table = F.interpolate(table.float(), scale_factor=(gh / side, gw / side), mode="bicubic", align_corners=False)
    if table.shape[-2:] != (int(gh), int(gw)):
        raise ValueError(f"position table resized to {tuple(table.shape[-2:])}, not {(int(gh), int(gw))}")
    table = table.to(pos.dtype).permute(0, 2, 3, 1).reshape(1, -1, dim)
    return torch.cat((pos[:, :1], table), dim=1)


# "hf-4.33": upstream's rule (transformers 4.33.3, the version upstream pins; the only one valid for the real
# CrossScore-v1.0.0.ckpt). "hf-5": the installed transformers' own rule (bicubic to size=(h, w)).
POS_RULES = {"hf-4.33": _interp_hf433, "hf-5": None}


def set_pos_interpolation(backbone: nn.Module, rule: str) -> None:
    """Make ``backbone`` (a ``Dinov2Model``) interpolate its position table by ``rule`` (see ``POS_RULES``)."""
    if rule not in POS_RULES:
        raise InputError(f"position-embedding rule {rule!r} is not one of {sorted(POS_RULES)}")
    emb = backbone.embeddings
    if "interpolate_pos_encoding" in vars(emb):  # undo an earlier choice
        del emb.interpolate_pos_encoding
    if POS_RULES[rule] is not None:
        emb.interpolate_pos_encoding = types.MethodType(POS_RULES[rule], emb)


def _config_dict(cfg: Any) -> dict[str, Any]:
    keys = ("hidden_size", "num_hidden_layers", "num_attention_heads", "mlp_ratio", "image_size", "patch_size",
            "layer_norm_eps", "layerscale_value", "qkv_bias", "use_swiglu_ffn", "hidden_act")
    return {k: getattr(cfg, k) for k in keys}


# --------------------------------------------------------------------------------------------- network parts
class MultiViewPE(nn.Module):
    """One fixed random table added to every view (query and references alike), resized to the token grid."""

    def __init__(self, h: int, w: int, c: int, generator: torch.Generator | None = None):
        super().__init__()
        self.PE = nn.Parameter(torch.randn(1, h, w, c, generator=generator), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, N_view, Nh, Nw, C) -> same shape, with the table added."""
        nh, nw = x.shape[2:4]
        pe = self.PE
        if (nh, nw) != tuple(pe.shape[1:3]):
            pe = F.interpolate(pe.permute(0, 3, 1, 2), size=(nh, nw), mode="bilinear", align_corners=True)
            pe = pe.permute(0, 2, 3, 1)
        return x + pe[:, None].to(x.dtype)


class DecoderLayer(nn.Module):
    """Post-norm transformer decoder layer (names as ``nn.TransformerDecoderLayer``) that can return weights."""

    def __init__(self, d: int, n_heads: int, ff: int):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, n_heads, dropout=0.0, batch_first=True)
        self.multihead_attn = nn.MultiheadAttention(d, n_heads, dropout=0.0, batch_first=True)
        self.linear1, self.linear2 = nn.Linear(d, ff), nn.Linear(ff, d)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, mem: torch.Tensor, mem_pad: torch.Tensor | None,
                need_weights: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.norm1(x + self.self_attn(x, x, x, need_weights=False)[0])
        out, w = self.multihead_attn(x, mem, mem, key_padding_mask=mem_pad, need_weights=need_weights,
                                     average_attn_weights=False)
        x = self.norm2(x + out)
        x = self.norm3(x + self.linear2(F.relu(self.linear1(x))))
        return x, w


class Decoder(nn.Module):
    def __init__(self, d: int, n_heads: int, ff: int, n_layers: int):
        super().__init__()
        layer = DecoderLayer(d, n_heads, ff)  # upstream (nn.TransformerDecoder): copies of one initialised layer
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(n_layers))

    def forward(self, x, mem, mem_pad, need_weights):
        w = None
        for i, layer in enumerate(self.layers):
            x, w = layer(x, mem, mem_pad, need_weights and i == len(self.layers) - 1)
        return x, w  # weights of the last layer only (upstream)


class CrossReferenceNet(nn.Module):
    def __init__(self, d: int, patch: int, n_heads: int, ff: int, n_layers: int):
        super().__init__()
        self.attn = Decoder(d, n_heads, ff, n_layers)
        self.head = nn.Sequential(nn.Linear(d, d), nn.LeakyReLU(0.01), nn.Linear(d, patch * patch), nn.Sigmoid())


def jigsaw_to_image(x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(B, Nh·Nw, P, P) patches in row-major token order -> (B, Nh·P, Nw·P) image."""
    b, n, p, q = x.shape
    if n != grid[0] * grid[1]:
        raise ValueError(f"{n} patches do not fill a {grid[0]}x{grid[1]} grid")
    return x.view(b, grid[0], grid[1], p, q).permute(0, 1, 3, 2, 4).reshape(b, grid[0] * p, grid[1] * q)


class CrossScoreNet(nn.Module):
    """Query (B, 3, H, W) + references (B, N, 3, H, W), RGB in [0, 1] -> SSIM map (B, 14·Nh, 14·Nw)."""

    def __init__(self, cfg: CrossScoreConfig, backbone: nn.Module | None = None):
        super().__init__()
        if backbone is None:
            backbone, cfg.backbone_config = build_backbone(cfg.backbone, cfg.backbone_config)
        self.cfg = cfg
        bc = cfg.backbone_config
        d, self.patch = int(bc["hidden_size"]), int(bc["patch_size"])
        self.register_buffer("img_mean_std", torch.tensor([*IMAGENET_MEAN, *IMAGENET_STD]))
        self.backbone = backbone
        self.backbone.requires_grad_(cfg.train_backbone)
        set_pos_interpolation(self.backbone, cfg.pos_interp)
        gen = torch.Generator().manual_seed(cfg.seed)
        self.pos_enc_fn = MultiViewPE(cfg.pe_h, cfg.pe_w, d, gen)
        self.ref_cross = CrossReferenceNet(d, self.patch, cfg.n_heads, cfg.ff_dim or d, cfg.n_layers)

    def n_trainable(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def tokens(self, imgs: torch.Tensor) -> torch.Tensor:
        """(M, 3, H, W) in [0, 1] -> (M, Nh·Nw, C) patch tokens (CLS dropped), ImageNet-normalised input."""
        x = (imgs - self.img_mean_std[None, :3, None, None]) / self.img_mean_std[None, 3:, None, None]
        with torch.set_grad_enabled(self.cfg.train_backbone and torch.is_grad_enabled()):
            return self.backbone(pixel_values=x).last_hidden_state[:, 1:]

    def forward(self, query: torch.Tensor, refs: torch.Tensor | None = None, ref_valid: torch.Tensor | None = None,
                need_attn: bool = False, attn_head: int = 0) -> dict[str, torch.Tensor]:
        """``ref_valid`` (B, N) marks real references (False = padding, masked out); returns ``score_map``
        (B, H', W') and, with ``need_attn``, ``attn`` (B, Nh, Nw, N, Nh, Nw) of one head of the last layer."""
        b, _, h, w = query.shape
        nh, nw = h // self.patch, w // self.patch
        if nh == 0 or nw == 0:
            raise InputError(f"image is {w}x{h}; CrossScore needs at least {self.patch}x{self.patch} pixels")
        n = 0 if refs is None else refs.shape[1]
        if refs is not None and refs.shape[-2:] != query.shape[-2:]:
            raise ValueError(f"references are {tuple(refs.shape[-2:])}, the query {(h, w)}: resize them first")
        imgs = query if n == 0 else torch.cat([query[:, None], refs], 1).flatten(0, 1)
        tok = self.tokens(imgs).reshape(b, 1 + n, nh, nw, -1)
        tok = self.pos_enc_fn(tok)
        q = tok[:, 0].reshape(b, nh * nw, -1)
        if n == 0:  # no-reference variant: the query attends to itself
            mem, pad = q, None
        else:
            mem = tok[:, 1:].reshape(b, n * nh * nw, -1)
            pad = None
            if ref_valid is not None:
                if not bool(ref_valid.any(1).all()):
                    raise InputError("an image has no valid reference; give at least one reference image")
                pad = (~ref_valid.bool())[:, :, None].expand(b, n, nh * nw).reshape(b, n * nh * nw)
        x, attn = self.ref_cross.attn(q, mem, pad, need_attn)
        patches = self.ref_cross.head(x).view(b, nh * nw, self.patch, self.patch)
        out = {"score_map": jigsaw_to_image(patches, (nh, nw))}
        if need_attn and attn is not None:
            a = attn[:, attn_head]
            out["attn"] = a.reshape(b, nh, nw, max(n, 1), nh, nw)
        return out
