"""Data settings: dataclasses used as the Hydra structured-config schema of `conf/data/*.yaml`.

Every setting, its default and its meaning live here; the YAML files hold only what differs (the kind of
dataset). Every field has a default, so OmegaConf rejects a misspelt key in YAML or on the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from facedyn.data.synthetic.config import SyntheticConfig
from facedyn.flow.mask import FlowMask
from facedyn.utils.config import Choice


class DataKind(Choice):
    synthetic = "synthetic"  # facedyn.data.synthetic's faces, generated once into the cache
    folder = "folder"  # a dataset in the clinic's layout under data.root


class BadSamplePolicy(Choice):
    skip = "skip"
    fail = "fail"


class LandmarkUnits(Choice):
    pixels = "pixels"
    normalised = "normalised"


class HeadMotionModel(Choice):
    similarity = "similarity"
    affine = "affine"


class FlowCrop(Choice):
    frame = "frame"  # the flow image shows the landmarks' whole video frame
    face_box = "face_box"  # a square box around the face, estimated from the data


@dataclass
class LabelConfig:
    """Where the labels sit in expression_g_column.json and which values the loss ignores.

    A key may be a dotted path into nested objects ("grades.dynamics"). A label equal to an ignored
    value is kept (its sample still trains the other head) but masked out of the loss, even when it
    lies outside the valid range (e.g. -1 for "not graded").
    """

    dynamics_key: str = "dynamics"  # key (or dotted path) of the dynamics grade, 0-5
    synkinesis_key: str = "synkinesis"  # key (or dotted path) of the synkinesis grade, 0-3
    dynamics_ignore: List[int] = field(default_factory=list)  # dynamics values that mean "not graded"
    synkinesis_ignore: List[int] = field(default_factory=list)  # synkinesis values that mean "not graded"


@dataclass
class BadSampleConfig:
    """skip: leave bad samples out and list them in bad_samples.csv; fail: stop when any is bad.

    Either way the run stops when more than max_fraction of the samples are bad.
    """

    policy: BadSamplePolicy = BadSamplePolicy.skip  # skip: leave bad samples out (listed); fail: stop at the first
    max_fraction: float = 0.05  # the run stops when more than this share of the samples is bad


@dataclass
class LandmarkUnitsConfig:
    """Units of the landmark .npy files: "pixels" of the video frame, or "normalised" to [0, 1].

    Normalised landmarks are converted to pixels with image_width/image_height (both required then).
    For pixels, image_width/image_height (the video frame size) are optional; when given, shifts,
    scales and flips of the augmentation use that frame, otherwise each sample's landmark bounding box.
    """

    units: LandmarkUnits = LandmarkUnits.pixels  # pixels of the video frame, or normalised to [0, 1]
    image_width: Optional[int] = None  # the video frame's width in pixels (required for normalised)
    image_height: Optional[int] = None  # the video frame's height in pixels (required for normalised)


@dataclass
class AugmentConfig:
    """Training-time augmentation; validation data is never augmented.

    shift: largest shift as a fraction of the image size (image and landmarks move by the same fraction);
    scale: largest relative zoom (0.05 = 0.95..1.05) about the image centre; brightness: largest relative
    change of the flow magnitude (V); noise_std: Gaussian noise on the [0, 1] flow image;
    landmark_jitter: Gaussian noise on each landmark as a fraction of the face's bounding-box size;
    hflip_p: probability of a horizontal mirror (flow directions and left/right landmarks swapped);
    head_motion_deg / head_motion_shift / head_motion_scale: largest in-plane rotation (degrees), shift
    (fraction of the image size) and relative scale change of a random head motion between the baseline
    and the expression frame: its motion field is added to the flow on the face and the expression
    landmarks move with it (facedyn.data.augment.HeadMotion); all 0: off.
    """

    enabled: bool = True  # false: no augmentation in any stage
    seed: int = 0  # seeds the augmentation's draws (per seed, epoch and sample)
    shift: float = 0.05
    scale: float = 0.05
    brightness: float = 0.1
    noise_std: float = 0.01
    landmark_jitter: float = 0.002
    hflip_p: float = 0.5
    head_motion_deg: float = 0.0
    head_motion_shift: float = 0.0
    head_motion_scale: float = 0.0


@dataclass
class FlowConfig:
    """How flow images are read (facedyn.data.head_motion).

    compensate_head_motion: fit the baseline -> expression head motion on landmarks that expressions do not
    move and subtract its motion field from each flow image (once, when the dataset is decoded; the cache
    keeps the result). For recordings nobody registered; data prepared by prepare.py is registered already.
    head_motion_model: similarity | affine. head_motion_refine: then also take out the similarity motion
    most of the face's remaining flow shares (landmark jitter limits the landmark fit). crop: how the flow
    image lies in the landmarks' frame, `frame` (the whole frame; needs data.landmarks.image_width/height)
    or `face_box` (a box around the face, estimated from the data); null: frame for the synthetic data,
    face_box for a folder. max_magnitude: flow pixels (at image_size) the images show at full brightness;
    null: the synthetic generator's (required for a folder). mask: the face mask of the compensated images
    (facedyn.flow.mask), face (flow outside the face is zero) or none; null: as the images were made
    (data.synthetic.flow_mask for the synthetic data, face for a folder: prepare.py's default); without
    compensation the images are read as they are and it must stay null.
    """

    compensate_head_motion: bool = False
    head_motion_model: HeadMotionModel = HeadMotionModel.similarity
    head_motion_refine: bool = True
    crop: Optional[FlowCrop] = None
    max_magnitude: Optional[float] = None
    mask: Optional[FlowMask] = None


@dataclass
class DataConfig:
    kind: DataKind = DataKind.synthetic
    root: Optional[str] = None  # folder: the dataset's root (required); synthetic: unused
    expressions: Optional[List[str]] = None  # None: every expression folder under root
    image_size: int = 112  # side of the flow images the model reads (pixels)
    resize_flow: bool = True  # resize flow images of another size (with a warning) instead of rejecting them
    labels: LabelConfig = field(default_factory=LabelConfig)
    bad_samples: BadSampleConfig = field(default_factory=BadSampleConfig)
    landmarks: LandmarkUnitsConfig = field(default_factory=LandmarkUnitsConfig)
    val_fraction: float = 0.2  # share of the videos held out for validation (folds: 0)
    split_seed: int = 0  # seeds the split by video
    folds: int = 0  # 0: one train/validation split by val_fraction; n >= 2: n-fold cross-validation
    fold: int = 0  # which of the n folds is the validation side, 0..n-1
    cache: bool = True  # keep the decoded dataset in one memory-mapped file set, rebuilt when the data change
    cache_dir: Optional[str] = None  # default: <facedyn cache dir>/datasets
    flow: FlowConfig = field(default_factory=FlowConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    batch_size: int = 32  # training batch size (stages.s<s>.batch_size overrides it per stage)
    num_workers: Optional[int] = None  # null: auto (facedyn.data.dataset.loader_workers)
    prefetch_batches: int = 4  # batches loaded ahead in a background thread; 0: load in the training loop
    # Keep the decoded samples in the training device's memory and augment there (facedyn.data.resident);
    # null: on a CUDA device, unless the head-motion augmentation is on (it has no device version).
    on_device: Optional[bool] = None
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
