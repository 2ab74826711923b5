"""The model trained by train.py: the NVS-SQA encoder plus five projector heads, its loss, and its validation.

Both sequences of a pair go through the encoder (models.nvs_sqa.SequenceModel) -> 384-d each -> five projector
heads (Linear 384→384, BatchNorm1d, ReLU, Linear 384→384). Head k: loss_k = L1(cos(z1_k, z2_k), target_k).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.nvs_sqa import ModelConfig, SequenceModel
from models.training.targets import TARGETS


# --------------------------------------------------------------------------------------------- model
class ProjectorHeads(nn.Module):
    """Five heads (one per target): Linear → BatchNorm1d → ReLU → Linear, 384 → 384."""

    def __init__(self, dim: int = 384, n: int = len(TARGETS)) -> None:
        super().__init__()
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, dim), nn.BatchNorm1d(dim), nn.ReLU(), nn.Linear(dim, dim)) for _ in range(n)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, dim) -> (n_heads, B, dim)."""
        return torch.stack([h(z) for h in self.heads])


class ContrastiveModel(nn.Module):
    """Encoder + projector heads. ``forward(pairs)`` -> projections of both sequences, (K, B, D) each."""

    def __init__(self, model_config: ModelConfig, grad_checkpoint: bool = False, batching: str = "pair") -> None:
        super().__init__()
        self.encoder = SequenceModel(model_config)
        self.projector = ProjectorHeads(model_config.angular_feat_size)
        self.grad_checkpoint = grad_checkpoint
        self.batching = batching  # Recipe.encoder_batching: "pair" or "frame_index"

    def encode_by_frame_index(self, clips: torch.Tensor) -> torch.Tensor:
        """Upstream's batching (sequence_models.py forward): (B, T, 3, h, w) in [0, 1] -> (B, 384), the view
        encoder run once per frame index t over the B clips (BatchNorm statistics over those B frames)."""
        feats = torch.stack([self.encoder.encode_frames(clips[:, t]) for t in range(clips.shape[1])])  # (T, B, F)
        return self.encoder.aggregate(feats)

    def encode_batch(self, seqs: list[torch.Tensor]) -> torch.Tensor:
        """One side of a batch (B (T, 3, h, w) uint8 sequences of one size) -> (B, 384), per frame index."""
        clips = torch.stack(seqs).float().div_(255.0)
        if self.grad_checkpoint and self.training:
            return torch.utils.checkpoint.checkpoint(self.encode_by_frame_index, clips, use_reentrant=False)
        return self.encode_by_frame_index(clips)

    def encode_pair(self, seq1: torch.Tensor, seq2: torch.Tensor) -> torch.Tensor:
        """Two (T, 3, H, W) uint8 sequences of one size -> (2, 384); frames as uint8/255, as at inference."""
        clips = torch.stack([seq1, seq2]).float().div_(255.0)
        if self.grad_checkpoint and self.training:
            # Note: BatchNorm running statistics are updated again during the recomputation.
            return torch.utils.checkpoint.checkpoint(self.encoder, clips, use_reentrant=False)
        return self.encoder(clips)

    def forward(self, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.batching == "frame_index":  # all sequences 1, then all sequences 2 (contrast_learning.py)
            z1, z2 = self.encode_batch([a for a, _ in pairs]), self.encode_batch([b for _, b in pairs])
            return self.projector(z1), self.projector(z2)
        z = torch.stack([self.encode_pair(a, b) for a, b in pairs], 1)  # (2, B, 384)
        return self.projector(z[0]), self.projector(z[1])


def head_losses(p1: torch.Tensor, p2: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """L1 between cosine similarity and target per head: (K, B, D) ×2, (K, B) -> (K,); NaN targets count as 0."""
    cos = F.cosine_similarity(p1.float(), p2.float(), dim=-1)
    return (cos - targets.nan_to_num(0.0)).abs().mean(1)


@torch.no_grad()
def validate(model: ContrastiveModel, val: list[dict], device: torch.device) -> np.ndarray:
    """Cosine similarity per head (N, K) of the validation pairs (``seq1``, ``seq2``), in eval mode."""
    model.eval()
    z = torch.cat([model.encode_pair(v["seq1"].to(device), v["seq2"].to(device)) for v in val])  # (2N, 384)
    p = model.projector(z.float())  # (K, 2N, D)
    cos = F.cosine_similarity(p[:, 0::2], p[:, 1::2], dim=-1).T.cpu().numpy()
    model.train()
    return cos
