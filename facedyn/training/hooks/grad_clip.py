"""`trainer.grad_clip`: clip the global L2 norm of the trainable gradients before each optimizer step.

A guard against the occasional batch whose gradient is far larger than the rest (a badly scaled first step
of Adam on pretrained weights, an outlier sample). How often it acted is counted per stage, logged at the
stage's end and kept in last.pt with the rest of the stage's state.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch

from facedyn.training.hooks.base import Hook, StageResult

if TYPE_CHECKING:
    from facedyn.training.loop import StageLoop

log = logging.getLogger(__name__)


class GradientClipping(Hook):
    name = "grad_clip"

    def __init__(self, max_norm: float) -> None:
        self.max_norm = float(max_norm)
        self.steps = self.clipped = 0

    def before_step(self, loop: StageLoop) -> None:
        norm = torch.nn.utils.clip_grad_norm_(loop.parameters, self.max_norm)
        self.steps += 1
        self.clipped += int(norm > self.max_norm)

    def stage_end(self, loop: StageLoop, result: StageResult) -> None:
        log.info("stage %s: gradient norm clipped to %g in %d of %d steps", loop.stage, self.max_norm, self.clipped,
                 self.steps)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "clipped": self.clipped}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps, self.clipped = int(state["steps"]), int(state["clipped"])
