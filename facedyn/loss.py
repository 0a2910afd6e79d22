"""MSE on each score scaled to [0, 1] by its range, masked where a label is ignored, weighted per score."""

from __future__ import annotations

import torch

from facedyn.metrics import SCALE


def scaled_targets(target: torch.Tensor) -> torch.Tensor:
    return target / torch.as_tensor(SCALE, dtype=target.dtype, device=target.device)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """pred: (N, 2) normalised predictions; target: (N, 2) grades; valid: (N, 2) 1/0; weights: (2,)."""
    squared = (pred.float() - scaled_targets(target)) ** 2 * valid
    per_score = squared.sum(dim=0) / valid.sum(dim=0).clamp(min=1)
    return (per_score * weights).sum() / weights.sum()
