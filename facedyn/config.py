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

from facedyn.utils.choices import Choice
from facedyn.data.config import DataConfig
from facedyn.data.expressions import SUNNYBROOK_EXPRESSIONS
from facedyn.runs import claim_new_folder

CONF_PACKAGE = "pkg://facedyn.conf"  # Hydra's config_path for the entry points
CONF_DIR = Path(__file__).resolve().parent / "conf"  # the same folder, for readers of single files
PARAMETER_GROUPS: tuple[str, ...] = ("flow", "blendshapes", "landmark_head", "fusion")
# The groups that act on branch outputs only: a stage training nothing else can precompute the branches.
HEAD_GROUPS: tuple[str, ...] = ("landmark_head", "fusion")


class ConfigError(ValueError):
    """A config that composes but makes no sense; the message names the key."""


def _pipeline_order(stage_dir: Path) -> tuple[str, ...]:
    """The stages in pipeline order, as the conf/stage/*.yaml files chain them by `after`."""
    after = {}
    for path in sorted(stage_dir.glob("*.yaml")):
        node = OmegaConf.load(path)
        if "name" in node:  # not a list of stages like all.yaml
            after[str(node.name)] = None if node.get("after") is None else str(node.after)
    roots = [name for name, previous in after.items() if previous is None]
    order = roots[:1]
    while len(roots) == 1:
        following = [name for name, previous in after.items() if previous == order[-1]]
        if len(following) != 1 or following[0] in order:
            break
        order.append(following[0])
    if len(order) != len(after):
        raise ConfigError(f"{stage_dir}: the stages' `after` keys must chain every stage once, starting from the "
                          f"one stage with `after: null`; found {after}")
    return tuple(order)


STAGE_ORDER: tuple[str, ...] = _pipeline_order(CONF_DIR / "stage")


def stage_key(stage: str) -> str:
    """Key of a stage under cfg.stages: `s2b` for stage 2b (Hydra's override grammar wants a letter first)."""
    return f"s{stage}"


class FlowArch(Choice):
    resnet18 = "resnet18"
    resnet34 = "resnet34"
    resnet50 = "resnet50"


class FusionInit(Choice):
    average = "average"  # start as the mean of the two branch predictions
    random = "random"


@dataclass
class FlowBranchConfig:
    arch: FlowArch = FlowArch.resnet18  # torchvision ResNet whose output layer predicts the 2 scores
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
    fusion_init: FusionInit = FusionInit.average
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


class Predict(Choice):
    """Which prediction a stage's loss is computed on."""

    flow = "flow"
    landmarks = "landmarks"
    fused = "fused"


class StageInit(Choice):
    previous = "previous"  # the weights of the stage named by `after` (this run, init_from, or the newest run)
    none = "none"  # a fresh model


class Select(Choice):
    best = "best"  # the stage hands on the weights of its best validation epoch (by select_metric)
    last = "last"  # the weights after its last epoch


class CheckpointEvery(Choice):
    epoch = "epoch"  # last.pt after every epoch: an interrupted stage resumes where it stopped
    stage = "stage"  # only at the stage's end (epochs cheaper than a checkpoint write): a resumed run redoes it


@dataclass
class StageConfig:
    name: str = MISSING
    after: Optional[str] = None  # the stage this one follows in the pipeline (and, with init=previous, starts from)
    trainable: List[str] = MISSING  # parameter groups, from PARAMETER_GROUPS; all others are frozen
    predict: Predict = MISSING
    lr: float = MISSING
    epochs: int = MISSING
    init: StageInit = StageInit.previous
    loss_weights: LossWeights = field(default_factory=LossWeights)
    augment: bool = True
    # Compute the frozen branches' outputs once per stage (on un-augmented data, so augment must be false)
    # and train the heads on them; only possible when every trainable group is a head (HEAD_GROUPS).
    precompute_frozen: bool = False
    checkpoint: CheckpointEvery = CheckpointEvery.epoch
    batch_size: Optional[int] = None  # None: data.batch_size
    warmup_fraction: float = 0.0  # share of the stage's steps with a linear lr warm-up (pretrained weights)
    select: Select = Select.best
    select_metric: str = "val_loss"  # any validation metric; loss/mae/mse lower is better, the others higher
    patience: Optional[int] = None  # stop the stage after this many epochs without a better select_metric


