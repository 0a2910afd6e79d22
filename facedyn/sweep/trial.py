"""One trial = one ordinary training run (compose() + facedyn.training.run) in its own run folder.

The trial reports the sweep's metric after every epoch, so the pruner can stop it; a pruned trial's run
folder says "pruned". A trial numbered past the budget (two processes asked at the same moment) runs
nothing and is failed as surplus.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import optuna
import torch
from omegaconf import DictConfig
from optuna.trial import TrialState

from facedyn.config import override_stage
from facedyn.training.stages import stage_key
from facedyn.runs import stage_checkpoint
from facedyn.sweep.search import SURPLUS_ATTR, as_overrides, suggest
from facedyn.sweep.storage import RUN_DIR_ATTR, this_process
from facedyn.training.hooks.base import EpochEnd, Hook

if TYPE_CHECKING:
    from facedyn.training.loop import StageLoop

CHECKPOINT_ATTR = "checkpoint"
METRICS_ATTR = "metrics"
INIT_FROM_ATTR = "init_from"
DIVERGED_ATTR = "diverged"
THREADS_ATTR = "torch_threads"
COUNTED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


class SurplusTrial(Exception):
    """The budget was taken by lower-numbered trials: this one runs nothing."""


class SweepInterrupted(SystemExit):
    """Ctrl-C during a trial. A SystemExit, which optuna does not catch: the trial stays RUNNING, and the
    next sweep process fails it and queues it again, as for a killed process."""


class SweepError(RuntimeError):
    """A sweep that cannot go on (no usable trial, a metric the trainer does not report, ...)."""


@dataclass(frozen=True)
class TrialPlan:
    """What every trial of one study runs."""

    sweep: DictConfig
    stage: str                      # the stage trained ("all" in joint mode)
    searched_stages: tuple[str, ...]  # whose lrs (and params) the trial sets
    last_stage: str                 # whose checkpoint the next stage starts from
    base_overrides: tuple[str, ...]  # the user's training overrides
    init_from: str | None           # starting weights of the stage
    trials_dir: Path
    budget: int

    def overrides(self, values: dict[str, Any]) -> list[str]:
        """The trial's compose() overrides: the user's (minus those of stages it does not compose), then
        the stage, the searched values and the starting weights."""
        composed = None if self.stage == "all" else stage_key(self.stage)
        base = [o for o in self.base_overrides if composed is None or override_stage(o) in (None, composed)]
        extra = [f"stage={self.stage}"] + as_overrides(values)
        if self.init_from:
            extra.append(f"init_from={self.init_from}")
        return base + extra


def objective(plan: TrialPlan) -> Callable[[optuna.Trial], float]:
    """The study's objective: trains one trial and returns its final metric."""

    def run_trial(trial: optuna.Trial) -> float:
        refuse_surplus(trial, plan.budget)
        values = suggest(trial, plan.sweep, plan.searched_stages)
        run_dir = (plan.trials_dir / str(trial.number)).resolve()
        if run_dir.exists() and any(run_dir.iterdir()):
            raise SweepError(f"{run_dir} already holds a run that the study does not know as trial "
                             f"{trial.number}: was the database replaced? Move the folder away or use another "
                             "sweep.study_name")
        for key, value in {**this_process(), RUN_DIR_ATTR: str(run_dir), INIT_FROM_ATTR: plan.init_from}.items():
            trial.set_user_attr(key, value)
        metrics = train(plan.overrides(values), run_dir, _Reporter(trial, plan.sweep.metric),
                        {"study": trial.study.study_name, "stage": plan.stage, "trial": str(trial.number)})
        value = _metric(metrics, plan.sweep.metric, run_dir)
        trial.set_user_attr(METRICS_ATTR, {k: float(v) for k, v in metrics.items() if _is_number(v)})
        trial.set_user_attr(THREADS_ATTR, torch.get_num_threads())  # what this worker's share of the CPU was
        trial.set_user_attr(CHECKPOINT_ATTR, str(stage_checkpoint(run_dir, plan.last_stage)))
        if not math.isfinite(value):
            trial.set_user_attr(DIVERGED_ATTR, True)  # optuna fails a trial that returns nan
        return value

    return run_trial


def train(overrides: Sequence[str], run_dir: Path, reporter: "_Reporter", tags: dict[str, str]) -> dict:
    """compose() + training.run() into run_dir, as train.py would with these overrides; the experiment
    tracker tags the run with `tags` (not an override: best_overrides.txt replays without them)."""
    from facedyn import training
    from facedyn.config import compose

    cfg = compose(list(overrides))
    cfg.logger.tags = {**cfg.logger.tags, **tags}
    try:
        return training.run(cfg, run_dir, overrides=list(overrides), hooks=[reporter])
    except KeyboardInterrupt:
        raise SweepInterrupted(130) from None


class Pruned(optuna.TrialPruned):
    """The pruner stopped the trial: optuna records it pruned, the trainer writes status "pruned"."""

    run_status = "pruned"


class _Reporter(Hook):
    """A hook of the trial's stages: reports the metric as step 0, 1, 2, ... (across stages in joint mode), prunes."""

    name = "pruning"

    def __init__(self, trial: optuna.Trial, metric: str) -> None:
        self.trial, self.metric, self.step = trial, metric, 0

    def epoch_end(self, loop: StageLoop, epoch: EpochEnd) -> None:
        value = epoch.row.get(self.metric)
        if not _is_number(value):
            raise SweepError(f"the trainer reports no number {self.metric!r} after an epoch (it reports "
                             f"{', '.join(sorted(epoch.row))}): set sweep.metric to one of those")
        self.trial.report(float(value), self.step)
        self.step += 1
        if self.trial.should_prune():
            raise Pruned(f"stage {loop.stage} epoch {epoch.epoch}: {self.metric}={value:.4g}")

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])


def refuse_surplus(trial: optuna.Trial, budget: int) -> None:
    ahead = [t for t in trial.study.get_trials(deepcopy=False, states=COUNTED_STATES) if t.number < trial.number]
    if len(ahead) >= budget:
        trial.set_user_attr(SURPLUS_ATTR, True)
        raise SurplusTrial(f"trial {trial.number}: the budget of {budget} trials is taken")


def _metric(metrics: dict, name: str, run_dir: Path) -> float:
    if not _is_number(metrics.get(name)):
        raise SweepError(f"{run_dir}: the run's final metrics have no number {name!r}: set sweep.metric to one "
                         f"of {', '.join(sorted(k for k, v in metrics.items() if _is_number(v)))}")
    return float(metrics[name])


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
