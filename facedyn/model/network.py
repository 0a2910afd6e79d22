"""The two-branch model: flow image → ResNet-18 → 2; landmarks → blendshapes → landmark head → 2; fusion → 2.

All predictions are in normalised units (each score divided by its maximum grade), so the fusion layer
can start as the plain average of the two branches and the loss weighs both scores alike.

The landmark head's variants are config (conf/model/*.yaml, schema facedyn.model.config.ModelConfig), built here:
  landmark_features        raw: the 104 blendshape scores (52 expression + 52 baseline, the seed's input);
                           paired: side-independent features (PairedFeatures)
  expression_conditioning  none | input (one-hot of the expression appended to the head's input) |
                           heads (one output layer per expression)
  landmark_hidden          0: one linear layer; >0: one hidden ReLU layer of this width
  fusion_expression        the expression's one-hot appended to the fusion layer's input too
The seed's design (model=seed: raw, none, 0, false) is exactly FC 104 → 2, with the seed's parameter names.

Inputs (`forward(batch, predict)`; `required_inputs(predict)` lists the keys a model reads):
  flow_image            (N, 3, H, W) float in [0, 1], the flow image (RGB of its HSV encoding)
  expression_landmarks  (N, 146, 2) float, landmark pixels of the expression frame
  baseline_landmarks    (N, 146, 2) float, of the neutral baseline frame
  expression_index      (N,) int64, the sample's expression as its position in model.expressions, or
                        len(model.expressions) for any other one (facedyn.data.expressions); read only
                        by models conditioned on the expression
"""

from __future__ import annotations

import logging
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from facedyn import blendshapes
from facedyn.utils.config import ConfigError
from facedyn.model.config import (PARAMETER_GROUPS, ExpressionConditioning, FusionInit, LandmarkFeatures,
                                     ModelConfig, model_config_problem)
from facedyn.landmarks import BLENDSHAPE_NAMES, NUM_BLENDSHAPES

log = logging.getLogger(__name__)
NUM_SCORES = 2  # dynamics, synkinesis
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class WeightsUnavailable(RuntimeError):
    """The configured pretrained weights could not be had and the config requires them."""


@dataclass
class FlowWeightsReport:
    pretrained: bool
    source: str


class FlowBranch(nn.Module):
    """A torchvision ResNet (model.flow.arch, ResNet-18 by design) on the optical-flow image; its output
    layer predicts the two scores."""

    def __init__(self, arch: str = "resnet18") -> None:
        super().__init__()
        self.arch = str(arch)
        from torchvision.models import get_model  # here: its import costs 2.4 s, also in processes that stop early

        self.net = get_model(self.arch, num_classes=NUM_SCORES)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, flow_image: torch.Tensor) -> torch.Tensor:
        return self.net((flow_image - self.mean) / self.std)


def load_flow_weights(branch: FlowBranch, weights: str, require: bool) -> FlowWeightsReport:
    """Load ImageNet (or file) weights into the backbone, keeping the 2-score output layer fresh."""
    if weights == "none":
        return FlowWeightsReport(False, "none")
    if weights == "imagenet":
        from torchvision.models import get_model_weights

        imagenet = get_model_weights(branch.arch).IMAGENET1K_V1
        try:
            state = imagenet.get_state_dict(progress=False)
        except (urllib.error.URLError, OSError) as exc:
            message = (
                f"{branch.arch} ImageNet weights could not be downloaded ({exc}); the flow branch TRAINS FROM "
                f"SCRATCH. To use them offline, copy {Path(imagenet.url).name} into $TORCH_HOME/hub/checkpoints "
                "(default ~/.cache/torch/hub/checkpoints), or set model.flow.weights=/path/to/state_dict.pt; "
                "set model.flow.require_weights=true to make this an error."
            )
            if require:
                raise WeightsUnavailable(message) from None
            log.warning("%s\n%s\n%s", "!" * 100, message, "!" * 100)
            return FlowWeightsReport(False, "imagenet (unavailable)")
        source = "imagenet"
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsUnavailable(f"model.flow.weights={weights}: no such file")
        state = torch.load(path, map_location="cpu", weights_only=True)
        source = str(path)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = branch.net.load_state_dict(state, strict=False)
    if unexpected or set(missing) - {"fc.weight", "fc.bias"}:
        raise WeightsUnavailable(f"{source}: not a {branch.arch} state dict ({len(missing)} missing keys, e.g. "
                                 f"{missing[:1]}; {len(unexpected)} unexpected, e.g. {unexpected[:1]})")
    return FlowWeightsReport(True, source)


