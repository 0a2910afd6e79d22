"""Checks that the explanations mean something, on data whose answer is known.

Sanity (Adebayo et al., "Sanity checks for saliency maps", NeurIPS 2018): an explanation that still looks
the same when the model's weights are replaced by random ones explains the input, not the model. The flow
branch's maps (Grad-CAM, and integrated gradients for comparison) are recomputed after re-initialising the
ResNet cascading from the top (fc, then layer4, layer3, … down to the stem), the landmark branch's
attributions after re-initialising everything between the blendshapes and the grade (the head and the
fusion layer); each is compared with the trained model's by Spearman's rank correlation per sample. It
passes when the median correlation after full randomisation is below the stated threshold.

Localisation (synthetic data, whose labels name the paralysed side): for one-sided movements graded
dynamics ≤ 3 the healthy half moved clearly more, so a map of where the flow branch looked for the
dynamics grade should lie mostly on it; in an eye closure the movement is in the upper face, in a smile in
the lower. Per sample the share of the map's mass on that half or region, averaged; beside it the share a
uniform map would have (the region's share of the image). The face's halves are split by its midline and
its upper and lower parts by the line halfway between the eyes and the mouth corners (in the face's own
frame, facedyn.measurements.frame). The same measures on the flow image's own brightness say how far the
data let any map localise.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np
import torch
from scipy.stats import spearmanr

from facedyn.explain import blendshapes, flow_gradients, gradcam, maps
from facedyn.measurements.anatomy import COMMISSURE
from facedyn.measurements.frame import face_frame
from facedyn.model import FaceDynModel
from facedyn.model.flow_branch import FlowBranch

CASCADE = ("fc", "layer4", "layer3", "layer2", "layer1", "stem")  # Adebayo's cascading order, output first
DYNAMICS = 0
INTEGRATED_GRADIENTS = "integrated_gradients"
MOVED_HALF_MAX_DYNAMICS = 3


def randomised_flow(flow: FlowBranch, blocks: tuple[str, ...], seed: int) -> FlowBranch:
    """A copy of the flow branch with the parameters of `blocks` (names of CASCADE) drawn afresh as a new
    network's would be (BatchNorm back to its initial state: scale 1, shift 0, running statistics 0 and 1)."""
    copied = copy.deepcopy(flow)
    torch.manual_seed(seed)
    for block in blocks:
        modules = [copied.net.conv1, copied.net.bn1] if block == "stem" else [getattr(copied.net, block)]
        for module in modules:
            for layer in module.modules():
                if hasattr(layer, "reset_parameters"):
                    layer.reset_parameters()
    return copied.eval()


def randomised_head(model: FaceDynModel, seed: int) -> FaceDynModel:
    """A copy of the model with the landmark head and the fusion layer drawn afresh."""
    copied = copy.deepcopy(model)
    torch.manual_seed(seed)
    for module in (copied.landmark_head, copied.fusion):
        for layer in module.modules():
            if hasattr(layer, "reset_parameters"):
                layer.reset_parameters()
    return copied.eval()


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per sample, Spearman's rank correlation of two maps or attribution vectors (N, ...); NaN where
    either is constant (nothing to rank)."""
    out = np.full(len(a), np.nan)
    for i, (x, y) in enumerate(zip(a.reshape(len(a), -1), b.reshape(len(b), -1))):
        if np.ptp(x) > 0 and np.ptp(y) > 0:
            out[i] = spearmanr(x, y).statistic
    return out


def _summary(values: np.ndarray) -> dict:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return {"n": 0, "constant": int(len(values))}
    q1, median, q3 = np.percentile(finite, [25, 50, 75])
    return {"median": float(median), "q1": float(q1), "q3": float(q3), "mean": float(finite.mean()),
            "n": int(len(finite)), "constant": int(len(values) - len(finite))}


FlowMap = Callable[[FlowBranch, torch.Tensor], np.ndarray]  # (branch, images (N, 3, H, W)) -> signed maps (N, H, W)


def flow_maps() -> dict[str, FlowMap]:
    """The dynamics maps the check measures, by name: Grad-CAM per layer, and integrated gradients."""
    found: dict[str, FlowMap] = {layer: partial(_gradcam, layer=layer) for layer in gradcam.LAYERS}
    found[INTEGRATED_GRADIENTS] = lambda flow, images: flow_gradients.integrated_gradients(flow, images, DYNAMICS)
    return found


def _gradcam(flow: FlowBranch, images: torch.Tensor, layer: str) -> np.ndarray:
    return gradcam.cam(flow, images, DYNAMICS, layer)


def flow_sanity(flow: FlowBranch, images: torch.Tensor, flow_map: FlowMap, part: str, seed: int) -> list[dict]:
    """Per cascade step: how the dynamics map of the randomised branch ranks against the trained one's."""
    trained = maps.part(flow_map(flow, images), part)
    steps = []
    for depth in range(1, len(CASCADE) + 1):
        random = randomised_flow(flow, CASCADE[:depth], seed)
        randomised = maps.part(flow_map(random, images), part)
        steps.append({"randomised": list(CASCADE[:depth]), **_summary(spearman(trained, randomised))})
    return steps


