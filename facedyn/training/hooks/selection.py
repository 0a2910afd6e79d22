"""Which epoch a stage hands on: its best validation epoch by `select_metric` (select: best), or its last.

The best epoch's weights and predictions are kept in memory and, in loader-fed stages, in last.pt, so a
resumed run hands on the same weights an uninterrupted one would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch
from omegaconf import DictConfig

from facedyn.config import Select, lower_is_better


@dataclass
class BestEpoch:
    metric: str
    lower_better: bool
    keep_weights: bool  # select: best (with select: last only the metric is followed, for patience)
    epoch: Optional[int] = None
    value: Optional[float] = None
    model: dict[str, torch.Tensor] = field(default_factory=dict)  # weights after that epoch (CPU copies)
    pred: Optional[np.ndarray] = None  # its validation predictions and their rows
    rows: Optional[np.ndarray] = None

    @classmethod
    def for_stage(cls, spec: DictConfig) -> "BestEpoch":
        metric = str(spec.get("select_metric", "val_loss"))
        return cls(metric, lower_is_better(metric), str(spec.get("select", Select.best)) == Select.best)

    def better(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.value is None:
            return True
        return value < self.value if self.lower_better else value > self.value

    def offer(self, epoch: int, metrics: dict, model: torch.nn.Module, pred: np.ndarray, rows: np.ndarray) -> bool:
        """Keep this epoch if its metric is the best so far (the first of equals wins); whether it was kept."""
        value = float(metrics.get(self.metric, float("nan")))
        if not self.better(value):
            return False
        self.epoch, self.value = epoch, value
        if self.keep_weights:
            self.model = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            self.pred, self.rows = np.array(pred), np.array(rows)
        return True

    def epochs_without_improvement(self, epoch: int) -> int:
        return epoch - self.epoch if self.epoch is not None else epoch

    def state(self) -> dict[str, Any]:
        """For last.pt (weights_only loading: tensors and plain values)."""
        return {"metric": self.metric, "lower_better": self.lower_better, "keep_weights": self.keep_weights, "epoch": self.epoch, "value": self.value,
                "model": self.model,
                "pred": torch.from_numpy(self.pred) if self.pred is not None else None,
                "rows": torch.from_numpy(self.rows) if self.rows is not None else None}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "BestEpoch":
        return cls(state["metric"], state["lower_better"], state["keep_weights"], state["epoch"], state["value"],
                   state["model"],
                   state["pred"].numpy() if state["pred"] is not None else None,
                   state["rows"].numpy() if state["rows"] is not None else None)