def _side_pairs() -> tuple[list[int], list[int], list[int]]:
    """Indices of MediaPipe's Left/Right blendshape pairs (left, right) and of the unpaired ones."""
    left = [i for i, name in enumerate(BLENDSHAPE_NAMES)
            if name.endswith("Left") and name[:-4] + "Right" in BLENDSHAPE_NAMES]
    right = [BLENDSHAPE_NAMES.index(BLENDSHAPE_NAMES[i][:-4] + "Right") for i in left]
    unpaired = [i for i in range(NUM_BLENDSHAPES) if i not in left and i not in right]
    return left, right, unpaired


class PairedFeatures(nn.Module):
    """Features that do not depend on which side of the face is affected.

    Grades are about the weaker side, and the paralysed side may be either: for each of the 20 Left/Right
    pairs the min, max and |L − R| (the weaker side's movement, the stronger side's, the asymmetry), and
    the 12 unpaired scores as they are; of the expression frame, the baseline frame and their difference
    (expression − baseline: the movement itself, without the face's resting shape). A mirrored face gives
    the same features. No parameters.
    """

    def __init__(self) -> None:
        super().__init__()
        left, right, unpaired = _side_pairs()
        for name, idx in (("left", left), ("right", right), ("unpaired", unpaired)):
            self.register_buffer(name, torch.tensor(idx), persistent=False)
        self.size = 3 * (3 * len(left) + len(unpaired))

    def forward(self, blendshapes: torch.Tensor) -> torch.Tensor:
        expression, baseline = blendshapes[:, :NUM_BLENDSHAPES], blendshapes[:, NUM_BLENDSHAPES:]
        parts = []
        for scores in (expression, baseline, expression - baseline):
            left, right = scores[:, self.left], scores[:, self.right]
            parts += [torch.minimum(left, right), torch.maximum(left, right), (left - right).abs(),
                      scores[:, self.unpaired]]
        return torch.cat(parts, dim=1)


