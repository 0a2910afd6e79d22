"""The trainer's settings: a stage (conf/stage/*.yaml), the optimizer, the lr schedule, the trainer, the
experiment tracker; and the checks they need before any data or model loads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from omegaconf import MISSING, DictConfig

from facedyn.model.config import HEAD_GROUPS, PARAMETER_GROUPS, Predict
from facedyn.utils.config import Choice, ConfigError, one_of, positive

@dataclass
class LossWeights:
    dynamics: float = 1.0  # weight of the dynamics score's scaled MSE in the stage's loss
    synkinesis: float = 1.0  # weight of the synkinesis score's scaled MSE in the stage's loss


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
    name: str = MISSING  # the stage's name (1, 2a, 2b, 3, 4): its key under stages is s<name>
    after: Optional[str] = None  # the stage this one follows in the pipeline (and, with init=previous, starts from)
    trainable: List[str] = MISSING  # parameter groups, from PARAMETER_GROUPS; all others are frozen
    predict: Predict = MISSING  # which prediction the loss and the stage's metrics are computed on
    lr: float = MISSING  # peak learning rate (optimizer.lr, when set, overrides it)
    epochs: int = MISSING  # passes over the training data
    init: StageInit = StageInit.previous
    loss_weights: LossWeights = field(default_factory=LossWeights)
    augment: bool = True  # augment the training data (data.augment.*) in this stage
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
    name: OptimizerName = OptimizerName.adam  # torch.optim's Adam, AdamW or SGD
    lr: Optional[float] = None  # when set, overrides the lr of every stage that runs
    weight_decay: float = 0.0  # L2 penalty (adam, sgd) or decoupled weight decay (adamw)
    momentum: float = 0.9  # sgd
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])  # adam, adamw


class SchedulerName(Choice):
    cosine = "cosine"  # to lr·min_factor over the stage
    constant = "constant"


@dataclass
class SchedulerConfig:
    name: SchedulerName = SchedulerName.cosine  # stepped every batch
    min_factor: float = 0.1  # cosine: the lr a stage ends at, as a share of its peak lr


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
    eval_batch_size: int = 128  # batch size of validation and prediction passes
    progress: bool = True  # progress bars per epoch, on a terminal (a log gets one line per epoch either way)
    deterministic: bool = True  # torch's deterministic algorithms: the same seed gives the same run
    # Evaluate, select and hand on an exponential moving average of the weights with this decay (e.g. 0.999;
    # its warm-up follows the step count: decay min(ema, (1 + steps) / (10 + steps))); null: the weights themselves.
    ema: Optional[float] = None
    # Clip the gradients' global L2 norm to this before each step (1.0: better by 5-fold CV, see the docs' results);
    # null: no clipping.
    grad_clip: Optional[float] = 1.0


LOGGERS: tuple[str, ...] = ("tensorboard", "mlflow", "none")


@dataclass
class LoggerConfig:
    """Experiment tracking (facedyn.training.tracking; conf/logger/<name>.yaml)."""

    name: str = "tensorboard"  # tensorboard | mlflow | none
    tracking_uri: Optional[str] = None  # mlflow: null → sqlite:///<paths.output_dir>/mlflow/mlflow.db
    artifact_location: Optional[str] = None  # mlflow, new experiment: null → <paths.output_dir>/mlflow/artifacts
    experiment: str = "facedyn"  # mlflow experiment
    tags: Dict[str, str] = field(default_factory=dict)  # more run tags (a sweep trial: its study and stage)


SELECT_METRIC = re.compile(r"^val_(loss|acc_both|(video_)?(mse|mae|acc|within1|qwk)_(dynamics|synkinesis)"
                           r"|video_icc_(dynamics|synkinesis))$")


def lower_is_better(metric: str) -> bool:
    return any(part in metric for part in ("loss", "mae", "mse"))


def _check_stage(key: str, stage: DictConfig) -> None:
    where = f"stages.{key}"
    unknown = set(stage.trainable) - set(PARAMETER_GROUPS)
    if unknown or not stage.trainable:
        raise ConfigError(f"{where}.trainable: unknown groups {sorted(unknown)} or none; known: {', '.join(PARAMETER_GROUPS)}")
    one_of(f"{where}.predict", stage.predict, Predict)
    one_of(f"{where}.init", stage.init, StageInit)
    one_of(f"{where}.select", stage.get("select", Select.best), Select)
    one_of(f"{where}.checkpoint", stage.get("checkpoint", CheckpointEvery.epoch), CheckpointEvery)
    if stage.epochs < 1:
        raise ConfigError(f"{where}.epochs={stage.epochs} must be at least 1")
    positive(f"{where}.lr", stage.lr)
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


def check_training(cfg: DictConfig, stages: list[str]) -> None:
    """The checks of the stages to run and of optimizer.*, scheduler.* and trainer.*; ConfigError naming the key."""
    from facedyn.training.stages import stage_key

    for stage in stages:
        _check_stage(stage_key(stage), cfg.stages[stage_key(stage)])
    first = cfg.stages[stage_key(stages[0])]
    if str(first.init) == StageInit.previous and first.after is None:
        raise ConfigError(f"stages.{stage_key(stages[0])}: stage {stages[0]} has no stage before it; set its init to none")
    optimizer = cfg.optimizer
    one_of("optimizer.name", optimizer.name, OptimizerName)
    if optimizer.lr is not None:
        positive("optimizer.lr", optimizer.lr)
    if optimizer.weight_decay < 0 or optimizer.momentum < 0:
        raise ConfigError("optimizer.weight_decay and optimizer.momentum must not be negative")
    if len(optimizer.betas) != 2 or not all(0.0 <= b < 1.0 for b in optimizer.betas):
        raise ConfigError(f"optimizer.betas={list(optimizer.betas)} must be two values in [0, 1)")
    one_of("scheduler.name", cfg.scheduler.name, SchedulerName)
    if not 0.0 <= cfg.scheduler.get("min_factor", 0.1) <= 1.0:
        raise ConfigError(f"scheduler.min_factor={cfg.scheduler.min_factor} must lie in [0, 1]")
    trainer = cfg.trainer
    one_of("trainer.device", trainer.device, Device)
    one_of("trainer.precision", trainer.precision, Precision)
    if trainer.eval_batch_size < 1 or trainer.threads < 0:
        raise ConfigError("trainer.eval_batch_size must be at least 1 and trainer.threads not negative")
    ema = trainer.get("ema")
    if ema is not None and not 0.0 < ema < 1.0:
        raise ConfigError(f"trainer.ema={ema} must lie in (0, 1) (e.g. 0.999), or be null")
    if trainer.get("grad_clip") is not None:
        positive("trainer.grad_clip", trainer.grad_clip)
