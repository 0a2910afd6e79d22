"""Where the flow branch looked: Grad-CAM (Selvaraju et al., ICCV 2017) of the ResNet on the flow image.

captum's LayerGradCam does the work (the `grad-cam` package would pull in opencv-python, which clashes with
the opencv-contrib-python MediaPipe needs). Per score (dynamics, synkinesis) the flow branch's output is
differentiated with respect to a residual stage's activations; their channels, weighted by the mean
gradient, are summed into a coarse map that is upsampled bilinearly to the flow image.

The scores are grades, not classes, so the map has a sign: positive where the flow raised the grade,
negative where it lowered it. `cam` keeps the sign; facedyn.explain.maps takes the part the report draws.
"""

from __future__ import annotations

import numpy as np
import torch
from captum.attr import LayerAttribution, LayerGradCam

from facedyn.model.flow_branch import FlowBranch

LAYERS = ("layer3", "layer4")  # 7×7 and 4×4 cells on a 112-pixel flow image
DEFAULT_LAYER = "layer4"


def cam(flow: FlowBranch, images: torch.Tensor, score: int, layer: str = DEFAULT_LAYER) -> np.ndarray:
    """(N, H, W) signed Grad-CAM of `score` (0 dynamics, 1 synkinesis) for flow-branch inputs (N, 3, H, W)
    in [0, 1], at the size of the images; fp32, in eval mode."""
    if layer not in LAYERS:
        raise ValueError(f"layer {layer!r} is not one of {LAYERS}")
    explainer = LayerGradCam(flow, getattr(flow.net, layer))
    images = images.detach().float().requires_grad_(True)
    with torch.enable_grad():
        coarse = explainer.attribute(images, target=score, relu_attributions=False)
    fine = LayerAttribution.interpolate(coarse.detach(), tuple(images.shape[-2:]), interpolate_mode="bilinear")
    return fine[:, 0].cpu().numpy().astype(np.float64)
