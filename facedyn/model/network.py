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

from pathlib import Path
from typing import Optional

import torch
from torch import nn

from facedyn import blendshapes
from facedyn.landmarks import NUM_BLENDSHAPES
from facedyn.model.config import (PARAMETER_GROUPS, ExpressionConditioning, FusionInit, LandmarkFeatures, ModelConfig,
                                  model_config_problem)
from facedyn.model.features import PairedFeatures
from facedyn.model.flow_branch import NUM_SCORES, FlowBranch, FlowWeightsReport, load_flow_weights
from facedyn.utils.config import ConfigError


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
