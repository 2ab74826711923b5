"""Run folders of train.py: checkpoints (atomic), resume state, metrics.jsonl, validation correlations, plots.

``runs/<name>/``::

    config.json          the full TrainConfig (+ provenance stamp)
    metrics.jsonl        one JSON line per step ("kind": "step") and per epoch ("kind": "val")
    latest/              config.json + model.pth (encoder) + train_state.pth (projectors, optimizer, RNG, epoch, step)
    epoch_0005/ ...      config.json + model.pth every ``save_every`` epochs
    val_correlation.png  validation correlation per target and training loss, per epoch

Every encoder folder is a checkpoint for ``app.py --checkpoint`` / ``evaluate.py --checkpoint``
(models.nvs_sqa.checkpoint.load_checkpoint). A folder is written next to its final place and swapped in by
renames, so a kill at any moment leaves either the old or the new ``latest``, never a mix.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from consts import CKPT_WEIGHTS
from models.errors import InputError
from models.nvs_sqa.checkpoint import save_checkpoint
from models.results import atomic_write_bytes, json_parse, json_text

log = logging.getLogger(__name__)
TRAIN_STATE = "train_state.pth"
LATEST = "latest"


def _torch_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def write_encoder(folder: Path, model_config: dict, state_dict: dict, extra: dict[str, bytes] | None = None) -> None:
    """Write an encoder checkpoint folder atomically (the old one is replaced), with the one checkpoint writer."""
    save_checkpoint(folder, model_config, state_dict, extra=extra)


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_latest(run_dir: Path, model_config: dict, encoder_state: dict, train_state: dict) -> None:
    write_encoder(run_dir / LATEST, model_config, encoder_state, {TRAIN_STATE: _torch_bytes(train_state)})


def find_latest(run_dir: Path) -> Path:
    """The newest complete ``latest`` folder (a kill during the swap leaves ``.latest.old``)."""
    for cand in (run_dir / LATEST, run_dir / f".{LATEST}.old"):
        if (cand / TRAIN_STATE).is_file() and (cand / CKPT_WEIGHTS).is_file():
            return cand
    raise InputError(f"{run_dir}: no {LATEST}/{TRAIN_STATE} to resume from; was this run started by train.py?")


def load_latest(run_dir: Path) -> tuple[dict, dict]:
    """(encoder state_dict, train state) of a run folder."""
    folder = find_latest(run_dir)
    try:
        enc = torch.load(folder / CKPT_WEIGHTS, map_location="cpu", weights_only=True)
        state = torch.load(folder / TRAIN_STATE, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file
        raise InputError(f"{folder}: cannot read the checkpoint ({type(e).__name__}); start a new run") from None
    return enc, state


# --------------------------------------------------------------------------------------------- metrics
class MetricsLog:
    """metrics.jsonl kept in memory and rewritten atomically; on resume, lines after the resumed step are cut."""

    def __init__(self, path: Path, resume_step: int | None = None) -> None:
        self.path = path
        self.rows: list[dict] = []
        if resume_step is not None and path.is_file():
            for line in path.read_text().splitlines():
                row = json_parse(line)
                if row["step"] <= resume_step:  # the saved state includes that step (and its epoch's validation)
                    self.rows.append(row)

    def add(self, row: dict, flush: bool = False) -> None:
        self.rows.append(row)
        if flush:
            self.flush()

    def flush(self) -> None:
        atomic_write_bytes(self.path, "".join(json_text(r, indent=None) + "\n" for r in self.rows).encode())


def validation_correlations(
    cos: np.ndarray, targets: np.ndarray, names: tuple[str, ...]
) -> dict[str, dict[str, float | None]]:
    """Pearson and Spearman correlation per head between cosine similarity (N, K) and targets (N, K)."""
    from scipy.stats import pearsonr, spearmanr

    out: dict[str, dict[str, float | None]] = {}
    for k, name in enumerate(names):
        c, t = cos[:, k], targets[:, k]
        ok = np.isfinite(t)
        if ok.sum() < 3 or np.std(t[ok]) == 0 or np.std(c[ok]) == 0:
            out[name] = {"pearson": None, "spearman": None}
            continue
        out[name] = {"pearson": float(pearsonr(c[ok], t[ok])[0]), "spearman": float(spearmanr(c[ok], t[ok])[0])}
    return out


def plot_validation(rows: list[dict], path: Path, names: tuple[str, ...]) -> None:
    """PNG: validation Pearson correlation per target, and mean training loss, against epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    val = [r for r in rows if r["kind"] == "val"]
    if not val:
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = [r["epoch"] for r in val]
    for name in names:
        ys = [r["corr"][name]["pearson"] for r in val]
        ys = [np.nan if y is None else y for y in ys]
        if not all(np.isnan(ys)):
            ax1.plot(epochs, ys, marker="o", label=name)
    ax1.set(xlabel="epoch", ylabel="Pearson r (cosine sim vs target)", title="validation", ylim=(-1, 1))
    ax1.axhline(0, color="grey", lw=0.5)
    ax1.legend()
    ax2.plot(epochs, [r["train_loss"] for r in val], marker="o")
    ax2.set(xlabel="epoch", ylabel="mean training loss", title="training loss")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
