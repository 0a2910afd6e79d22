"""The flow branch: a torchvision ResNet (model.flow.arch, ResNet-18 by design) on the optical-flow image,
whose output layer predicts the two scores, and the pretrained weights it may start from."""

from __future__ import annotations

import logging
import urllib.error
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

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
