"""Checkpoints: fetch and verify the released weights, convert the regressor, write and load checkpoint folders.

A checkpoint folder holds ``config.json`` (model hyper-parameters), ``model.pth`` (a plain state_dict, loaded
with ``torch.load(weights_only=True)``) and, optionally, ``regressor.json`` (ridge coef/intercept).
:func:`save_checkpoint` is the one writer of that format (the released folder, train.py's encoders,
evaluate.py --save-regressor, the untrained baseline). The released v0.0.1 folder is made by
``python -m models.nvs_sqa.checkpoint`` (``make setup``) from the CC0 wheel ``nvs-sqa==0.1.1``. Nothing is
unpickled at run time: the released scikit-learn pickle is read once, at setup, by the allow-list unpickler
(:mod:`models.unpickle`: numpy arrays rebuilt, the Ridge an inert stand-in for its attributes), and written out as
JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import subprocess
import sys
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from consts import CACHE_DIR, CKPT_CONFIG, CKPT_REGRESSOR, CKPT_WEIGHTS, RELEASED, ReleasedFile
from models import cli, unpickle
from models.cli import opt
from models.errors import InputError
from models.nvs_sqa.network import ModelConfig, Regressor, SequenceModel
from models.results import json_bytes, sha256_file

log = logging.getLogger(__name__)
FIX_HINT = "run `make setup` (or `python -m models.nvs_sqa.checkpoint --force`) to fetch the released weights again"


# --------------------------------------------------------------------------------------------- safe unpickling
RIDGE = "sklearn.linear_model._ridge.Ridge"  # the one class of the regressor pickle: read as an inert stand-in


def ridge_pickle_to_json(data: bytes, source_sha256: str) -> dict[str, Any]:
    """Convert the released ``linear_regr.pkl`` (scikit-learn Ridge) to the plain regressor dict."""
    obj = unpickle.loads(data, stand_ins={RIDGE}, source=RELEASED.regressor_pickle.member)
    st = getattr(obj, "state", None)
    if not (isinstance(obj, unpickle.StandIn) and obj.global_name == RIDGE and isinstance(st, dict)):
        raise InputError("linear_regr.pkl: not a Ridge regressor")
    coef = np.asarray(st["coef_"])
    if coef.ndim != 1:
        raise InputError(f"linear_regr.pkl: expected a 1-d coef_, got shape {coef.shape}")
    return {
        "coef": [float(c) for c in coef],  # float32 values, exact in JSON's float64
        "intercept": float(st["intercept_"]),
        "alpha": float(st["alpha"]),
        "dtype": str(coef.dtype),
        "source": RELEASED.regressor_pickle.member,
        "source_sha256": source_sha256,
        "sklearn_version": st.get("_sklearn_version", ""),
    }


# --------------------------------------------------------------------------------------------- fetching
def _download_wheel(cache: Path) -> Path:
    wheel = cache / RELEASED.wheel_file
    if wheel.is_file() and sha256_file(wheel) == RELEASED.wheel_sha256:
        return wheel
    cache.mkdir(parents=True, exist_ok=True)
    spec = f"{RELEASED.wheel_name}=={RELEASED.wheel_version}"
    log.info("downloading %s (CC0 weights of NVS-SQA, ~17 MB) with pip", spec)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(cache), spec]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not wheel.is_file():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise InputError(f"{wheel}: `pip download {spec}` failed ({last}); check network access to PyPI")
    got = sha256_file(wheel)
    if got != RELEASED.wheel_sha256:
        wheel.unlink()
        raise InputError(f"{wheel}: sha256 {got[:12]}… does not match the release {RELEASED.wheel_sha256[:12]}…")
    return wheel


def _member(zf: zipfile.ZipFile, f: ReleasedFile) -> bytes:
    data = zf.read(f.member)
    got = hashlib.sha256(data).hexdigest()
    if got != f.sha256:
        raise InputError(f"{f.member}: sha256 {got[:12]}… does not match the release {f.sha256[:12]}…")
    return data


def released_is_installed() -> bool:
    d = RELEASED.dir
    return (
        (d / CKPT_CONFIG).is_file() and (d / CKPT_REGRESSOR).is_file()
        and (d / CKPT_WEIGHTS).is_file() and sha256_file(d / CKPT_WEIGHTS) == RELEASED.state_dict.sha256
        and sha256_file(d / CKPT_CONFIG) == RELEASED.config.sha256
    )  # fmt: skip


def fetch_released(force: bool = False, cache: Path = CACHE_DIR / "wheels") -> Path:
    """Download, verify and unpack the released checkpoint into ``checkpoints/v0.0.1/``. Idempotent."""
    d = RELEASED.dir
    if not force and released_is_installed():
        log.info("released checkpoint already in %s (verified)", d)
        return d
    wheel = _download_wheel(cache)
    with zipfile.ZipFile(wheel) as zf:  # only the three data files; the wheel's code is never imported
        weights = _member(zf, RELEASED.state_dict)
        config = _member(zf, RELEASED.config)
        pkl = _member(zf, RELEASED.regressor_pickle)
    source = {
        "wheel": RELEASED.wheel_file, "wheel_sha256": RELEASED.wheel_sha256, "license": "CC0-1.0",
        "files": {f.target: {"member": f.member, "sha256": f.sha256}
                  for f in (RELEASED.state_dict, RELEASED.config, RELEASED.regressor_pickle)},
    }  # fmt: skip
    # weights and config verbatim: their sha256 are the published ones that released_is_installed() checks
    save_checkpoint(d, config, weights, ridge_pickle_to_json(pkl, RELEASED.regressor_pickle.sha256),
                    {"SOURCE.json": json_bytes(source)})
    log.info("released checkpoint %s written to %s", RELEASED.version, d)
    return d


# --------------------------------------------------------------------------------------------- writing
def _cpu_state(state_dict: Mapping[str, Any]) -> OrderedDict:
    """Detached CPU tensors with torch's per-module ``_metadata`` kept, so that a CPU model's ``state_dict()``
    is saved byte for byte as ``torch.save(model.state_dict(), path)`` saves it."""
    out = OrderedDict((k, v.detach().cpu()) for k, v in state_dict.items())
    meta = getattr(state_dict, "_metadata", None)
    if meta is not None:
        out._metadata = meta  # type: ignore[attr-defined]
    return out


def regressor_dict(reg: Regressor, **extra: Any) -> dict[str, Any]:
    """The ``regressor.json`` content of a fitted :class:`Regressor` (what :func:`load_regressor` reads)."""
    return {"coef": [float(c) for c in reg.coef], "intercept": reg.intercept, "alpha": reg.alpha, "dtype": "float32",
            "source_sha256": reg.source_sha256, **extra}


def save_checkpoint(folder: str | Path, model_config: Mapping[str, Any] | bytes, state_dict: Mapping[str, Any] | bytes,
                    regressor: Mapping[str, Any] | Regressor | None = None,
                    extra: Mapping[str, bytes] | None = None) -> Path:
    """Write a checkpoint folder: config.json + model.pth (+ regressor.json, + ``extra`` files); the one writer.

    ``model_config``/``regressor``: dicts written as JSON (or bytes written verbatim); ``state_dict``: tensors,
    saved on the CPU (or the bytes of a saved one). Atomic: the folder is written next to its final place and
    swapped in by renames, replacing an old one; a kill at any moment leaves the old or the new folder, never a
    mix (between the two renames the old one is ``.<name>.old``). Returns ``folder``.
    """
    import torch

    folder = Path(folder)
    if isinstance(regressor, Regressor):
        regressor = regressor_dict(regressor)
    files = {CKPT_CONFIG: model_config if isinstance(model_config, bytes) else json_bytes(dict(model_config))}
    if regressor is not None:
        files[CKPT_REGRESSOR] = json_bytes(dict(regressor))
    for name, data in (extra or {}).items():
        if name in (CKPT_CONFIG, CKPT_WEIGHTS, CKPT_REGRESSOR) or Path(name).name != name:
            raise ValueError(f"save_checkpoint: extra file name {name!r} is reserved or not a plain file name")
        files[name] = data
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: exists and is not a folder; choose another checkpoint folder")
    tmp, old = folder.with_name(f".{folder.name}.tmp"), folder.with_name(f".{folder.name}.old")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        if isinstance(state_dict, bytes):
            (tmp / CKPT_WEIGHTS).write_bytes(state_dict)
        else:  # saved under its final name: torch names the archive inside the file after it
            torch.save(_cpu_state(state_dict), tmp / CKPT_WEIGHTS)
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise InputError(f"{folder}: cannot write the checkpoint ({e.strerror or e}); choose a writable folder") \
            from None
    shutil.rmtree(old, ignore_errors=True)
    return folder


def random_init(folder: str | Path, seed: int = 0) -> Path:
    """A seeded, untrained :class:`SequenceModel` (default :class:`ModelConfig`) as a checkpoint folder: the
    baseline that a trained encoder has to beat (``make degrade-control``)."""
    import torch

    torch.manual_seed(seed)
    return save_checkpoint(folder, ModelConfig().to_dict(), SequenceModel().state_dict())


# --------------------------------------------------------------------------------------------- loading
@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (eval mode), its regressor if any, and provenance for results files."""

    model: Any  # SequenceModel
    regressor: Any  # Regressor | None
    info: dict[str, Any] = field(default_factory=dict)


