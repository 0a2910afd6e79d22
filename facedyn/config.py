"""Typed schema of the Hydra config in facedyn/conf/, and composing it without a Hydra run (tests, sweeps).

The configs are package data of facedyn (CONF_PACKAGE for Hydra, CONF_DIR on disk), so an installed
facedyn composes from any folder. The dataclasses are registered in Hydra's ConfigStore as `train_schema`;
conf/train.yaml starts from it, so a misspelt key or a wrong type anywhere is rejected with OmegaConf's message naming the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from hydra import compose as hydra_compose
from hydra import initialize_config_module
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from facedyn.data.config import DataConfig
from facedyn.data.expressions import SUNNYBROOK_EXPRESSIONS

CONF_PACKAGE = "pkg://facedyn.conf"  # Hydra's config_path for the entry points
CONF_DIR = Path(__file__).resolve().parent / "conf"  # the same folder, for readers of single files
STAGE_ORDER: tuple[str, ...] = ("1", "2a", "2b", "3", "4")
PARAMETER_GROUPS: tuple[str, ...] = ("flow", "blendshapes", "landmark_head", "fusion")
PREDICTIONS: tuple[str, ...] = ("flow", "landmarks", "fused")


def stage_key(stage: str) -> str:
    """Key of a stage under cfg.stages: `s2b` for stage 2b (Hydra's override grammar wants a letter first)."""
    return f"s{stage}"


@dataclass
class FlowBranchConfig:
    arch: str = "resnet18"
    # imagenet: torchvision's ImageNet weights; none: random init; otherwise a path to a state dict.
    weights: str = "imagenet"
    # When the ImageNet weights cannot be had (offline, nothing cached): fail instead of training from scratch.
    require_weights: bool = False


@dataclass
class BlendshapesConfig:
    path: Optional[str] = None  # a .tflite or .task file; None: FACEDYN_BLENDSHAPES / FACEDYN_LANDMARKER / cache
    share_weights: bool = False  # one blendshape model for the expression and the baseline landmarks


@dataclass
class ModelConfig:
    flow: FlowBranchConfig = field(default_factory=FlowBranchConfig)
    blendshapes: BlendshapesConfig = field(default_factory=BlendshapesConfig)
    landmark_hidden: int = 0  # 0: the designed single FC 104→2; >0: one hidden layer of this width
    fusion_init: str = "average"  # average: start as the mean of the two branch predictions; random
    # The landmark head's variants (facedyn/model.py): the seed's design is raw, none, hidden 0, false.
    landmark_features: str = "raw"  # raw: the 104 blendshape scores | paired: side-independent features
    expression_conditioning: str = "none"  # none | input (one-hot) | heads (one output layer per expression)
    fusion_expression: bool = False  # the expression's one-hot as an input of the fusion layer too
    # Vocabulary of the expression index (its order is part of a trained model); other folders share one slot.
    expressions: List[str] = field(default_factory=lambda: list(SUNNYBROOK_EXPRESSIONS))


@dataclass
class LossWeights:
    dynamics: float = 1.0
    synkinesis: float = 1.0


@dataclass
class StageConfig:
    name: str = MISSING
    trainable: List[str] = MISSING  # parameter groups, from PARAMETER_GROUPS; all others are frozen
    predict: str = MISSING  # which prediction the loss is computed on: flow | landmarks | fused
    lr: float = MISSING
    epochs: int = MISSING
    # previous: the stage before's weights (the previous stage of this run, init_from, or the newest run
    # under outputs/ that finished it); none: a fresh model.
    init: str = "previous"
    loss_weights: LossWeights = field(default_factory=LossWeights)
    augment: bool = True
    # Compute the frozen branches' outputs once per stage and train the heads on them; only possible
    # when every trainable group is a head (landmark_head, fusion), and it implies no augmentation.
    precompute_frozen: bool = False
    batch_size: Optional[int] = None  # None: data.batch_size
    warmup_fraction: float = 0.0  # share of the stage's steps with a linear lr warm-up (pretrained weights)


@dataclass
class OptimizerConfig:
    name: str = "adam"  # adam | adamw | sgd
    lr: Optional[float] = None  # when set, overrides the lr of every stage that runs
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])  # adam, adamw


@dataclass
class SchedulerConfig:
    name: str = "cosine"  # cosine (to lr·min_factor over the stage) | constant; stepped every batch
    min_factor: float = 0.1


