"""What the model is made of, as config: its schema (conf/model/*.yaml) and the names it declares.

The schema's defaults are the default model (the `paired_expression` landmark head); conf/model/<name>.yaml
holds only how a variant differs. PARAMETER_GROUPS, HEAD_GROUPS and the outputs (`Predict`) are the
model's own vocabulary: stage configs are checked against them before any data or weights load, and
FaceDynModel builds exactly these groups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from facedyn.data.expressions import SUNNYBROOK_EXPRESSIONS
from facedyn.utils.config import Choice

PARAMETER_GROUPS: tuple[str, ...] = ("flow", "blendshapes", "landmark_head", "fusion")
# The groups that act on branch outputs only: a stage training nothing else can precompute the branches.
HEAD_GROUPS: tuple[str, ...] = ("landmark_head", "fusion")


class Predict(Choice):
    """The model's outputs: which prediction a stage's loss is computed on."""

    flow = "flow"
    landmarks = "landmarks"
    fused = "fused"


class FlowArch(Choice):
    resnet18 = "resnet18"
    resnet34 = "resnet34"
    resnet50 = "resnet50"


class FusionInit(Choice):
    average = "average"  # start as the mean of the two branch predictions
    random = "random"


class LandmarkFeatures(Choice):
    raw = "raw"  # the 104 blendshape scores (52 of the expression frame + 52 of the baseline frame)
    paired = "paired"  # side-independent features of the Left/Right pairs (facedyn.model.features.PairedFeatures)


class ExpressionConditioning(Choice):
    none = "none"
    input = "input"  # the expression's one-hot appended to the landmark head's input
    heads = "heads"  # one output layer per expression; the sample's own is used


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
    landmark_features: LandmarkFeatures = LandmarkFeatures.paired  # input of the landmark head
    expression_conditioning: ExpressionConditioning = ExpressionConditioning.heads  # how the head sees the expression
    landmark_hidden: int = 0  # 0: one linear layer; >0: one hidden ReLU layer of this width
    fusion_init: FusionInit = FusionInit.average  # the fusion layer's starting weights
    fusion_expression: bool = True  # the expression's one-hot as an input of the fusion layer too
    # Vocabulary of the expression index (its order is part of a trained model); other folders share one slot.
    expressions: List[str] = field(default_factory=lambda: list(SUNNYBROOK_EXPRESSIONS))


def model_config_problem(cfg: ModelConfig) -> Optional[str]:
    """Why `cfg` (a model node, possibly read without the schema) cannot build a model, in one line; None if it can."""
    for key, value, choices in (("landmark_features", cfg.landmark_features, LandmarkFeatures),
                                ("expression_conditioning", cfg.expression_conditioning, ExpressionConditioning),
                                ("fusion_init", cfg.fusion_init, FusionInit), ("flow.arch", cfg.flow.arch, FlowArch)):
        if str(value) not in choices.names():
            return f"model.{key}={value!r} is not one of: {', '.join(choices.names())}"
    if cfg.landmark_hidden < 0:
        return f"model.landmark_hidden={cfg.landmark_hidden} must not be negative"
    if len(set(cfg.expressions)) != len(cfg.expressions):
        return f"model.expressions lists a name twice: {list(cfg.expressions)}"
    return None
