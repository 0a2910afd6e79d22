"""`trainer.ema`: an exponential moving average of the weights, evaluated, selected and handed on as the model.

Small-data fine-tuning is noisy from step to step; the average of the last few hundred steps often
generalises better than the last step. The average covers the floating-point state of the groups the stage
trains (parameters and BatchNorm statistics) and starts from the stage's starting weights; its decay warms up
with the step count, min(ema, (1 + steps) / (10 + steps)), so short stages are not dominated by their start.
Training itself goes on from the raw weights: validation swaps the average in and back out. Its state (the
average and the step count) is in last.pt, so a resumed run averages exactly as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import torch
from torch import nn

from facedyn.training.hooks.base import Hook

if TYPE_CHECKING:
    from facedyn.training.loop import StageLoop


class WeightAverage(Hook):
    name = "ema"

    def __init__(self, decay: float) -> None:
        self.decay = float(decay)
        self.average: dict[str, torch.Tensor] = {}
        self.steps = 0
        self._live: dict[str, torch.Tensor] = {}

    def track(self, model: nn.Module, groups: Sequence[str]) -> None:
        """Average the floating-point state of `model`'s `groups` (its top-level modules of those names), from
        their current values unless an average was loaded (a resumed stage)."""
        # state_dict() tensors share storage with the model's: copying into them sets the model's weights.
        self._live = {k: v for k, v in model.state_dict().items() if k.split(".", 1)[0] in groups and v.is_floating_point()}
        if self.average:
            self.average = {k: v.to(self._live[k].device) for k, v in self.average.items()}
        else:
            self.average = {k: v.detach().clone() for k, v in self._live.items()}

    def update(self) -> None:
        """Fold the current weights into the average (after an optimizer step)."""
        self.steps += 1
        weight = 1.0 - min(self.decay, (1 + self.steps) / (10 + self.steps))
        with torch.no_grad():
            for key, live in self._live.items():
                self.average[key].lerp_(live, weight)

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """The model holds the average inside the block and its own weights again after it."""
        trained = {k: v.detach().clone() for k, v in self._live.items()}
        self._load(self.average)
        try:
            yield
        finally:
            self._load(trained)

    def _load(self, weights: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for key, live in self._live.items():
                live.copy_(weights[key])

    def stage_start(self, loop: StageLoop) -> None:
        self.track(loop.model, loop.trainable)

    def after_step(self, loop: StageLoop) -> None:
        self.update()

    def evaluating(self, loop: StageLoop) -> contextlib.AbstractContextManager:
        return self.swapped_in()

    def hand_on(self, loop: StageLoop) -> None:
        self._load(self.average)

    def state_dict(self) -> dict[str, Any]:
        return {"average": {k: v.detach().cpu() for k, v in self.average.items()}, "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.average, self.steps = dict(state["average"]), int(state["steps"])