def _find(folder: Path, preferred: str, pattern: str) -> Path | None:
    """``preferred`` if present, else the single file matching ``pattern`` (upstream's long file names)."""
    if (folder / preferred).is_file():
        return folder / preferred
    hits = sorted(folder.glob(pattern))
    return hits[0] if len(hits) == 1 else None


def load_regressor(path: Path) -> Regressor:
    """A regressor.json (coef, intercept, alpha, source_sha256); one-line error for an unusable file."""
    fix = FIX_HINT if path.resolve().parent == RELEASED.dir.resolve() else (
        "pass a regressor.json written by evaluate.py --save-regressor")
    try:
        d = json.loads(path.read_text())
        coef = np.asarray(d["coef"], dtype=np.float32)
        return Regressor(coef, float(d["intercept"]), float(d.get("alpha", 1.0)), d.get("source_sha256", ""))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"{path}: not a valid regressor JSON ({type(e).__name__}: {e}); {fix}") from None


def load_checkpoint(path: str | Path | None = None) -> Checkpoint:
    """Load a checkpoint folder (or a ``.pth`` inside one). Default: the released v0.0.1 checkpoint.

    Errors are one line naming the file and the fix: missing folder, missing/corrupt files, a state_dict
    that does not match its config.
    """
    import torch


    released = path is None
    folder = RELEASED.dir if released else Path(path)
    if folder.is_file() and folder.suffix in (".pth", ".pt"):
        weights_hint: Path | None = folder
        folder = folder.parent
    else:
        weights_hint = None
    if not folder.is_dir():
        hint = FIX_HINT if released else "pass a folder holding config.json and model.pth"
        raise InputError(f"{folder}: checkpoint folder not found; {hint}")
    fix = FIX_HINT if released else "re-create it (train.py writes config.json + model.pth)"
    cfg_path = _find(folder, CKPT_CONFIG, "*config.json")
    weights = weights_hint or _find(folder, CKPT_WEIGHTS, "*.pth")
    if cfg_path is None:
        raise InputError(f"{folder / CKPT_CONFIG}: missing; {fix}")
    if weights is None:
        raise InputError(f"{folder / CKPT_WEIGHTS}: missing; {fix}")
    try:
        config = ModelConfig.from_dict(json.loads(cfg_path.read_text()), str(cfg_path))
    except (OSError, ValueError, TypeError) as e:
        raise InputError(f"{cfg_path}: unreadable config ({e}); {fix}") from None
    sha = sha256_file(weights)
    if released and sha != RELEASED.state_dict.sha256:
        raise InputError(f"{weights}: sha256 does not match the released weights (corrupt?); {FIX_HINT}")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file
        raise InputError(f"{weights}: cannot read the state_dict ({type(e).__name__}); {fix}") from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # a training checkpoint: {"model": state_dict, "optimizer": ...}
    with torch.device("meta"):  # no random initialisation: every tensor comes from the file (assign=True)
        model = SequenceModel(config)
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except (RuntimeError, TypeError, AttributeError) as e:
        first = str(e).splitlines()[1 if "\n" in str(e) else 0].strip()[:160]
        raise InputError(f"{weights}: does not match {cfg_path.name} ({first}); wrong checkpoint for this config?") \
            from None
    model.float()  # what copying into the float32 parameters did for a file holding float16/bfloat16 weights
    reg_path = folder / CKPT_REGRESSOR
    regressor = load_regressor(reg_path) if reg_path.is_file() else None
    if regressor is not None and regressor.coef.shape != (config.angular_feat_size,):
        raise InputError(f"{reg_path}: coef has {regressor.coef.shape[0]} values, the model outputs "
                         f"{config.angular_feat_size}; the regressor belongs to another model")
    info = {
        "path": str(folder), "model_version": config.version, "checkpoint_sha256": sha,
        "regressor_sha256": sha256_file(reg_path) if regressor is not None else None,
    }  # fmt: skip
    return Checkpoint(model.eval(), regressor, info)


