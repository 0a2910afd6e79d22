"""Settings of `predict.py`: a Hydra structured-config schema, registered as `predict_schema`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from hydra import compose, initialize_config_module
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from facedyn.config import PathsConfig, normalize_overrides
from facedyn.data.config import DataConfig
from facedyn.videos.config import PrepareConfig

BACKENDS = ("torch", "onnx")
PRECISIONS = ("fp32", "bf16", "run")
# A config folder of its own: beside train.py's config groups, `stage=3` would select the stage group.
PREDICT_CONF_MODULE = "facedyn.conf.predict"
PREDICT_CONF_PACKAGE = f"pkg://{PREDICT_CONF_MODULE}"


@dataclass
class SunnybrookConfig:
    """Which expression folder holds each of Sunnybrook's five voluntary-movement items (null: not recorded)."""

    brow_lift: Optional[str] = "brow_raise"  # the expression folder graded as Sunnybrook's brow lift
    gentle_eye_closure: Optional[str] = "eye_close"  # ... as gentle eye closure
    open_mouth_smile: Optional[str] = "smile"  # ... as open-mouth smile
    snarl: Optional[str] = "snarl"  # ... as snarl
    lip_pucker: Optional[str] = "lip_pucker"  # ... as lip pucker


@dataclass
class FlagConfig:
    """When an ensemble's grade of a video and expression is flagged for checking by hand."""

    grades: int = 2  # its interval holds more whole grades than this (2: the grade is uncertain beyond ±1)
    spread: float = 1.0  # its fold models' grades lie further apart than this (max − min, in grades)


@dataclass
class PredictConfig:
    # Run folder or one of its checkpoints, or a cross-validation folder (or one of its variants: the ensemble
    # of its fold models); null: the newest finished run under paths.output_dir.
    run: Optional[str] = None
    stage: Optional[str] = None  # whose weights: null = the checkpoint's own stage, or 4 for a run folder
    # Data settings on top of the run's own (landmark units, label keys, image size are the run's unless
    # set here). Without data.root (and without videos=) the run's own validation videos are predicted.
    data: DataConfig = field(default_factory=DataConfig)
    videos: Optional[str] = None  # folder of clips: prepared by facedyn.videos into the cache, then predicted
    # prepare.py's settings for videos=, e.g. prepare.grades=…; prepare.out: where the prepared dataset goes
    # (default: the cache); prepare.videos is videos=.
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    model: str = "torch"  # torch | onnx (an exported graph, run by ONNX Runtime)
    # model=onnx: the .onnx file, or a list of a cross-validation's exported fold graphs (their ensemble)
    onnx: Optional[Any] = None
    # An ensemble's prediction intervals per video and expression: their level (0 < interval < 1), calibrated
    # on the cross-validation's out-of-fold residuals; null: none (nor the residuals they need).
    interval: Optional[float] = 0.9
    interval_method: str = "cv_plus"  # cv_plus (each residual around the model that did not see it) | centred
    folds: str = "finished"  # an ensemble's folds: finished (unfinished ones left out and named) | all (or refuse)
    flag: FlagConfig = field(default_factory=FlagConfig)
    device: str = "auto"  # torch: auto (cuda when available) | cpu | cuda
    # torch: fp32 (exact, the same everywhere) | bf16 (autocast) | run (as the run validated: metrics.json)
    precision: str = "fp32"
    batch_size: int = 128  # samples per model call
    sunnybrook: SunnybrookConfig = field(default_factory=SunnybrookConfig)
    report: bool = True  # write report.html
    # Explain the frames report.html shows (Grad-CAM of the flow branch, the landmark branch's top blendshapes;
    # torch backend): one frame per patient and expression. false: the report without them.
    explain: bool = True
    report_max_patients: int = 200  # patients shown in detail in report.html (all are in the CSVs)
    paths: PathsConfig = field(default_factory=PathsConfig)


def register_configs() -> None:
    ConfigStore.instance().store(name="predict_schema", node=PredictConfig)


register_configs()


def compose_predict(overrides: Sequence[str] = ()) -> DictConfig:
    """The config `python predict.py <overrides>` would run with, composed by Hydra's compose API."""
    with initialize_config_module(config_module=PREDICT_CONF_MODULE, version_base="1.3"):
        return compose(config_name="predict", overrides=normalize_overrides(overrides))
