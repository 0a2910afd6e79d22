"""Settings of `prepare.py` (a Hydra structured-config schema, registered as `prepare_schema`).

Every setting that shapes the written samples is part of each clip's fingerprint (pipeline.py), so a
rerun with other settings redoes the clips it affects.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any, Dict, List, Optional

from omegaconf import MISSING

from facedyn.data.synthetic.config import EXPRESSIONS
from facedyn.flow.encoding import FLOW_METHODS
from facedyn.flow.mask import FLOW_MASKS
from facedyn.videos.errors import PrepareError

LAYOUTS = ("auto", "patient/expression", "expression/patient")
BASELINE_MODES = ("first", "most_neutral")


def _default_expressions() -> Dict[str, List[str]]:
    # Names are matched after case folding, with spaces and hyphens read as "_".
    return {
        "eye_close": ["eye_close", "eyes_closed", "eye_closure", "close_eyes"],
        "smile": ["smile", "open_mouth_smile", "big_smile"],
        "brow_raise": ["brow_raise", "eyebrow_raise", "raise_eyebrows", "forehead"],
        "snarl": ["snarl", "nose_wrinkle", "wrinkle_nose"],
        "lip_pucker": ["lip_pucker", "pucker", "pucker_lips"],
    }


@dataclass
class GradeColumns:
    """Column names of the grading sheet (one row per patient and expression)."""

    patient: str = "patient"  # the patient (video) name, as the videos' file or folder names give it
    expression: str = "expression"  # read through the same name mapping as the video names
    dynamics: str = "dynamics"  # Sunnybrook voluntary movement, 0-5
    synkinesis: str = "synkinesis"  # 0-3


@dataclass
class SelectionConfig:
    baseline: str = "most_neutral"  # first | most_neutral | a frame index, e.g. "12"
    frames: int = 3  # expression frames per clip, around the apex
    near_apex: float = 0.8  # chosen frames move at least this share of the apex's displacement
    rest_fraction: float = 0.2  # the rest phase ends where the movement first reaches this share of the apex
    # ...but not before this many frames (a quarter of the clip at most): its noise level needs them
    min_rest: int = 8


@dataclass
class FlowConfig:
    # dis or farneback (facedyn.flow.encoding). DIS, measured on registered crops of a known warp
    # (benchmarks/bench_prepare.py): end-point error 0.61 vs 0.83 px where the face moves, half the time.
    method: str = "dis"
    register: bool = True  # cancel head motion with a similarity fitted on points expressions do not move
    # Zero the flow weaker than what two rest-phase frames show (the clip's own noise: resampling after
    # camera motion, compression); a still, clean clip has a floor of ~0 and keeps its flow as it is.
    noise_floor: bool = True
    crop_size: int = 224  # side of the face crops the flow is computed on (the synthetic render size)
    face_fill: float = 0.8  # face height / crop side, as the synthetic generator frames faces
    image_size: int = 112  # side of the saved flow image
    max_magnitude: float = 4.0  # flow (pixels at image_size) shown at full brightness, as the synthetic data
    # face: the flow outside the face (the baseline landmarks' hull widened by 0.3 inter-ocular distances,
    # feathered) is zero, since camera and background motion is not the face's (facedyn.flow.mask); none: as computed
    mask: str = "face"
    jpeg_quality: int = 90  # of the saved flow image


@dataclass
class LandmarkerConfig:
    path: Optional[str] = None  # face_landmarker.task; None: FACEDYN_LANDMARKER, the cache, or a download
    min_detection_confidence: float = 0.5  # MediaPipe's face detection score a face needs
    min_presence_confidence: float = 0.5  # MediaPipe's face presence score a face needs
    min_tracking_confidence: float = 0.5  # below it MediaPipe detects the face anew instead of tracking it
    # Also store MediaPipe's own 52 blendshape scores of each written frame (mediapipe_blendshapes.json).
    blendshapes: bool = False


@dataclass
class QualityConfig:
    min_one_face_share: float = 0.8  # a clip needs exactly one face in at least this share of its frames
    min_frames: int = 3  # frames with one face a clip needs at least


@dataclass
class PrepareConfig:
    videos: str = MISSING  # folder of clips
    out: str = MISSING  # dataset folder written (new, empty, or an earlier prepare.py output)
    grades: Optional[str] = None  # grading sheet (.csv or .xlsx); None: no label files (for prediction)
    layout: str = "auto"  # auto | patient/expression | expression/patient
    extensions: List[str] = field(default_factory=lambda: ["mp4", "avi", "mov", "mkv", "m4v", "webm"])  # of the video files read
    expressions: Dict[str, List[str]] = field(default_factory=_default_expressions)  # name: [names in files]
    grade_columns: GradeColumns = field(default_factory=GradeColumns)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    landmarker: LandmarkerConfig = field(default_factory=LandmarkerConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    workers: int = 2  # clips prepared in parallel processes; 0: one per CPU
    progress: bool = True  # progress bar over clips, shown only on a terminal (a log file gets none)


def _build(cls: type, values: Any, where: str) -> Any:
    if is_dataclass(values):
        values = asdict(values)
    if not isinstance(values, dict):
        raise PrepareError(f"{where or 'prepare settings'}: expected a mapping, got {type(values).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise PrepareError(f"unknown setting(s) {', '.join(where + k for k in unknown)}; known: {', '.join(known)}")
    kwargs = {}
    for name, value in values.items():
        default = known[name].default_factory() if callable(known[name].default_factory) else None
        kwargs[name] = _build(type(default), value, f"{where}{name}.") if is_dataclass(default) else value
    return cls(**kwargs)


def as_config(cfg: Any) -> PrepareConfig:
    """A checked PrepareConfig from itself, a Hydra/OmegaConf node or a dict; PrepareError names a bad key."""
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            cfg = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    except ImportError:
        pass
    config = cfg if isinstance(cfg, PrepareConfig) else _build(PrepareConfig, cfg, "")
    check(config)
    return config


def baseline_index(selection: SelectionConfig) -> Optional[int]:
    """The fixed baseline frame, or None for `first` / `most_neutral`."""
    mode = str(selection.baseline)
    if mode in BASELINE_MODES:
        return None
    if mode.isdigit():
        return int(mode)
    raise PrepareError(f"selection.baseline={mode!r} is not one of {', '.join(BASELINE_MODES)} or a frame index")


def check(cfg: PrepareConfig) -> None:
    """Raise PrepareError naming the first setting that makes no sense."""
    for key in ("videos", "out"):
        value = getattr(cfg, key)
        if value in (None, "", MISSING, "???"):
            raise PrepareError(f"{key} is not set: python prepare.py videos=/path/to/clips out=/path/to/dataset")
    problems = {
        "layout": cfg.layout not in LAYOUTS and f"must be one of {', '.join(LAYOUTS)}",
        "selection.frames": cfg.selection.frames < 1 and "must be at least 1",
        "selection.near_apex": not 0 < cfg.selection.near_apex <= 1 and "must be in (0, 1]",
        "selection.rest_fraction": not 0 < cfg.selection.rest_fraction < 1 and "must be in (0, 1)",
        "selection.min_rest": cfg.selection.min_rest < 1 and "must be at least 1",
        "flow.method": cfg.flow.method not in FLOW_METHODS and f"must be one of {', '.join(FLOW_METHODS)}",
        "flow.crop_size": cfg.flow.crop_size < cfg.flow.image_size and "must be at least flow.image_size",
        "flow.image_size": cfg.flow.image_size < 16 and "must be at least 16",
        "flow.face_fill": not 0 < cfg.flow.face_fill <= 1 and "must be in (0, 1]",
        "flow.max_magnitude": not cfg.flow.max_magnitude > 0 and "must be positive",
        "flow.mask": cfg.flow.mask not in FLOW_MASKS and f"must be one of {', '.join(FLOW_MASKS)}",
        "flow.jpeg_quality": not 1 <= cfg.flow.jpeg_quality <= 100 and "must be 1-100",
        "quality.min_one_face_share": not 0 < cfg.quality.min_one_face_share <= 1 and "must be in (0, 1]",
        "quality.min_frames": cfg.quality.min_frames < 1 and "must be at least 1",
        "workers": cfg.workers < 0 and "must be 0 (one per CPU) or more",
        "extensions": not cfg.extensions and "must name at least one video file extension",
    }
    for key, problem in problems.items():
        if problem:
            raise PrepareError(f"{key}={_value(cfg, key)!r} {problem}")
    baseline_index(cfg.selection)
    unknown = sorted(set(cfg.expressions) - set(EXPRESSIONS))
    if unknown or not cfg.expressions:
        raise PrepareError(f"expressions: {', '.join(unknown) or 'none given'}; "
                           f"the expressions are {', '.join(EXPRESSIONS)}")
    for name, aliases in cfg.expressions.items():
        if isinstance(aliases, str) or not all(isinstance(a, str) and a for a in aliases):
            raise PrepareError(f"expressions.{name} must be a list of names, e.g. [{name}, {name.title()}]")


def _value(cfg: PrepareConfig, dotted: str) -> Any:
    value: Any = cfg
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def register_configs() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="prepare_schema", node=PrepareConfig)
