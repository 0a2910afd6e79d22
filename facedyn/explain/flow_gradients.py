"""Integrated gradients of the flow branch on the flow image (Sundararajan et al., ICML 2017), measured
beside Grad-CAM by `python -m facedyn.explain.check`; the report draws Grad-CAM (the design notes say why).

The baseline is the black image, zero flow: a face that did not move. Each pixel's attribution, summed over
the three colour channels, is its part of the difference between the grade and that face's grade, at the
flow image's full resolution. Signed like Grad-CAM's maps: facedyn.explain.maps takes the part measured.
"""

from __future__ import annotations

import numpy as np
import torch
from captum.attr import IntegratedGradients

from facedyn.model.flow_branch import FlowBranch

STEPS = 8  # the maps rank as with 16 steps (Spearman ρ 0.99 on a default run's validation frames)
INTERNAL_BATCH = 64  # images per backward pass: bounds the memory of steps × frames


def integrated_gradients(flow: FlowBranch, images: torch.Tensor, score: int, steps: int = STEPS) -> np.ndarray:
    """(N, H, W) signed attributions of `score` (0 dynamics, 1 synkinesis) for flow-branch inputs (N, 3, H, W)
    in [0, 1]; fp32, in eval mode."""
    images = images.detach().float()
    with torch.enable_grad():
        found = IntegratedGradients(flow).attribute(images, baselines=0.0, target=score, n_steps=steps,
                                                    internal_batch_size=INTERNAL_BATCH)
    return found.detach().sum(dim=1).cpu().numpy().astype(np.float64)
