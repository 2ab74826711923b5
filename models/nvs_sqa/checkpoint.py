"""Checkpoints: fetch and verify the released weights, convert the regressor, load any checkpoint folder.

A checkpoint folder holds ``config.json`` (model hyper-parameters), ``model.pth`` (a plain state_dict, loaded
with ``torch.load(weights_only=True)``) and, optionally, ``regressor.json`` (ridge coef/intercept). The
released v0.0.1 folder is made by ``python -m models.nvs_sqa.checkpoint`` (``make setup``) from the CC0 wheel
``nvs-sqa==0.1.1``; train.py and evaluate.py write the same format. Nothing is unpickled at run time: the
released scikit-learn pickle is read once, at setup, by an allow-list unpickler that only rebuilds numpy
arrays, and written out as JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import pickle
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from consts import CACHE_DIR, CKPT_CONFIG, CKPT_REGRESSOR, CKPT_WEIGHTS, RELEASED, ReleasedFile
from models.errors import InputError
from models.nvs_sqa.network import ModelConfig, Regressor, SequenceModel
from models.results import atomic_write_bytes, atomic_write_json, sha256_file

log = logging.getLogger(__name__)
FIX_HINT = "run `make setup` (or `python -m models.nvs_sqa.checkpoint --force`) to fetch the released weights again"


# --------------------------------------------------------------------------------------------- safe unpickling
class _RidgeState:
    """Stand-in for ``sklearn.linear_model.Ridge``: keeps the pickled attribute dict, runs no sklearn code."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.state = state


class _AllowListUnpickler(pickle.Unpickler):
    """Unpickles a scikit-learn Ridge using only numpy array reconstruction; anything else is refused."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
    }  # fmt: skip

    def find_class(self, module: str, name: str) -> Any:
        if module == "sklearn.linear_model._ridge" and name == "Ridge":
            return _RidgeState
        if (module, name) in self._ALLOWED:
            return getattr(np, name) if module == "numpy" else getattr(np._core.multiarray, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a regressor pickle")


def ridge_pickle_to_json(data: bytes, source_sha256: str) -> dict[str, Any]:
    """Convert the released ``linear_regr.pkl`` (scikit-learn Ridge) to the plain regressor dict."""
    obj = _AllowListUnpickler(io.BytesIO(data)).load()
    if not isinstance(obj, _RidgeState):
        raise InputError("linear_regr.pkl: not a Ridge regressor")
    st = obj.state
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
    atomic_write_bytes(d / CKPT_WEIGHTS, weights)
    atomic_write_bytes(d / CKPT_CONFIG, config)
    atomic_write_json(d / CKPT_REGRESSOR, ridge_pickle_to_json(pkl, RELEASED.regressor_pickle.sha256))
    atomic_write_json(d / "SOURCE.json", {
        "wheel": RELEASED.wheel_file, "wheel_sha256": RELEASED.wheel_sha256, "license": "CC0-1.0",
        "files": {f.target: {"member": f.member, "sha256": f.sha256}
                  for f in (RELEASED.state_dict, RELEASED.config, RELEASED.regressor_pickle)},
    })  # fmt: skip
    log.info("released checkpoint %s written to %s", RELEASED.version, d)
    return d


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


def load_regressor(path: Path):  # -> Regressor

    try:
        d = json.loads(path.read_text())
        coef = np.asarray(d["coef"], dtype=np.float32)
        return Regressor(coef, float(d["intercept"]), float(d.get("alpha", 1.0)), d.get("source_sha256", ""))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"{path}: not a valid regressor JSON ({type(e).__name__}: {e}); {FIX_HINT}") from None


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
    model = SequenceModel(config)
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as e:
        first = str(e).splitlines()[1 if "\n" in str(e) else 0].strip()[:160]
        raise InputError(f"{weights}: does not match {cfg_path.name} ({first}); wrong checkpoint for this config?") \
            from None
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Fetch, verify and unpack the released NVS-SQA weights (CC0).")
    p.add_argument("--force", action="store_true", help="download and unpack again even if present")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        d = fetch_released(force=args.force)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"checkpoint ready: {d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