@dataclass
class SetupConfig:
    """Options of ``python -m models.nvs_sqa.checkpoint``."""

    force: bool = opt(False, "download and unpack the released weights again even if present")
    random_init: str | None = opt(None, "instead of the release, write a seeded untrained SequenceModel (default "
                                  "ModelConfig) as the checkpoint folder DIR", metavar="DIR")
    seed: int = opt(0, "torch seed of --random-init", min=0)


EPILOG = """examples:
  python -m models.nvs_sqa.checkpoint                     # released v0.0.1 -> checkpoints/v0.0.1/ (make setup)
  python -m models.nvs_sqa.checkpoint --force             # fetch it again, even if present and verified
  python -m models.nvs_sqa.checkpoint --random-init runs/random-init --seed 0
                                                          # the untrained baseline of make degrade-control"""


def parse_args(argv: list[str] | None = None) -> SetupConfig:
    p = cli.ArgumentParser(prog="python -m models.nvs_sqa.checkpoint", epilog=EPILOG,
                                description="Fetch, verify and unpack the released NVS-SQA weights (CC0),\n"
                                "or write a seeded untrained checkpoint folder.",
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # the epilog is laid out
    return cli.parse(SetupConfig, argv, parser=p).config


def run(cfg: SetupConfig) -> int:
    """Make the checkpoint folder that ``cfg`` asks for; returns the exit code."""
    if cfg.random_init:
        d = random_init(cfg.random_init, cfg.seed)
        print(f"untrained checkpoint (seed {cfg.seed}) ready: {d}")
        return 0
    d = fetch_released(force=cfg.force)
    print(f"checkpoint ready: {d}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return cli.main(parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
