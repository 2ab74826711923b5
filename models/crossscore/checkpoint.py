"""CrossScore checkpoints: our folder format and upstream's Lightning ``CrossScore-v1.0.0.ckpt``.

Our format is a folder with ``config.json`` (:class:`CrossScoreConfig`) and ``model.pth`` (a plain state_dict
of the whole network, or a training checkpoint ``{"model": state_dict, ...}``), read with
``torch.load(weights_only=True)``.

The upstream file is a Lightning checkpoint: ``state_dict`` holds ``model.backbone.*`` (DINOv2 in the
parameter names of transformers 4.x), ``model.pos_enc_fn.PE``, ``model.ref_cross.attn.layers.{i}.*`` and
``model.ref_cross.head.{0,2}.*``. It is read for its tensors only: first with ``weights_only=True``; if the
file holds other objects (Lightning hyper-parameters, callback states), with the allow-list unpickler
(:mod:`models.unpickle`) that rebuilds tensors and plain containers and turns every other class into an inert
stand-in, so no code from the file runs. The backbone is built from a local config (DINOv2-S, or one inferred
from the tensor shapes) and every tensor is filled from the file; nothing is downloaded.
"""

from __future__ import annotations

import json
import logging
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from consts import (
    CKPT_CONFIG,
    CKPT_WEIGHTS,
    CROSSSCORE_DEMO_MODEL,
    CROSSSCORE_DEMO_SHA256,
    CROSSSCORE_PREDICT_SHORT_SIDE,
)
from models import unpickle
from models.crossscore.network import CrossScoreConfig, CrossScoreNet
from models.crossscore.options import DEMO_MODEL_HINT
from models.errors import InputError
from models.results import atomic_write_bytes, atomic_write_json, sha256_file

log = logging.getLogger(__name__)
PREFIX = "model."
# DINOv2 attention parameter names: legacy (transformers 4.x, the upstream checkpoint; still 5.17) -> newer (5.23).
_LEGACY = (
    (".attention.attention.query.", ".attention.q_proj."),
    (".attention.attention.key.", ".attention.k_proj."),
    (".attention.attention.value.", ".attention.v_proj."),
    (".attention.output.dense.", ".attention.o_proj."),
)
_MODERN_TO_LEGACY = tuple((b, a) for a, b in _LEGACY)


def _rename(key: str, pairs: tuple[tuple[str, str], ...]) -> str:
    for a, b in pairs:
        key = key.replace(a, b)
    return key


