"""The two-branch model: flow image → ResNet-18 → 2; landmarks → blendshapes → FC → 2; fusion 4 → 2.

All predictions are in normalised units (each score divided by its maximum grade), so the fusion layer
can start as the plain average of the two branches and the loss weighs both scores alike.
"""

from __future__ import annotations

import logging
import urllib.error
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision.models import ResNet18_Weights, resnet18

from facedyn import blendshapes
from facedyn.config import ModelConfig
from facedyn.landmarks import NUM_BLENDSHAPES

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
    """ResNet-18 on the optical-flow image; its output layer predicts the two scores."""

    def __init__(self) -> None:
        super().__init__()
        self.net = resnet18(num_classes=NUM_SCORES)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, flow: torch.Tensor) -> torch.Tensor:
        return self.net((flow - self.mean) / self.std)


def load_flow_weights(branch: FlowBranch, weights: str, require: bool) -> FlowWeightsReport:
    """Load ImageNet (or file) weights into the backbone, keeping the 2-score output layer fresh."""
    if weights == "none":
        return FlowWeightsReport(False, "none")
    if weights == "imagenet":
        try:
            state = ResNet18_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
        except (urllib.error.URLError, OSError) as exc:
            message = (
                f"ResNet-18 ImageNet weights could not be downloaded ({exc}); the flow branch TRAINS FROM "
                "SCRATCH. To use them offline, copy resnet18-f37072fd.pth into $TORCH_HOME/hub/checkpoints "
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
        raise WeightsUnavailable(f"{source}: not a ResNet-18 state dict (missing {missing}, unexpected {unexpected})")
    return FlowWeightsReport(True, source)


class FaceDynModel(nn.Module):
    """Named parameter groups (`flow`, `blendshapes`, `landmark_head`, `fusion`) are what stages train."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.flow = FlowBranch()
        self.share_blendshapes = cfg.blendshapes.share_weights
        # Loading may or may not draw random numbers (a converted graph vs. a cached copy); keep it from
        # shifting the seeded initialisation of the layers built after it.
        with torch.random.fork_rng(devices=[]):
            self.blendshapes = nn.ModuleDict({"expression": blendshapes.load(cfg.blendshapes.path)})
            if not self.share_blendshapes:
                self.blendshapes["baseline"] = blendshapes.load(cfg.blendshapes.path)
        features = 2 * NUM_BLENDSHAPES
        if cfg.landmark_hidden > 0:
            self.landmark_head: nn.Module = nn.Sequential(
                nn.Linear(features, cfg.landmark_hidden), nn.ReLU(), nn.Linear(cfg.landmark_hidden, NUM_SCORES)
            )
        else:
            self.landmark_head = nn.Linear(features, NUM_SCORES)
        self.fusion = nn.Linear(2 * NUM_SCORES, NUM_SCORES)
        if cfg.fusion_init == "average":
            with torch.no_grad():
                self.fusion.weight.zero_()
                self.fusion.bias.zero_()
                for score in range(NUM_SCORES):  # inputs: [flow dyn, flow syn, landmark dyn, landmark syn]
                    self.fusion.weight[score, score] = 0.5
                    self.fusion.weight[score, NUM_SCORES + score] = 0.5
        elif cfg.fusion_init != "random":
            raise ValueError(f"model.fusion_init must be average or random, not {cfg.fusion_init!r}")

    def parameter_groups(self) -> dict[str, nn.Module]:
        return {"flow": self.flow, "blendshapes": self.blendshapes,
                "landmark_head": self.landmark_head, "fusion": self.fusion}

    def blendshape_features(self, expression: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
        baseline_model = self.blendshapes["expression" if self.share_blendshapes else "baseline"]
        return torch.cat([self.blendshapes["expression"](expression), baseline_model(baseline)], dim=1)

    def branch_inputs(self, batch: dict[str, torch.Tensor], predict: str) -> dict[str, torch.Tensor]:
        """The expensive part: the branch outputs that `predict` needs (cacheable when those are frozen)."""
        inputs: dict[str, torch.Tensor] = {}
        if predict in ("flow", "fused"):
            inputs["flow"] = self.flow(batch["flow"])
        if predict in ("landmarks", "fused"):
            inputs["blendshapes"] = self.blendshape_features(batch["expression_landmarks"], batch["baseline_landmarks"])
        return inputs

    def heads(self, inputs: dict[str, torch.Tensor], predict: str) -> torch.Tensor:
        if predict == "flow":
            return inputs["flow"]
        landmarks = self.landmark_head(inputs["blendshapes"])
        if predict == "landmarks":
            return landmarks
        return self.fusion(torch.cat([inputs["flow"].float(), landmarks.float()], dim=1))

    def forward(self, batch: dict[str, torch.Tensor], predict: str = "fused") -> torch.Tensor:
        return self.heads(self.branch_inputs(batch, predict), predict)


def build_model(cfg: ModelConfig) -> tuple[FaceDynModel, FlowWeightsReport]:
    model = FaceDynModel(cfg)
    report = load_flow_weights(model.flow, cfg.flow.weights, cfg.flow.require_weights)
    return model, report
