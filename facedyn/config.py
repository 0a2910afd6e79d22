"""The root of train.py's typed config, and composing it without a Hydra run (tests, sweeps).

Each part's schema lives with its code: model.* in facedyn.model.config, data.* in facedyn.data.config,
stages/optimizer/scheduler/trainer/logger in facedyn.training.config. TrainConfig joins them and is
registered in Hydra's ConfigStore as `train_schema`; conf/train.yaml starts from it, so a misspelt key or a
wrong type anywhere is rejected with OmegaConf's message naming the key. The configs are package data of
facedyn (facedyn.conf), so an installed facedyn composes from any folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Sequence

from hydra import compose as hydra_compose
from hydra import initialize_config_module
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from facedyn.data.config import DataConfig
from facedyn.model.config import ModelConfig, model_config_problem
from facedyn.runs import claim_new_folder
from facedyn.training.config import (LoggerConfig, OptimizerConfig, SchedulerConfig, StageConfig, TrainerConfig,
                                     check_training)
from facedyn.training.stages import STAGE_ORDER, stage_key
from facedyn.utils.config import ConfigError


@dataclass
class PathsConfig:
    output_dir: str = "outputs"  # runs, multiruns, sweeps, cross-validations and predictions go under it


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    stages: Dict[str, StageConfig] = field(default_factory=dict)
    seed: int = 0  # seeds the model's initialisation, the batch order and the augmentation
    name: Optional[str] = None  # appended to the run folder's name
    init_from: Optional[str] = None  # run folder or checkpoint the first stage starts from
    resume: Optional[str] = None  # run folder of an interrupted run to continue


def register_configs() -> None:
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)


register_configs()
# hydra.run.dir: an interrupted run resumes in its own folder; a new one gets a folder no other run has
# (two runs started in the same second get <time> and <time>_2).
def _new_folder(path: str) -> str:
    """claim_new_folder for the resolvers; a folder that cannot be made ends the program with one line
    (a resolver's exception would reach the user as a screen of Hydra's interpolation traceback)."""
    try:
        return claim_new_folder(path)
    except OSError as exc:
        raise SystemExit(f"error: cannot create the output folder {path} ({exc.strerror or exc}); start from a "
                         f"folder you can write to or set paths.output_dir=/a/writable/folder") from None


if not OmegaConf.has_resolver("facedyn_run_dir"):
    OmegaConf.register_new_resolver("facedyn_run_dir", lambda resume, new: resume if resume else _new_folder(new))
    OmegaConf.register_new_resolver("facedyn_new_dir", _new_folder)
    OmegaConf.register_new_resolver("facedyn_suffix", lambda name: f"_{name}" if name else "")


_NUMERIC_STAGE = re.compile(r"^(?P<key>[~+]*stage)=(?P<open>\[?)(?P<values>[\w,]+)(?P<close>\]?)$")


_PLAIN_VALUE = re.compile(r"^(?P<key>[~+]*[\w.@/-]+)=(?P<value>[^'\"\[\]{}(),\\]+)$")


def normalize_overrides(overrides: Sequence[str]) -> list[str]:
    """Quote stage names in `stage=1`, `stage=1,2a` (a multirun) and `stage=[2a,2b,3]` (several stages in
    one run): Hydra reads `1` as an int and refuses it as a group option. Quote a plain value with a
    letter beyond ASCII (`videos=/data/Müller`): Hydra's grammar reads such letters only inside quotes."""
    normalized = []
    for override in overrides:
        match = _NUMERIC_STAGE.match(override)
        plain = _PLAIN_VALUE.match(override)
        if match and bool(match["open"]) == bool(match["close"]):
            values = ",".join(f"'{value}'" for value in match["values"].split(","))
            override = f"{match['key']}={match['open']}{values}{match['close']}"
        elif plain and not plain["value"].isascii():
            override = f"{plain['key']}='{plain['value']}'"
        normalized.append(override)
    return normalized


def command_line_overrides(arguments: Sequence[str]) -> list[str]:
    """The entry points' `key=value` arguments, normalised (normalize_overrides); one that Hydra's grammar
    cannot read ends the program with one line saying how to quote it, not Hydra's four-line parser error."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    overrides = normalize_overrides(arguments)
    parser = OverridesParser.create()
    for given, override in zip(arguments, overrides):
        if given.startswith("-") or "=" not in given:
            continue  # Hydra's own flags and their values (--cfg job, --multirun, ...)
        try:
            parser.parse_overrides([override])
        except OverrideParseException:
            key, _, value = given.partition("=")
            raise SystemExit(f"error: cannot read the setting {given!r}; put its value in quotes, as in "
                             f"{key}='{value}' (with the shell's quotes around it all: \"{key}='{value}'\")") from None
    return overrides


def override_key(override: str) -> str:
    """The config key a `key=value` override sets, without Hydra's +/++/~ prefixes."""
    return override.partition("=")[0].lstrip("+~")


def override_stage(override: str) -> str | None:
    """`s2b` for an override of stages.s2b.*; None for any other key."""
    parts = override_key(override).split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "stages" else None


def stages_to_run(cfg: DictConfig) -> list[str]:
    """The stages the config holds, in pipeline order."""
    names = []
    for key, stage in cfg.stages.items():
        if key != stage_key(str(stage.name)) or str(stage.name) not in STAGE_ORDER:
            raise ConfigError(f"stages.{key}: unknown stage {stage.name!r}; stages are {', '.join(STAGE_ORDER)}")
        names.append(str(stage.name))
    if not names:
        raise ConfigError(f"no stage selected: use stage=all or stage={'|'.join(STAGE_ORDER)}")
    return sorted(names, key=STAGE_ORDER.index)


def validate(cfg: DictConfig) -> list[str]:
    """Every check a config needs before data and model load; the stages to run, in order.

    Raises ConfigError (or facedyn.data.DataError for data.*) with one line naming the key.
    """
    stages = stages_to_run(cfg)
    check_training(cfg, stages)
    problem = model_config_problem(cfg.model)
    if problem:
        raise ConfigError(problem)
    if cfg.init_from and not Path(cfg.init_from).expanduser().exists():
        raise ConfigError(f"init_from={cfg.init_from}: no such run folder or checkpoint file")
    from facedyn.data.loading import as_data_config, check_settings  # data checks raise DataError

    check_settings(as_data_config(cfg.data))
    return stages


def compose(overrides: Sequence[str] = (), config_name: str = "train") -> DictConfig:
    """The config `python train.py <overrides>` would run with, composed by Hydra's compose API."""
    with initialize_config_module(config_module="facedyn.conf", version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=normalize_overrides(overrides))