@dataclass
class TrainerConfig:
    device: str = "auto"  # auto (cuda when available) | cpu | cuda
    precision: str = "auto"  # auto (bf16 on cuda, fp32 on cpu) | fp32 | bf16
    channels_last: bool = True  # on cuda
    threads: int = 0  # torch CPU threads; 0: torch's default
    eval_batch_size: int = 128
    progress: bool = True  # progress bars per epoch
    deterministic: bool = True


LOGGERS: tuple[str, ...] = ("tensorboard", "mlflow", "none")


@dataclass
class LoggerConfig:
    """Experiment tracking (facedyn/tracking.py; conf/logger/<name>.yaml)."""

    name: str = "tensorboard"  # tensorboard | mlflow | none
    tracking_uri: Optional[str] = None  # mlflow: null → sqlite:///<paths.output_dir>/mlflow/mlflow.db
    artifact_location: Optional[str] = None  # mlflow, new experiment: null → <paths.output_dir>/mlflow/artifacts
    experiment: str = "facedyn"  # mlflow experiment
    tags: Dict[str, str] = field(default_factory=dict)  # more run tags (a sweep trial: its study and stage)


@dataclass
class PathsConfig:
    output_dir: str = "outputs"


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
    seed: int = 0
    name: Optional[str] = None  # appended to the run folder's name
    init_from: Optional[str] = None  # run folder or checkpoint the first stage starts from
    resume: Optional[str] = None  # run folder of an interrupted run to continue


def register_configs() -> None:
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)


register_configs()
# hydra.run.dir: an interrupted run resumes in its own folder.
if not OmegaConf.has_resolver("facedyn_run_dir"):
    OmegaConf.register_new_resolver("facedyn_run_dir", lambda resume, new: resume if resume else new)
    OmegaConf.register_new_resolver("facedyn_suffix", lambda name: f"_{name}" if name else "")


class ConfigError(ValueError):
    """A config that composes but makes no sense; the message names the key."""


_NUMERIC_STAGE = re.compile(r"^(?P<key>[~+]*stage)=(?P<open>\[?)(?P<values>[\w,]+)(?P<close>\]?)$")


def normalize_overrides(overrides: Sequence[str]) -> list[str]:
    """Quote stage names in `stage=1`, `stage=1,2a` (a multirun) and `stage=[2a,2b,3]` (several stages in
    one run): Hydra reads `1` as an int and refuses it as a group option."""
    normalized = []
    for override in overrides:
        match = _NUMERIC_STAGE.match(override)
        if match and bool(match["open"]) == bool(match["close"]):
            values = ",".join(f"'{value}'" for value in match["values"].split(","))
            override = f"{match['key']}={match['open']}{values}{match['close']}"
        normalized.append(override)
    return normalized


def override_stage(override: str) -> str | None:
    """`s2b` for an override of stages.s2b.*; None for any other key."""
    parts = override.partition("=")[0].lstrip("+~").split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "stages" else None


def stages_to_run(cfg: DictConfig) -> list[str]:
    """The stages the config holds, in pipeline order, after checking each is well-formed."""
    names = []
    for key, stage in cfg.stages.items():
        if key != stage_key(stage.name) or stage.name not in STAGE_ORDER:
            raise ConfigError(f"stages.{key}: unknown stage {stage.name!r}; stages are {', '.join(STAGE_ORDER)}")
        unknown = set(stage.trainable) - set(PARAMETER_GROUPS)
        if unknown:
            raise ConfigError(f"stages.{key}.trainable: unknown groups {sorted(unknown)}; known: {PARAMETER_GROUPS}")
        if stage.predict not in PREDICTIONS:
            raise ConfigError(f"stages.{key}.predict must be one of {PREDICTIONS}, not {stage.predict!r}")
        if stage.epochs < 1 or stage.lr <= 0:
            raise ConfigError(f"stages.{key}: epochs must be ≥ 1 and lr > 0")
        names.append(stage.name)
    if not names:
        raise ConfigError("no stage selected: use stage=all or stage=1|2a|2b|3|4")
    return sorted(names, key=STAGE_ORDER.index)


def compose(overrides: Sequence[str] = (), config_name: str = "train") -> DictConfig:
    """The config `python train.py <overrides>` would run with, composed by Hydra's compose API."""
    with initialize_config_module(config_module="facedyn.conf", version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=normalize_overrides(overrides))