def landmark_sanity(model: FaceDynModel, batch: dict[str, torch.Tensor], predict: str, seed: int) -> dict:
    """How the randomised head's blendshape attributions rank against the trained one's, per score."""
    trained, _ = blendshapes.attributions(model, batch, predict)
    random, _ = blendshapes.attributions(randomised_head(model, seed), batch, predict)
    return {score: _summary(spearman(trained[:, s], random[:, s])) for s, score in enumerate(("dynamics", "synkinesis"))}


@dataclass(frozen=True)
class Regions:
    """Boolean masks (N, H, W) of each sample's face parts in its flow image."""

    right: np.ndarray  # the patient's right half
    upper: np.ndarray  # above the line halfway between the eyes and the mouth corners


def regions(landmarks: np.ndarray, size: int) -> Regions:
    """Face parts of flow images (size × size) from the rest-frame landmarks in flow-image pixels."""
    frame = face_frame(landmarks)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5  # pixel centres
    grid = np.broadcast_to(np.stack([xs.ravel(), ys.ravel()], axis=1), (len(landmarks), size * size, 2))
    face = frame.coordinates(grid).reshape(len(landmarks), size, size, 2)
    mouth = frame.coordinates(landmarks[:, COMMISSURE])[..., 1].mean(axis=1)
    return Regions(face[..., 0] < 0, face[..., 1] < mouth[:, None, None] / 2)


def mass_share(heat: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per sample the share of a map's (N, H, W) mass inside its mask; NaN for an empty map."""
    total = heat.sum(axis=(1, 2))
    inside = (heat * masks).sum(axis=(1, 2))
    return np.divide(inside, total, out=np.full(len(heat), np.nan), where=total > 0)


def _share_summary(shares: np.ndarray, chance: np.ndarray) -> dict:
    finite = np.isfinite(shares)
    return {"share": float(shares[finite].mean()) if finite.any() else None,
            "median": float(np.median(shares[finite])) if finite.any() else None,
            "chance": float(chance.mean()) if len(chance) else None, "n": int(finite.sum()),
            "empty_maps": int((~finite).sum())}


def localisation(heat: np.ndarray, parts: Regions, expressions: np.ndarray, healthy_right: np.ndarray,
                 one_sided: np.ndarray) -> dict:
    """Shares of the maps' (N, H, W) mass on the moved half (samples `one_sided`, where `healthy_right`
    says which half moved) per expression and overall, on the upper face for eye closures and on the lower
    face for smiles."""
    moved = np.where(healthy_right[:, None, None], parts.right, ~parts.right)
    half = mass_share(heat, moved)
    uniform = moved.mean(axis=(1, 2))
    result = {"moved_half": _share_summary(half[one_sided], uniform[one_sided]), "moved_half_by_expression": {}}
    for expression in sorted(set(expressions[one_sided].tolist())):
        rows = one_sided & (expressions == expression)
        result["moved_half_by_expression"][expression] = _share_summary(half[rows], uniform[rows])
    for name, expression, mask in (("eye_close_upper_face", "eye_close", parts.upper),
                                   ("smile_lower_face", "smile", ~parts.upper)):
        rows = expressions == expression
        result[name] = _share_summary(mass_share(heat[rows], mask[rows]), mask[rows].mean(axis=(1, 2)))
    return result