class OptimizerName(Choice):
    adam = "adam"
    adamw = "adamw"
    sgd = "sgd"


@dataclass
class OptimizerConfig:
    name: OptimizerName = OptimizerName.adam
    lr: Optional[float] = None  # when set, overrides the lr of every stage that runs
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])  # adam, adamw


class SchedulerName(Choice):
    cosine = "cosine"  # to lr·min_factor over the stage
    constant = "constant"


@dataclass
class SchedulerConfig:
    name: SchedulerName = SchedulerName.cosine  # stepped every batch
    min_factor: float = 0.1


class Device(Choice):
    auto = "auto"  # cuda when available
    cpu = "cpu"
    cuda = "cuda"


class Precision(Choice):
    auto = "auto"  # bf16 on cuda and on CPUs with native bf16 (AVX512-BF16 / AMX, detected), else fp32
    fp32 = "fp32"
    bf16 = "bf16"


@dataclass
class TrainerConfig:
    device: Device = Device.auto
    precision: Precision = Precision.auto
    channels_last: bool = True  # on cuda
    threads: int = 0  # torch CPU threads; 0: torch's default
    eval_batch_size: int = 128
    progress: bool = True  # progress bars per epoch
    deterministic: bool = True


LOGGERS: tuple[str, ...] = ("tensorboard", "mlflow", "none")


@dataclass
class LoggerConfig:
    """Experiment tracking (facedyn.training.tracking; conf/logger/<name>.yaml)."""

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
# hydra.run.dir: an interrupted run resumes in its own folder; a new one gets a folder no other run has
# (two runs started in the same second get <time> and <time>_2).
if not OmegaConf.has_resolver("facedyn_run_dir"):
    OmegaConf.register_new_resolver("facedyn_run_dir", lambda resume, new: resume if resume else claim_new_folder(new))
    OmegaConf.register_new_resolver("facedyn_new_dir", claim_new_folder)
    OmegaConf.register_new_resolver("facedyn_suffix", lambda name: f"_{name}" if name else "")


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


SELECT_METRIC = re.compile(r"^val_(loss|acc_both|(video_)?(mse|mae|acc|within1|qwk)_(dynamics|synkinesis)"
                           r"|video_icc_(dynamics|synkinesis))$")


def lower_is_better(metric: str) -> bool:
    return any(part in metric for part in ("loss", "mae", "mse"))


def _check_stage(key: str, stage: DictConfig) -> None:
    where = f"stages.{key}"
    unknown = set(stage.trainable) - set(PARAMETER_GROUPS)
    if unknown or not stage.trainable:
        raise ConfigError(f"{where}.trainable: unknown groups {sorted(unknown)} or none; known: {', '.join(PARAMETER_GROUPS)}")
    _one_of(f"{where}.predict", stage.predict, Predict)
    _one_of(f"{where}.init", stage.init, StageInit)
    _one_of(f"{where}.select", stage.get("select", Select.best), Select)
    _one_of(f"{where}.checkpoint", stage.get("checkpoint", CheckpointEvery.epoch), CheckpointEvery)
    if stage.epochs < 1:
        raise ConfigError(f"{where}.epochs={stage.epochs} must be at least 1")
    _positive(f"{where}.lr", stage.lr)
    if stage.batch_size is not None and stage.batch_size < 1:
        raise ConfigError(f"{where}.batch_size={stage.batch_size} must be at least 1")
    if not 0.0 <= stage.warmup_fraction < 1.0:
        raise ConfigError(f"{where}.warmup_fraction={stage.warmup_fraction} must lie in [0, 1)")
    weights = (stage.loss_weights.dynamics, stage.loss_weights.synkinesis)
    if min(weights) < 0 or sum(weights) <= 0:
        raise ConfigError(f"{where}.loss_weights={list(weights)}: weights must be ≥ 0 with a positive sum")
    if stage.precompute_frozen:
        if not set(stage.trainable) <= set(HEAD_GROUPS):
            raise ConfigError(f"{where}.precompute_frozen needs only head groups ({', '.join(HEAD_GROUPS)}) to train, "
                              f"not {list(stage.trainable)}")
        if stage.augment:
            raise ConfigError(f"{where}: precompute_frozen computes the frozen branches once, on un-augmented data; "
                              f"set {where}.augment=false (or precompute_frozen=false to augment)")
    metric = stage.get("select_metric", "val_loss")
    if not SELECT_METRIC.match(str(metric)):
        raise ConfigError(f"{where}.select_metric={metric!r} is not a validation metric (e.g. val_loss, "
                          f"val_mae_dynamics, val_video_qwk_synkinesis)")
    patience = stage.get("patience")
    if patience is not None and patience < 1:
        raise ConfigError(f"{where}.patience={patience} must be at least 1 (or null: no early stop)")


