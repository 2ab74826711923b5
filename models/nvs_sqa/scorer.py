"""The NVS-SQA scorer: a loaded model + regressor; features and JOD scores of any sequence."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.errors import InputError
from models.frames import FrameSequence, SortOrder, open_sequence, prefetch
from models.nvs_sqa.network import MIN_FRAME_SIZE, Regressor, SequenceModel, optimize_for_inference
from models.runtime import resolve_device


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
        # Fast path for inference (measured by bench.py, see docs/performance.md); fast=False runs the plain modules.
        enc = self.model.view_encoder
        self._encoder = optimize_for_inference(enc, self.device) if fast else enc

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, device: str | torch.device = "auto",
                        fast: bool = True) -> NVSSQA:
        """Load a checkpoint folder (default: the released v0.0.1 in ``checkpoints/``)."""
        from models.nvs_sqa.checkpoint import load_checkpoint  # here: `python -m models.nvs_sqa.checkpoint` runs clean

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
        progress: bool = False, sort: SortOrder = "natural", dim_order: str = "THWC",
    ) -> np.ndarray:  # fmt: skip
        """The 384-d quality representation of one sequence (folder, video, path list, array or tensor).

        Arrays/tensors: uint8 0–255 or float 0–1, ``dim_order`` "THWC" (default) or "TCHW".
        """
        if isinstance(source, FrameSequence):
            seq = source
        else:
            seq = open_sequence(source, MIN_FRAME_SIZE, sort, dim_order)
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
