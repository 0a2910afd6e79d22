"""The sweep's config: a structured schema, facedyn/conf/sweep/<name>.yaml, `sweep.*` overrides, and its checks.

`python sweep.py` takes `key=value` arguments like train.py. `sweep=<name>` picks conf/sweep/<name>.yaml,
`sweep.<key>=<value>` sets a key of it; everything else is an override of the training config and goes to
every trial's compose().
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from facedyn.conf import CONF_DIR
from facedyn.training.stages import STAGE_ORDER

MODES = ("staged", "joint")
PRUNERS = ("median", "percentile", "successive_halving", "hyperband", "none")
SAMPLERS = ("tpe", "random")
DIRECTIONS = ("minimize", "maximize")
PARAM_TYPES = ("float", "int", "categorical")
STAGE_PLACEHOLDER = "{stage}"
LAUNCHERS = ("local", "submitit_local", "slurm")


class SweepConfigError(ValueError):
    """A sweep config that cannot work; raised before any training starts."""


@dataclass
class ParamSpec:
    """One more config key to search: a float/int range (log-uniform with log=true) or a list of choices."""

    type: str = "float"  # float | int | categorical
    low: Optional[float] = None  # float, int: the range's lower end
    high: Optional[float] = None  # float, int: the range's upper end
    log: bool = False  # float, int: draw log-uniformly
    choices: Optional[list[Any]] = None  # categorical: the values to choose from


@dataclass
class PrunerConfig:
    name: str = "median"
    n_startup_trials: int = 3
    n_warmup_steps: int = 3
    interval_steps: int = 1
    percentile: float = 50.0
    patience: Optional[int] = None
    min_delta: float = 0.0


@dataclass
class SamplerConfig:
    name: str = "tpe"
    seed: Optional[int] = None
    n_startup_trials: int = 5


@dataclass
class SweepConfig:
    study_name: str = "facedyn"
    mode: str = "staged"
    stages: list[str] = field(default_factory=lambda: list(STAGE_ORDER))
    trials_per_stage: int = 12
    trials: int = 30
    metric: str = "val_loss"
    direction: str = "minimize"
    lr_range: dict[str, list[float]] = field(default_factory=dict)
    params: dict[str, ParamSpec] = field(default_factory=dict)
    pruner: PrunerConfig = field(default_factory=PrunerConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    storage: Optional[str] = None
    root: Optional[str] = None
    heartbeat_interval: int = 30
    grace_period: int = 120
    max_retry: int = 3
    poll_seconds: float = 2.0
    recover: bool = False
    launcher: str = "local"
    workers: Optional[int] = None
    workers_per_device: int = 1
    launcher_params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SweepArgs:
    """A sweep command line, split: the sweep's own config and the overrides every trial composes with."""

    sweep: DictConfig
    train_overrides: list[str]


def split_args(args: Sequence[str], conf_dir: Path = CONF_DIR) -> SweepArgs:
    """Parse `key=value` arguments into the checked sweep config and the training overrides."""
    sweep_name = "default"
    sweep_overrides: list[str] = []
    train_overrides: list[str] = []
    for arg in args:
        if "=" not in arg:
            raise SweepConfigError(f"argument {arg!r} is not key=value")
        key, value = arg.split("=", 1)
        if key == "sweep":
            sweep_name = value
        elif key.startswith("sweep."):
            sweep_overrides.append(arg[len("sweep."):])
        else:
            train_overrides.append(arg)
    return SweepArgs(load(sweep_name, sweep_overrides, conf_dir), train_overrides)


def load(name: str = "default", overrides: Sequence[str] = (), conf_dir: Path = CONF_DIR) -> DictConfig:
    """conf/sweep/<name>.yaml merged onto the schema, then the overrides; checked (see `check`)."""
    path = Path(conf_dir) / "sweep" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise SweepConfigError(f"{path}: no such sweep config (known: {', '.join(known) or 'none'})")
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(SweepConfig), OmegaConf.load(path))
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    except OmegaConfBaseException as exc:
        raise SweepConfigError(f"{path} with overrides {list(overrides)}: {exc}") from exc
    check(cfg)
    return cfg


