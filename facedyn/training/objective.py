"""What a stage optimises and how it is judged: one Objective (loss + metrics) for both runners, the
per-epoch validation, the training-mean baseline and the final metrics.

The loss is the MSE of each score scaled to [0, 1] by its range, masked where a label is ignored, weighted
per score by the stage's `loss_weights`.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from omegaconf import DictConfig

from facedyn.data.errors import DataError
from facedyn.data.loading import TrainingData
from facedyn.data.samples import Samples
from facedyn.metrics import SCALE, SCORES, evaluate
from facedyn.runtime import Batch


def scaled_targets(target: torch.Tensor) -> torch.Tensor:
    return target / torch.as_tensor(SCALE, dtype=target.dtype, device=target.device)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """pred: (N, 2) normalised predictions; target: (N, 2) grades; valid: (N, 2) 1/0; weights: (2,)."""
    squared = (pred.float() - scaled_targets(target)) ** 2 * valid
    per_score = squared.sum(dim=0) / valid.sum(dim=0).clamp(min=1)
    return (per_score * weights).sum() / weights.sum()


class Objective:
    """A stage's loss on a batch (training) and its loss and clinical metrics on a split (validation)."""

    def __init__(self, spec: DictConfig) -> None:
        self.weights = torch.tensor([spec.loss_weights.dynamics, spec.loss_weights.synkinesis], dtype=torch.float32)

    def loss(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return masked_mse(pred, target, valid, self.weights.to(pred.device))

    def batch_loss(self, pred: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.loss(pred, batch["target"], batch["target_valid"])

    def metrics(self, pred_norm: np.ndarray, rows: np.ndarray, samples: Samples) -> dict:
        """The loss and the clinical metrics (facedyn.metrics.evaluate) of normalised predictions of `rows`."""
        true, valid = samples.targets(rows)
        loss = self.loss(torch.from_numpy(np.asarray(pred_norm)), torch.from_numpy(true).float(),
                         torch.from_numpy(valid).float())
        metrics = evaluate(pred_norm, true, valid, samples.video[rows], samples.expression[rows])
        return {"val_loss": float(loss), **{f"val_{k}": v for k, v in metrics.items()}}


def training_mean_prediction(samples: Samples, train_rows: np.ndarray, count: int) -> np.ndarray:
    """The training split's mean grade of each score (where labelled), normalised, repeated `count` times."""
    true, valid = samples.targets(train_rows)
    means = np.array([true[valid[:, c], c].mean() if valid[:, c].any() else 0.0 for c in range(true.shape[1])])
    return np.tile(means / SCALE, (count, 1))


def baseline_metrics(samples: Samples, train_rows: np.ndarray, val_rows: np.ndarray, spec: DictConfig) -> dict:
    """The metrics of predicting the training mean for every validation frame."""
    return Objective(spec).metrics(training_mean_prediction(samples, train_rows, len(val_rows)), val_rows, samples)


def check_labels(data: TrainingData, log: logging.Logger) -> None:
    """Refuse a dataset with nothing to learn; warn about a score with no label to learn from and a
    validation split too small to say anything."""
    labels = data.cfg.labels
    ignored = f"data.labels.dynamics_ignore={list(labels.dynamics_ignore)}, synkinesis_ignore={list(labels.synkinesis_ignore)}"
    _, train_valid = data.samples.targets(np.asarray(data.train_indices))
    if not train_valid.any():
        raise DataError(f"nothing to learn: every training label of both scores is an ignored value ({ignored})")
    for column, score in enumerate(SCORES):
        if not train_valid[:, column].any():
            log.warning("data: every training label of %s is an ignored value (%s); only %s is learnt",
                        score, ignored, SCORES[1 - column])
    _, val_valid = data.samples.targets(np.asarray(data.val_indices))
    if not val_valid.any():
        log.warning("data: no validation label counts (%s): validation loss and metrics mean nothing", ignored)
    val_videos = np.unique(data.samples.video[np.asarray(data.val_indices)])
    if len(val_videos) == 1:
        log.warning("data: the validation split holds a single video (%s); its metrics say little about other "
                    "patients (more videos, or a larger data.val_fraction)", val_videos[0])
