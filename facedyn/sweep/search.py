"""What a study searches and how: the sampler, the pruner, and each trial's suggested config values.

Parameters are named by the config key they set (`stages.s2b.lr`), so a trial's overrides and the line that
replays the best pipeline with train.py are just `key=value` of its params.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Sequence

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState
from omegaconf import DictConfig

from facedyn.training.stages import stage_key
from facedyn.sweep.config import param_key


RETRY_OF_ATTR = "failed_trial"  # optuna's system attribute on a retry of a failed trial
SURPLUS_ATTR = "surplus"  # a trial numbered past the budget, which draws nothing (facedyn.sweep.trial)


def make_sampler(cfg: DictConfig) -> optuna.samplers.BaseSampler:
    """The configured sampler; with a seed, the k-th trial that draws fresh values draws from a generator
    seeded by (seed, k)."""
    def sampler(seed: int | None) -> optuna.samplers.BaseSampler:
        if cfg.sampler.name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=int(cfg.sampler.n_startup_trials))

    return sampler(None) if cfg.sampler.seed is None else TrialSeededSampler(sampler, int(cfg.sampler.seed))


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """A sampler whose randomness for a trial comes from (seed, k) alone, k = how many trials before it drew
    fresh values, not from the process's history.

    So a seeded sweep draws the same values whichever process runs a trial and whether or not it was
    resumed, and two processes sharing a study never draw the same values for their first trials (as two
    equally seeded ordinary samplers would). Retries of killed trials (which replay their params) and surplus
    trials (which draw nothing) take a trial number but no k: a sweep with a killed worker draws the same
    sequence as one that ran undisturbed. Model-based samplers (TPE) still learn from every trial.
    """

    def __init__(self, make: Callable[[int], optuna.samplers.BaseSampler], seed: int) -> None:
        self._make, self._seed = make, seed
        self._inner = make(seed)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        draws = sum(1 for t in study.get_trials(deepcopy=False) if t.number < trial.number and _draws(t))
        self._inner = self._make(int(np.random.SeedSequence([self._seed, draws]).generate_state(1)[0]))
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()


def _draws(trial: FrozenTrial) -> bool:
    """Whether the trial drew (or will draw) its own values."""
    return RETRY_OF_ATTR not in trial.system_attrs and not trial.user_attrs.get(SURPLUS_ATTR)


def make_pruner(cfg: DictConfig) -> optuna.pruners.BasePruner:
    """The configured pruner; with `patience` set, wrapped so that a trial is pruned only once its metric
    has not improved by `min_delta` for `patience` epochs (alone with name=none: plain plateau pruning)."""
    p = cfg.pruner
    if p.name == "median":
        pruner = optuna.pruners.MedianPruner(
            n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps, interval_steps=p.interval_steps
        )
    elif p.name == "percentile":
        pruner = optuna.pruners.PercentilePruner(
            p.percentile, n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps,
            interval_steps=p.interval_steps,
        )
    elif p.name == "successive_halving":
        pruner = optuna.pruners.SuccessiveHalvingPruner()
    elif p.name == "hyperband":
        pruner = optuna.pruners.HyperbandPruner()
    else:
        pruner = None
    if p.patience is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.pruners.PatientPruner(pruner, patience=int(p.patience), min_delta=float(p.min_delta))
    return pruner or optuna.pruners.NopPruner()


def lr_key(stage: str) -> str:
    return f"stages.{stage_key(stage)}.lr"


def searched_keys(cfg: DictConfig, stages: Sequence[str]) -> list[str]:
    """The config keys a trial covering `stages` sets: each stage's lr, then the extra params."""
    keys = [lr_key(s) for s in stages]
    for template in cfg.params:
        keys.extend(dict.fromkeys(param_key(template, s) for s in stages))
    return keys


def distributions(cfg: DictConfig, stages: Sequence[str]) -> dict[str, BaseDistribution]:
    """The search space of a trial covering `stages`: {config key: distribution}, each stage's lr first."""
    space: dict[str, BaseDistribution] = {}
    for stage in stages:
        low, high = (float(v) for v in cfg.lr_range[stage])
        space[lr_key(stage)] = FloatDistribution(low, high, log=True)
    for template, spec in cfg.params.items():
        for key in dict.fromkeys(param_key(template, s) for s in stages):
            if spec.type == "categorical":
                space[key] = CategoricalDistribution(list(spec.choices))
            elif spec.type == "int":
                space[key] = IntDistribution(int(spec.low), int(spec.high), log=spec.log)
            else:
                space[key] = FloatDistribution(float(spec.low), float(spec.high), log=spec.log)
    return space


def suggest(trial: optuna.Trial, cfg: DictConfig, stages: Sequence[str]) -> dict[str, Any]:
    """Ask the trial for every searched value of `stages`; {config key: value}."""
    values: dict[str, Any] = {}
    for key, space in distributions(cfg, stages).items():
        if isinstance(space, CategoricalDistribution):
            values[key] = trial.suggest_categorical(key, list(space.choices))
        elif isinstance(space, IntDistribution):
            values[key] = trial.suggest_int(key, space.low, space.high, log=space.log)
        else:
            values[key] = trial.suggest_float(key, space.low, space.high, log=space.log)
    return values


def as_overrides(values: dict[str, Any]) -> list[str]:
    """`key=value` overrides for compose() and train.py; floats keep every digit."""
    return [f"{key}={_format(value)}" for key, value in values.items()]


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, float) else str(value)