class FaceDynModel(nn.Module):
    """Named parameter groups (`flow`, `blendshapes`, `landmark_head`, `fusion`) are what stages train."""

    def __init__(self, cfg: ModelConfig, blendshapes_graph: Optional[Path] = None) -> None:
        """blendshapes_graph: the converted blendshape graph to build from (a run's own copy); None: the
        conversion of cfg.blendshapes.path, from the cache."""
        super().__init__()
        problem = model_config_problem(cfg)
        if problem:
            raise ConfigError(problem)
        self.flow = FlowBranch(cfg.flow.arch)
        self.share_blendshapes = cfg.blendshapes.share_weights
        # Loading may or may not draw random numbers (a converted graph vs. a cached copy); keep it from
        # shifting the seeded initialisation of the layers built after it.
        with torch.random.fork_rng(devices=[]):
            self.blendshapes = nn.ModuleDict({"expression": blendshapes.load(cfg.blendshapes.path, blendshapes_graph)})
            if not self.share_blendshapes:
                self.blendshapes["baseline"] = blendshapes.load(cfg.blendshapes.path, blendshapes_graph)
        self.expressions = tuple(cfg.expressions)
        self.expression_slots = len(self.expressions) + 1  # the last one: any other expression
        self.conditioning = str(cfg.expression_conditioning)
        self.fusion_expression = cfg.fusion_expression
        self.landmark_features = PairedFeatures() if cfg.landmark_features == LandmarkFeatures.paired else None
        features = self.landmark_features.size if self.landmark_features is not None else 2 * NUM_BLENDSHAPES
        if self.conditioning == ExpressionConditioning.input:
            features += self.expression_slots
        outputs = NUM_SCORES * (self.expression_slots if self.conditioning == ExpressionConditioning.heads else 1)
        if cfg.landmark_hidden > 0:
            self.landmark_head: nn.Module = nn.Sequential(
                nn.Linear(features, cfg.landmark_hidden), nn.ReLU(), nn.Linear(cfg.landmark_hidden, outputs)
            )
        else:
            self.landmark_head = nn.Linear(features, outputs)
        self.fusion = nn.Linear(2 * NUM_SCORES + (self.expression_slots if self.fusion_expression else 0), NUM_SCORES)
        if cfg.fusion_init == FusionInit.average:
            with torch.no_grad():
                self.fusion.weight.zero_()
                self.fusion.bias.zero_()
                for score in range(NUM_SCORES):  # inputs: [flow dyn, flow syn, landmark dyn, landmark syn, one-hot]
                    self.fusion.weight[score, score] = 0.5
                    self.fusion.weight[score, NUM_SCORES + score] = 0.5

    def uses_expression(self, predict: str) -> bool:
        """Whether the `predict` output reads the batch's expression_index."""
        return ((predict in ("landmarks", "fused") and self.conditioning != "none")
                or (predict == "fused" and self.fusion_expression))

    def required_inputs(self, predict: str = "fused") -> tuple[str, ...]:
        """The batch keys forward(batch, predict) reads (see the module docstring)."""
        keys: tuple[str, ...] = ("flow_image",) if predict in ("flow", "fused") else ()
        if predict in ("landmarks", "fused"):
            keys += ("expression_landmarks", "baseline_landmarks")
        return keys + (("expression_index",) if self.uses_expression(predict) else ())

    def parameter_groups(self) -> dict[str, nn.Module]:
        """The modules named by PARAMETER_GROUPS, the names stages train by."""
        return {name: getattr(self, name) for name in PARAMETER_GROUPS}

    def blendshape_features(self, expression: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
        baseline_model = self.blendshapes["expression" if self.share_blendshapes else "baseline"]
        return torch.cat([self.blendshapes["expression"](expression), baseline_model(baseline)], dim=1)

    def branch_outputs(self, batch: dict[str, torch.Tensor], predict: str) -> dict[str, torch.Tensor]:
        """The expensive part: the branch outputs that `predict` needs (precomputable when those are frozen):
        `flow_output` (N, 2) from `flow_image`, `blendshape_features` (N, 104) from the two landmark sets."""
        outputs: dict[str, torch.Tensor] = {}
        if predict in ("flow", "fused"):
            outputs["flow_output"] = self.flow(batch["flow_image"])
        if predict in ("landmarks", "fused"):
            outputs["blendshape_features"] = self.blendshape_features(batch["expression_landmarks"],
                                                                      batch["baseline_landmarks"])
        if self.uses_expression(predict):
            if "expression_index" not in batch:
                raise KeyError("this model is conditioned on the expression: its batch needs 'expression_index' "
                               "(facedyn.data.expressions.expression_indices(names, model.expressions))")
            outputs["expression_index"] = batch["expression_index"]
        return outputs

    def _one_hot(self, expression_index: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(expression_index.long(), self.expression_slots).to(like.dtype)

    def landmark_prediction(self, blendshapes: torch.Tensor, expression_index: torch.Tensor | None) -> torch.Tensor:
        features = self.landmark_features(blendshapes) if self.landmark_features is not None else blendshapes
        if self.conditioning == "input":
            features = torch.cat([features, self._one_hot(expression_index, features)], dim=1)
        out = self.landmark_head(features)
        if self.conditioning == "heads":  # one pair of outputs per expression: the sample's own is kept
            # gather, not indexing with arange(len(out)): an ONNX export must keep the batch size free
            chosen = expression_index.long().view(-1, 1, 1).expand(-1, 1, NUM_SCORES)
            out = out.view(-1, self.expression_slots, NUM_SCORES).gather(1, chosen).squeeze(1)
        return out

    def heads(self, outputs: dict[str, torch.Tensor], predict: str) -> torch.Tensor:
        """`predict`'s scores from branch_outputs()."""
        if predict == "flow":
            return outputs["flow_output"]
        landmarks = self.landmark_prediction(outputs["blendshape_features"], outputs.get("expression_index"))
        if predict == "landmarks":
            return landmarks
        parts = [outputs["flow_output"].float(), landmarks.float()]
        if self.fusion_expression:
            parts.append(self._one_hot(outputs["expression_index"], parts[0]))
        return self.fusion(torch.cat(parts, dim=1))

    def forward(self, batch: dict[str, torch.Tensor], predict: str = "fused") -> torch.Tensor:
        return self.heads(self.branch_outputs(batch, predict), predict)


def build_model(cfg: ModelConfig, blendshapes_graph: Optional[Path] = None) -> tuple[FaceDynModel, FlowWeightsReport]:
    model = FaceDynModel(cfg, blendshapes_graph)
    report = load_flow_weights(model.flow, cfg.flow.weights, cfg.flow.require_weights)
    return model, report
