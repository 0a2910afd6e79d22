"""Which weights a stage hands on (`select: best | last`, `select_metric`) and when it stops (`patience`).

With `select: best` the stage keeps the weights of its best validation epoch by `select_metric`; a stage
that starts from the previous stage's weights counts those as its epoch 0, so a stage that only made
things worse hands on what it was given (stated in the log and in metrics.json's per-stage `kept_epoch`: 0).
The kept weights and predictions live in memory and in last.pt, so a resumed run hands on the same weights
an uninterrupted one would.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

import torch
from omegaconf import DictConfig

from facedyn.training.config import Select, StageInit, lower_is_better
from facedyn.training.hooks.base import Evaluation, Hook, StageResult

if TYPE_CHECKING:
    from facedyn.training.loop import StageLoop

log = logging.getLogger(__name__)


@dataclass
class BestEpoch:
    """The best epoch offered so far by one metric; with keep_weights also its weights and validation."""

    metric: str
    lower_better: bool
    keep_weights: bool
    epoch: Optional[int] = None
    value: Optional[float] = None
    model: dict[str, torch.Tensor] = field(default_factory=dict)  # weights after that epoch (CPU copies)
    evaluation: Optional[Evaluation] = None

    def better(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.value is None:
            return True
        return value < self.value if self.lower_better else value > self.value

    def offer(self, evaluation: Evaluation, model: torch.nn.Module) -> bool:
        """Keep this epoch if its metric is the best so far (the first of equals wins); whether it was kept."""
        value = float(evaluation.metrics.get(self.metric, float("nan")))
        if not self.better(value):
            return False
        self.epoch, self.value = evaluation.epoch, value
        if self.keep_weights:
            self.model = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            self.evaluation = evaluation
        return True

    def epochs_without_improvement(self, epoch: int) -> int:
        return epoch - self.epoch if self.epoch is not None else epoch

    def state(self) -> dict[str, Any]:
        """For last.pt (weights_only loading: tensors and plain values)."""
        kept = self.evaluation
        return {"epoch": self.epoch, "value": self.value, "model": self.model,
                "pred": torch.from_numpy(kept.pred) if kept is not None else None,
                "rows": torch.from_numpy(kept.rows) if kept is not None else None,
                "metrics": dict(kept.metrics) if kept is not None else None}

    def load(self, state: dict[str, Any]) -> None:
        self.epoch, self.value, self.model = state["epoch"], state["value"], state["model"]
        if state.get("pred") is not None:
            self.evaluation = Evaluation(int(state["epoch"]), state["pred"].numpy(), state["rows"].numpy(),
                                         dict(state.get("metrics") or {}))


class Selection(Hook):
    name = "selection"

    def __init__(self, spec: DictConfig) -> None:
        metric = str(spec.get("select_metric", "val_loss"))
        keep = str(spec.get("select", Select.best)) == Select.best
        self.best = BestEpoch(metric, lower_is_better(metric), keep)
        self.patience: Optional[int] = spec.get("patience")
        # The starting weights compete when they are the previous stage's (not a fresh model).
        self.from_start = keep and str(spec.get("init", StageInit.previous)) == StageInit.previous
        self.start_value: Optional[float] = None  # the metric of the starting weights, when they compete

    def stage_start(self, loop: StageLoop) -> None:
        if self.from_start and not loop.resumed:
            start = loop.validate(0)
            self.start_value = float(start.metrics.get(self.best.metric, float("nan")))
            log.info("stage %s starts at %s %.4g (the weights it was given compete with its epochs)", loop.stage,
                     self.best.metric, self.start_value)

    def validated(self, loop: StageLoop, evaluation: Evaluation) -> None:
        if self.best.offer(evaluation, loop.model) and evaluation.epoch > 0:
            evaluation.notes.append("*")

    def stop_reason(self, loop: StageLoop) -> Optional[str]:
        if self.patience and self.best.epochs_without_improvement(loop.epoch) >= self.patience:
            return f"no better {self.best.metric} for {self.patience} epochs"
        return None

    def hand_on(self, loop: StageLoop) -> Optional[Evaluation]:
        if not self.best.keep_weights or self.best.evaluation is None:
            return None
        loop.model.load_state_dict(self.best.model)
        return self.best.evaluation

    def stage_end(self, loop: StageLoop, result: StageResult) -> None:
        if self.start_value is not None:
            loop.progress.per_stage[loop.stage][f"start_{self.best.metric}"] = self.start_value

    def state_dict(self) -> dict[str, Any]:
        return {**self.best.state(), "start_value": self.start_value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best.load(state)
        self.start_value = state.get("start_value")