def _one_of(key: str, value, choices: type[Choice]) -> None:
    if str(value) not in choices.names():
        raise ConfigError(f"{key}={value!r} is not one of: {', '.join(choices.names())}")


def _positive(key: str, value) -> None:
    if not value > 0:
        raise ConfigError(f"{key}={value:g} must be positive")


def validate(cfg: DictConfig) -> list[str]:
    """Every check a config needs before data and model load; the stages to run, in order.

    Raises ConfigError (or facedyn.data.DataError for data.*) with one line naming the key.
    """
    stages = stages_to_run(cfg)
    for stage in stages:
        _check_stage(stage_key(stage), cfg.stages[stage_key(stage)])
    first = cfg.stages[stage_key(stages[0])]
    if str(first.init) == StageInit.previous and first.after is None:
        raise ConfigError(f"stages.{stage_key(stages[0])}: stage {stages[0]} has no stage before it; set its init to none")
    optimizer = cfg.optimizer
    _one_of("optimizer.name", optimizer.name, OptimizerName)
    if optimizer.lr is not None:
        _positive("optimizer.lr", optimizer.lr)
    if optimizer.weight_decay < 0 or optimizer.momentum < 0:
        raise ConfigError("optimizer.weight_decay and optimizer.momentum must not be negative")
    if len(optimizer.betas) != 2 or not all(0.0 <= b < 1.0 for b in optimizer.betas):
        raise ConfigError(f"optimizer.betas={list(optimizer.betas)} must be two values in [0, 1)")
    _one_of("scheduler.name", cfg.scheduler.name, SchedulerName)
    if not 0.0 <= cfg.scheduler.get("min_factor", 0.1) <= 1.0:
        raise ConfigError(f"scheduler.min_factor={cfg.scheduler.min_factor} must lie in [0, 1]")
    trainer = cfg.trainer
    _one_of("trainer.device", trainer.device, Device)
    _one_of("trainer.precision", trainer.precision, Precision)
    if trainer.eval_batch_size < 1 or trainer.threads < 0:
        raise ConfigError("trainer.eval_batch_size must be at least 1 and trainer.threads not negative")
    _one_of("model.flow.arch", cfg.model.flow.arch, FlowArch)
    _one_of("model.fusion_init", cfg.model.fusion_init, FusionInit)
    if cfg.model.landmark_hidden < 0:
        raise ConfigError(f"model.landmark_hidden={cfg.model.landmark_hidden} must not be negative")
    if cfg.init_from and not Path(cfg.init_from).expanduser().exists():
        raise ConfigError(f"init_from={cfg.init_from}: no such run folder or checkpoint file")
    from facedyn.data.prepare import as_data_config, check_settings  # data checks raise DataError

    check_settings(as_data_config(cfg.data))
    return stages


def compose(overrides: Sequence[str] = (), config_name: str = "train") -> DictConfig:
    """The config `python train.py <overrides>` would run with, composed by Hydra's compose API."""
    with initialize_config_module(config_module="facedyn.conf", version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=normalize_overrides(overrides))
