"""Explanations of single frames for the report: the flow branch's Grad-CAM and the landmark branch's top
blendshapes, per score, computed in fp32 whatever precision the grades were predicted in."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from facedyn.data.samples import Samples
from facedyn.explain import blendshapes, gradcam
from facedyn.inference.predictor import BATCH_KEYS, batch_arrays
from facedyn.metrics import SCORES
from facedyn.model import FaceDynModel

CHUNK = 32  # frames per pass: bounds the memory of the backward passes


@dataclass(frozen=True)
class FrameExplanation:
    cam: Optional[np.ndarray]  # (2, H, W) signed Grad-CAM per score; None: the output has no flow branch
    contributions: Optional[tuple[list[blendshapes.Contribution], ...]]  # per score; None: no landmark branch


def model_batch(model: FaceDynModel, predict: str, samples: Samples, rows: np.ndarray) -> dict[str, torch.Tensor]:
    device = next(model.parameters()).device
    keys = [key for key in BATCH_KEYS if key in model.required_inputs(predict)]
    arrays = batch_arrays(keys, model.expressions, samples.flow[rows], samples.expression_landmarks[rows],
                          samples.baseline_landmarks[rows], samples.expression[rows])
    return {key: torch.from_numpy(array).to(device) for key, array in arrays.items()}


def explain_frames(model: FaceDynModel, predict: str, samples: Samples, rows: Sequence[int],
                   layer: str = gradcam.DEFAULT_LAYER) -> tuple[dict[int, FrameExplanation], float]:
    """Explanations of the sample `rows` (the frames a report shows) and the seconds they took."""
    started = time.perf_counter()
    model.eval()
    found: dict[int, FrameExplanation] = {}
    rows = np.asarray(rows, dtype=np.int64)
    for start in range(0, len(rows), CHUNK):
        part = rows[start:start + CHUNK]
        batch = model_batch(model, predict, samples, part)
        cams = None
        if predict in ("flow", "fused"):
            cams = np.stack([gradcam.cam(model.flow, batch["flow_image"], s, layer) for s in range(len(SCORES))], 1)
        contributions = None
        if predict in ("landmarks", "fused"):
            attributions, values = blendshapes.attributions(model, batch, predict)
            contributions = [tuple(blendshapes.top_contributions(attributions[i, s], values[i])
                                   for s in range(len(SCORES))) for i in range(len(part))]
        for i, row in enumerate(part):
            found[int(row)] = FrameExplanation(None if cams is None else cams[i],
                                               None if contributions is None else contributions[i])
    return found, time.perf_counter() - started
