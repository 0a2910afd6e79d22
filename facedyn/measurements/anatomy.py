"""Where the measured features are among the 146 landmarks the blendshape model reads.

Mesh point numbers are MediaPipe's face mesh (478 points, the iris 468–477); each is turned into its
position in facedyn.landmarks.LANDMARK_SUBSET_IDXS, the order of every landmark file. "right" and "left"
are the patient's own sides, as MediaPipe's mesh names them (point 33 is the right eye's outer corner):
the patient's right is the image's left in a recording that is not mirrored.
"""

from __future__ import annotations

import numpy as np

from facedyn.landmarks import LANDMARK_SUBSET_IDXS

SIDES = ("right", "left")


def subset_positions(mesh_points: tuple[int, ...]) -> np.ndarray:
    """Positions of mesh points among the 146 (a ValueError names a point the subset lacks)."""
    missing = [p for p in mesh_points if p not in LANDMARK_SUBSET_IDXS]
    if missing:
        raise ValueError(f"mesh point(s) {missing} are not among the blendshape model's 146 landmarks")
    return np.array([LANDMARK_SUBSET_IDXS.index(p) for p in mesh_points])


def _per_side(right: tuple[int, ...], left: tuple[int, ...]) -> np.ndarray:
    """(2, K) subset positions, row 0 the right side, row 1 the left."""
    return np.stack([subset_positions(right), subset_positions(left)])


# Eye corners (outer, inner): they stay put when the lids move, so they fix the face's frame.
EYE_CORNERS = _per_side((33, 133), (263, 362))
# Upper and lower lid margins, corner to corner.
UPPER_LID = _per_side((33, 246, 161, 160, 159, 158, 157, 173, 133), (263, 466, 388, 387, 386, 385, 384, 398, 362))
LOWER_LID = _per_side((33, 7, 163, 144, 145, 153, 154, 155, 133), (263, 249, 390, 373, 374, 380, 381, 382, 362))
# The brows' upper border, lateral to medial.
BROW_TOP = _per_side((70, 63, 105, 66, 107), (300, 293, 334, 296, 336))
# Oral commissures (mouth corners).
COMMISSURE = subset_positions((61, 291))
# The lower lip's outer border, from the right commissure to the left.
LOWER_LIP = subset_positions((61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291))
# Iris (MediaPipe's refined landmarks): centre, then four points on its rim in opposite pairs (1, 3), (2, 4).
IRIS = _per_side((468, 469, 470, 471, 472), (473, 474, 475, 476, 477))
