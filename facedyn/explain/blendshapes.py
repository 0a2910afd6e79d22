"""What the landmark branch used: integrated gradients (Sundararajan et al., ICML 2017; captum) of each
predicted score with respect to the 2 × 52 blendshape scores the branch reads (expression frame, then rest).

The reference input is all blendshapes at 0 (a face showing none of them), so the attributions of a sample
add up, in grades, to its score minus the score with every blendshape at 0; the flow branch's output and
the expression stay as they are. Left/Right pairs (MediaPipe's names, the patient's own sides) are shown
together: a pair's contribution is the sum over its four inputs (each side at rest and at the expression).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from captum.attr import IntegratedGradients

from facedyn.landmarks import BLENDSHAPE_NAMES, NUM_BLENDSHAPES
from facedyn.metrics import SCALE
from facedyn.model import FaceDynModel

STEPS = 64  # Gauss–Legendre steps: the sums match the score differences within 1e-3 grades (tested)
TOP = 5


def _groups() -> list[tuple[str, tuple[int, ...]]]:
    """(shown name, blendshape indices) per pair (Left, Right) or single blendshape, in MediaPipe's order."""
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(BLENDSHAPE_NAMES):
        base = name[:-4] if name.endswith("Left") else name[:-5] if name.endswith("Right") else name
        groups.setdefault(base, []).append(i)
    return [(base, tuple(sorted(idx, key=lambda i: not BLENDSHAPE_NAMES[i].endswith("Left"))))
            for base, idx in groups.items()]


GROUPS = _groups()


@dataclass(frozen=True)
class Contribution:
    names: tuple[str, ...]  # MediaPipe's names: (…Left, …Right) for a pair, else one name
    grades: float  # contribution to the score, in grades (+ raised it)
    rest: tuple[float, ...]  # the blendshape values at rest, as `names`
    expression: tuple[float, ...]  # at the expression


def attributions(model: FaceDynModel, batch: dict[str, torch.Tensor], predict: str, steps: int = STEPS
                 ) -> tuple[np.ndarray, np.ndarray]:
    """((N, 2, 104) attributions in grades per score, (N, 104) blendshape values) for a model batch."""
    with torch.no_grad():
        outputs = model.branch_outputs(batch, predict)
    features = outputs["blendshape_features"].float()
    scale = torch.as_tensor(SCALE, dtype=torch.float32)

    others = [key for key in outputs if key != "blendshape_features"]  # flow output, expression index

    def scores(blendshapes: torch.Tensor, *fixed: torch.Tensor) -> torch.Tensor:
        held = dict(zip(others, fixed))  # captum repeats them for every step of the path
        return model.heads({**held, "blendshape_features": blendshapes}, predict).float() * scale

    explainer = IntegratedGradients(scores)
    result = []
    for score in range(len(SCALE)):
        with torch.enable_grad():
            result.append(explainer.attribute(features, baselines=torch.zeros_like(features), target=score,
                                              additional_forward_args=tuple(outputs[k] for k in others) or None,
                                              n_steps=steps).detach())
    return torch.stack(result, dim=1).numpy().astype(np.float64), features.numpy().astype(np.float64)


def top_contributions(attribution: np.ndarray, values: np.ndarray, top: int = TOP) -> list[Contribution]:
    """The `top` pairs or blendshapes with the largest |contribution| to one score of one sample, from its
    (104,) attributions and (104,) values (expression frame first)."""
    rest, expression = values[NUM_BLENDSHAPES:], values[:NUM_BLENDSHAPES]
    found = []
    for _, idx in GROUPS:
        total = float(attribution[list(idx)].sum() + attribution[[NUM_BLENDSHAPES + i for i in idx]].sum())
        found.append(Contribution(tuple(BLENDSHAPE_NAMES[i] for i in idx), total,
                                  tuple(float(rest[i]) for i in idx), tuple(float(expression[i]) for i in idx)))
    return sorted(found, key=lambda c: -abs(c.grades))[:top]