def to_upstream(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our state_dict -> upstream Lightning ``state_dict`` keys (``model.`` prefix, legacy DINOv2 names)."""
    return {PREFIX + _rename(k, _MODERN_TO_LEGACY): v for k, v in state.items()}


def live_names(state: dict[str, torch.Tensor], ours: set[str]) -> dict[str, torch.Tensor]:
    """``state`` with its DINOv2 attention names in the naming of the installed transformers (``ours``: the live
    model's keys): the legacy names (transformers 4.x and 5.x up to at least 5.17) and the newer ``q_proj`` ones
    (5.23) both load under either."""
    pairs = _MODERN_TO_LEGACY if any(".attention.attention.query." in k for k in ours) else _LEGACY
    return {_rename(k, pairs): v for k, v in state.items()}


def from_upstream(state: dict[str, torch.Tensor], ours: set[str]) -> dict[str, torch.Tensor]:
    """Upstream ``state_dict`` -> our keys, in the live DINOv2 naming (see :func:`live_names`)."""
    return live_names({k[len(PREFIX):]: v for k, v in state.items() if k.startswith(PREFIX)}, ours)


# --------------------------------------------------------------------------------------------- safe loading
def load_tensors(path: Path) -> Any:
    """``torch.load`` that never runs code from the file (see the module docstring)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass  # other objects beside the tensors (Lightning): retry with stand-ins for them
    except Exception as e:  # noqa: BLE001 - torch raises many types for a file that is not a checkpoint
        raise InputError(f"{path}: not a PyTorch checkpoint ({type(e).__name__}); check the file") from None
    try:
        return unpickle.torch_load(path)
    except Exception as e:  # noqa: BLE001
        reason = (str(e).splitlines() or [""])[0][:120]
        raise InputError(f"{path}: not a PyTorch checkpoint we can read ({type(e).__name__}: {reason})") from None


# --------------------------------------------------------------------------------------------- upstream
def infer_backbone_config(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """DINOv2 shape from the backbone tensors (heads = hidden / 64, the DINOv2 family's rule)."""
    from consts import CROSSSCORE_DINOV2_SMALL

    try:
        hidden = state["backbone.embeddings.cls_token"].shape[-1]
        proj = state["backbone.embeddings.patch_embeddings.projection.weight"]
        n_pos = state["backbone.embeddings.position_embeddings"].shape[1] - 1
        layers = {int(m.group(1)) for k in state if (m := re.match(r"backbone\.encoder\.layer\.(\d+)\.", k))}
        fc1 = state["backbone.encoder.layer.0.mlp.fc1.weight"].shape[0]
    except KeyError as e:
        raise InputError(f"checkpoint has no backbone tensor {e}; not a CrossScore checkpoint") from None
    patch = proj.shape[-1]
    return {**CROSSSCORE_DINOV2_SMALL, "hidden_size": hidden, "num_hidden_layers": len(layers),
            "num_attention_heads": max(1, hidden // 64), "mlp_ratio": fc1 // hidden, "patch_size": patch,
            "image_size": round(n_pos**0.5) * patch}


def load_upstream(path: Path, backbone_config: dict[str, Any] | None = None) -> CrossScoreNet:
    """Build a network from upstream's Lightning checkpoint, filling every tensor from the file."""
    obj = load_tensors(path)
    sd = obj.get("state_dict") if isinstance(obj, dict) else None
    if not isinstance(sd, dict) or not any(k.startswith("model.ref_cross.") for k in sd):
        raise InputError(f"{path}: no `state_dict` with model.ref_cross.* tensors; not a CrossScore checkpoint "
                         "(expected CrossScore-v1.0.0.ckpt or a folder with config.json + model.pth)")
    plain = {k[len(PREFIX):]: v for k, v in sd.items() if k.startswith(PREFIX)}
    bcfg = {**infer_backbone_config({k: v for k, v in plain.items() if k.startswith("backbone.")}),
            **(backbone_config or {})}
    pe = plain.get("pos_enc_fn.PE")
    layers = {int(m.group(1)) for k in plain if (m := re.match(r"ref_cross\.attn\.layers\.(\d+)\.", k))}
    if pe is None or not layers:
        raise InputError(f"{path}: missing pos_enc_fn.PE or decoder layers; not a CrossScore checkpoint")
    ff = plain["ref_cross.attn.layers.0.linear1.weight"].shape[0]
    cfg = CrossScoreConfig(backbone=str(path), backbone_config=bcfg, pe_h=pe.shape[1], pe_w=pe.shape[2],
                           n_layers=len(layers), ff_dim=ff)
    net = CrossScoreNet(cfg)
    state = from_upstream(sd, set(net.state_dict()))
    state.setdefault("img_mean_std", net.img_mean_std)  # a buffer upstream has; constant anyway
    _fill(net, state, path)
    return net.eval()


def _fill(net: CrossScoreNet, state: dict[str, torch.Tensor], path: Path) -> None:
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        raise InputError(f"{path}: tensors do not fit the network ({(lines[1] if len(lines) > 1 else lines[0])[:200]});"
                         " wrong checkpoint for this backbone/config?") from None


# --------------------------------------------------------------------------------------------- our format
def save_model(folder: Path, net: CrossScoreNet, extra: dict[str, Any] | None = None) -> None:
    """Write ``config.json`` + ``model.pth`` (plain state_dict), atomically."""
    import io

    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, buf)
    atomic_write_bytes(folder / CKPT_WEIGHTS, buf.getvalue())
    atomic_write_json(folder / CKPT_CONFIG, {**net.cfg.to_dict(), **({"meta": extra} if extra else {})})


def load_model(path: str | Path, backbone: str | None = None) -> tuple[CrossScoreNet, dict[str, Any]]:
    """A CrossScore network from our folder (or a ``.pth`` inside one) or an upstream ``.ckpt`` file.

    ``backbone`` (a folder with a DINOv2 ``config.json``) overrides the shape used for an upstream file.
    Returns the network (eval mode) and provenance for results files.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: checkpoint not found; {DEMO_MODEL_HINT}; or give a checkpoint folder, a one-file "
                         ".pth or CrossScore-v1.0.0.ckpt")
    if p.is_file() and p.suffix != ".pth":
        bcfg = None
        if backbone and (Path(backbone) / "config.json").is_file():  # a transformers folder's config.json
            raw = json.loads((Path(backbone) / "config.json").read_text())
            bcfg = {k: raw[k] for k in _bb_keys() if k in raw}
        net = load_upstream(p, bcfg)
        return net, {"checkpoint": str(p), "checkpoint_sha256": sha256_file(p), "format": "upstream-lightning"}
    single = _single_file(p)
    folder, weights = (p.parent, p) if p.is_file() else (p, p / CKPT_WEIGHTS)
    cfg_path = weights if single else folder / CKPT_CONFIG
    if not single and (not cfg_path.is_file() or not weights.is_file()):
        raise InputError(f"{folder}: needs {CKPT_CONFIG} and {CKPT_WEIGHTS}; not a CrossScore checkpoint folder")
    try:
        d = dict(single["config"]) if single else json.loads(cfg_path.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{cfg_path}: unreadable ({e}); re-create the checkpoint") from None
    d.pop("meta", None)
    cfg = CrossScoreConfig.from_dict(d, str(cfg_path))
    if not cfg.backbone_config:
        raise InputError(f"{cfg_path}: no backbone_config; not written by crossscore.py train")
    state = single["model"] if single else load_tensors(weights)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise InputError(f"{weights}: not a state_dict; not a CrossScore checkpoint")
    net = CrossScoreNet(cfg)
    _fill(net, live_names(state, set(net.state_dict())), weights)
    sha = sha256_file(weights)
    if single and p.resolve() == CROSSSCORE_DEMO_MODEL.resolve() and sha != CROSSSCORE_DEMO_SHA256:
        log.warning("%s: sha256 %s is not the committed demo model's (%s): the file was changed; `git checkout` "
                    "it for the documented numbers", p, sha[:12], CROSSSCORE_DEMO_SHA256[:12])
    return net.eval(), {"checkpoint": str(p if single else folder), "checkpoint_sha256": sha,
                        "format": "single-file" if single else "folder"}


def _single_file(p: Path) -> dict[str, Any] | None:
    """A one-file model (``{"config": ..., "model": state_dict}``, as the committed demo model), else None."""
    if not (p.is_file() and p.suffix == ".pth"):
        return None
    obj = load_tensors(p)
    if isinstance(obj, dict) and isinstance(obj.get("config"), dict) and isinstance(obj.get("model"), dict):
        return obj
    return None


def pack(folder: str | Path, out: str | Path) -> str:
    """Our model folder -> one ``.pth`` file (config with its meta + state_dict, loadable with
    ``weights_only=True``); returns its sha256. Made the committed demo model (see docs/crossscore.md)."""
    import io

    folder = Path(folder)
    config = json.loads((folder / CKPT_CONFIG).read_text())
    config.get("meta", {}).pop("run", None)  # the local run folder: not part of the model (same bytes from any run)
    obj = {"config": config, "model": load_tensors(folder / CKPT_WEIGHTS)}
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(Path(out), buf.getvalue())
    return sha256_file(Path(out))


def short_side_for(requested: int, checkpoint: str | Path) -> int:
    """The short side images are resized to: -1 = the size ``checkpoint`` was trained at (its crop), else
    upstream's 518; >= 0: as requested (0 keeps the size)."""
    if requested >= 0:
        return requested
    return int(checkpoint_meta(checkpoint).get("predict_short_side", CROSSSCORE_PREDICT_SHORT_SIDE))


def checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """What ``crossscore.py train`` recorded beside the weights (n_ref, sizes, mean target); {} for upstream."""
    p = Path(path)
    single = _single_file(p)
    if single:
        return dict(single["config"].get("meta", {}))
    cfg = (p if p.is_dir() else p.parent) / CKPT_CONFIG
    try:
        return dict(json.loads(cfg.read_text()).get("meta", {})) if cfg.is_file() else {}
    except (OSError, ValueError):
        return {}


def _bb_keys() -> set[str]:
    from consts import CROSSSCORE_DINOV2_SMALL

    return set(CROSSSCORE_DINOV2_SMALL)
