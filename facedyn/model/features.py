"""Landmark-branch features computed from the blendshape scores (model.landmark_features=paired)."""

from __future__ import annotations

import torch
from torch import nn

from facedyn.landmarks import BLENDSHAPE_NAMES, NUM_BLENDSHAPES


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