def check(cfg: DictConfig) -> None:
    """Raise SweepConfigError naming the key when the config cannot give a sensible sweep."""
    _one_of("mode", cfg.mode, MODES)
    _one_of("direction", cfg.direction, DIRECTIONS)
    _one_of("pruner.name", cfg.pruner.name, PRUNERS)
    _one_of("sampler.name", cfg.sampler.name, SAMPLERS)
    if not cfg.study_name or "/" in cfg.study_name:
        raise SweepConfigError(f"sweep.study_name={cfg.study_name!r}: give a non-empty name without '/'")
    stages = [str(s) for s in cfg.stages]
    if not stages:
        raise SweepConfigError("sweep.stages is empty: name at least one of " + ", ".join(STAGE_ORDER))
    for stage in stages:
        if stage not in STAGE_ORDER:
            raise SweepConfigError(f"sweep.stages: unknown stage {stage!r} (known: {', '.join(STAGE_ORDER)})")
    if len(set(stages)) != len(stages):
        raise SweepConfigError(f"sweep.stages={stages}: a stage is named twice")
    if stages != sorted(stages, key=STAGE_ORDER.index):
        raise SweepConfigError(f"sweep.stages={stages}: stages run in the order {', '.join(STAGE_ORDER)}")
    budget_key = "trials_per_stage" if cfg.mode == "staged" else "trials"
    if cfg[budget_key] <= 0:
        raise SweepConfigError(f"sweep.{budget_key}={cfg[budget_key]}: the number of trials must be > 0")
    for stage in cfg.lr_range:
        if str(stage) not in STAGE_ORDER:
            raise SweepConfigError(f"sweep.lr_range: unknown stage {stage!r} (known: {', '.join(STAGE_ORDER)})")
    for stage in stages:
        if stage not in cfg.lr_range:
            raise SweepConfigError(f"sweep.lr_range has no range for stage {stage!r}: set sweep.lr_range.{stage}=[low,high]")
        _check_range(f"lr_range.{stage}", list(cfg.lr_range[stage]), log=True)
    for key, spec in cfg.params.items():
        _check_param(key, spec, cfg.mode)
    if cfg.pruner.n_startup_trials < 0 or cfg.pruner.n_warmup_steps < 0 or cfg.pruner.interval_steps < 1:
        raise SweepConfigError("sweep.pruner: n_startup_trials and n_warmup_steps must be >= 0, interval_steps >= 1")
    if cfg.pruner.patience is not None and (cfg.pruner.patience < 1 or cfg.pruner.min_delta < 0):
        raise SweepConfigError("sweep.pruner.patience must be >= 1 (or null) and sweep.pruner.min_delta >= 0")
    if not 0 < cfg.pruner.percentile < 100:
        raise SweepConfigError(f"sweep.pruner.percentile={cfg.pruner.percentile}: must lie in (0, 100)")
    if cfg.heartbeat_interval <= 0 or cfg.grace_period <= cfg.heartbeat_interval:
        raise SweepConfigError("sweep.heartbeat_interval must be > 0 and sweep.grace_period larger than it")
    if cfg.max_retry < 0 or cfg.poll_seconds <= 0:
        raise SweepConfigError("sweep.max_retry must be >= 0 and sweep.poll_seconds > 0")
    _one_of("launcher", cfg.launcher, LAUNCHERS)
    if (cfg.workers is not None and cfg.workers < 1) or cfg.workers_per_device < 1:
        raise SweepConfigError(f"sweep.workers={cfg.workers}, sweep.workers_per_device={cfg.workers_per_device}: "
                               "give at least one worker (workers: null picks workers_per_device per GPU)")


def _one_of(key: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise SweepConfigError(f"sweep.{key}={value!r}: must be one of {', '.join(allowed)}")


def _check_range(key: str, bounds: list[Any], log: bool) -> None:
    if len(bounds) != 2:
        raise SweepConfigError(f"sweep.{key}={bounds}: give [low, high]")
    try:
        low, high = float(bounds[0]), float(bounds[1])
    except (TypeError, ValueError):
        raise SweepConfigError(f"sweep.{key}={bounds}: low and high must be numbers") from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise SweepConfigError(f"sweep.{key}={bounds}: low and high must be finite")
    if low >= high:
        raise SweepConfigError(f"sweep.{key}=[{low}, {high}]: empty or inverted range (low must be < high)")
    if log and low <= 0:
        raise SweepConfigError(f"sweep.{key}=[{low}, {high}]: a log-uniform range needs low > 0")


def _check_param(key: str, spec: DictConfig, mode: str) -> None:
    if mode == "staged" and STAGE_PLACEHOLDER not in key:
        # One value per stage: train.py must be able to replay each stage's best choice.
        raise SweepConfigError(
            f"sweep.params: key {key!r} needs the placeholder {STAGE_PLACEHOLDER} in staged mode "
            f"(e.g. stages.s{STAGE_PLACEHOLDER}.batch_size), so each stage's study sets its own value"
        )
    _one_of(f"params.{key}.type", spec.type, PARAM_TYPES)
    if spec.type == "categorical":
        if not spec.choices:
            raise SweepConfigError(f"sweep.params.{key}: a categorical parameter needs a non-empty choices list")
    else:
        _check_range(f"params.{key}", [spec.low, spec.high], log=spec.log)


def param_key(key: str, stage: str) -> str:
    """The config key a search parameter sets for `stage`."""
    return key.replace(STAGE_PLACEHOLDER, stage)
