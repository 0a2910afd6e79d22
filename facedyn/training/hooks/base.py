"""The seam for a stage's per-epoch and per-step behaviour: hooks that the stage loop calls at fixed points.

A hook implements the events it needs (every one is optional) and, when it keeps state that a resumed run
needs, `state_dict`/`load_state_dict` under its `name`: last.pt stores every hook's state, and a resumed
stage gives it back before its first epoch, so nothing is threaded through the trainer by hand. The events,
in the order a stage meets them (facedyn.training.loop.StageLoop.run):

  stage_start   before the first epoch (of a resumed stage too, after load_state_dict)
  stop_reason   before each epoch: a reason to end the stage now (patience), or None
  before_step   after each backward pass, before the optimizer steps: the gradients are there
  after_step    after the optimizer and the lr schedule stepped
  evaluating    a context around validation: the weights that are evaluated and selected (EMA swaps them in)
  validated     after each validation, in those weights; epoch 0 is the weights the stage started from
  epoch_end     after each epoch, the training weights back; raising here stops the run (the sweep prunes)
  hand_on       after the last epoch: leave the model at the weights the stage hands on
  stage_end     after the stage's result is recorded in the run's progress (stage checkpoint)

Hooks run in the order the trainer lists them (facedyn.training.pipeline.stage_hooks): where two act on
the same thing, the later one has the last word (selection's kept weights over EMA's at hand_on).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence

import numpy as np

if TYPE_CHECKING:
    from facedyn.training.loop import StageLoop


@dataclass
class Evaluation:
    """One validation of the stage's model: normalised predictions, their sample rows, the metrics."""

    epoch: int  # 0: the weights the stage started from
    pred: np.ndarray
    rows: np.ndarray
    metrics: dict[str, float]
    notes: list[str] = field(default_factory=list)  # marks for the epoch's log line (the new best: "*")


@dataclass
class EpochEnd:
    """A finished epoch: its history row (training loss, validation metrics, lr, timings) and its validation."""

    row: dict[str, Any]
    evaluation: Evaluation

    @property
    def epoch(self) -> int:
        return self.evaluation.epoch


@dataclass
class StageResult:
    """What a stage hands on: the kept epoch (0: its starting weights) and that epoch's validation."""

    stage: str
    kept_epoch: int
    evaluation: Evaluation
    epochs_run: int
    stop_reason: Optional[str]


class Hook:
    """One piece of a stage's behaviour; see the module docstring for when each event runs."""

    name: str = ""  # the key of its state in last.pt; "" for a hook that keeps none

    def stage_start(self, loop: StageLoop) -> None:
        pass

    def stop_reason(self, loop: StageLoop) -> Optional[str]:
        return None

    def before_step(self, loop: StageLoop) -> None:
        pass

    def after_step(self, loop: StageLoop) -> None:
        pass

    def evaluating(self, loop: StageLoop) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def validated(self, loop: StageLoop, evaluation: Evaluation) -> None:
        pass

    def epoch_end(self, loop: StageLoop, epoch: EpochEnd) -> None:
        pass

    def hand_on(self, loop: StageLoop) -> Optional[Evaluation]:
        """The kept epoch's evaluation when this hook chose the weights; None leaves the choice to others."""
        return None

    def stage_end(self, loop: StageLoop, result: StageResult) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class Hooks:
    """A stage's hooks, called in order."""

    def __init__(self, hooks: Sequence[Hook]) -> None:
        self.hooks = list(hooks)
        names = [hook.name for hook in self.hooks if hook.name]
        if len(names) != len(set(names)):
            raise ValueError(f"two hooks keep their state under the same name: {names}")

    def call(self, event: str, *args: Any) -> None:
        for hook in self.hooks:
            getattr(hook, event)(*args)

    def stop_reason(self, loop: StageLoop) -> Optional[str]:
        return next((reason for hook in self.hooks if (reason := hook.stop_reason(loop))), None)

    @contextlib.contextmanager
    def evaluating(self, loop: StageLoop) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for hook in self.hooks:
                stack.enter_context(hook.evaluating(loop))
            yield

    def hand_on(self, loop: StageLoop) -> Optional[Evaluation]:
        """Each hook in turn sets the weights it hands on; the last one that chose an epoch says which."""
        kept = None
        for hook in self.hooks:
            kept = hook.hand_on(loop) or kept
        return kept

    def state_dict(self) -> dict[str, dict]:
        return {hook.name: hook.state_dict() for hook in self.hooks if hook.name}

    def load_state_dict(self, states: dict[str, dict]) -> None:
        for hook in self.hooks:
            if hook.name and hook.name in states:
                hook.load_state_dict(states[hook.name])
