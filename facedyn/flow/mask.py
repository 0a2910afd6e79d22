"""The face mask of a flow image: flow outside the face is set to zero, so only the face moves in it.

Outside the face a flow image shows what the registration of the face could not cancel: a camera that
sways about a point away from the face moves background, hair and clothing, and optical flow invents motion
in dark, textureless regions from compression noise. None of it says anything about the expression.

The face is the convex hull of the sample's baseline landmarks (the 146-point subset, whose outline is
MediaPipe's face oval), widened by MARGIN_IOD inter-ocular distances; the weight is 1 up to
MARGIN_IOD - FEATHER_IOD from the hull, falls to 0 along a raised cosine over the last FEATHER_IOD and is 0
beyond. Both are fractions of the inter-ocular distance (between the eye centres, each the mean of the
eye's corners), so the mask scales with the face in every crop.

MARGIN_IOD = 0.3, a balance measured both ways (benchmarks/bench_flow_mask.py). What an expression moves
can lie beyond the oval: MediaPipe's oval ends near the hairline (mesh point 10; about 1 cm below an average
hairline on the canonical face) and at the chin, a brow raise moves the forehead, an opening jaw moves the
chin down over the neck, and a flow method spreads every moving edge over its window (a DIS patch is about
0.1 IOD in prepare.py's crops). At 0.3 the mask keeps >= 99.2 % of each expression's flow (above that of a
clip without movement) on the synthetic faces, and >= 95.7 % of a brow raise, a jaw opening and a smile
animated on two photographed faces, but 93.6 % of one brow raise whose flow DIS spreads into a dark,
textureless cap. What a swaying camera leaves lies just beyond the oval too, in hair, cap and collar: on
tests/real_clips.py's phone-like clips the flow image of the sway alone is 0.20x (Grace Hopper) and 0.01x
(astronaut) as bright as a still eye closure's at 0.3 IOD, 0.45x and 0.02x at 0.4.

FEATHER_IOD = 0.1, not a hard edge: a step from the background's flow to zero would be an edge whose
strength depends on how much the camera moved, something a network could learn instead of the face, and
JPEG rings along a step. Spread over 0.1 IOD, about one DIS patch, the mask's edge is no sharper than the
flow's own edges.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from facedyn.landmarks import LANDMARK_SUBSET_IDXS
from facedyn.utils.config import Choice



class FlowMask(Choice):
    face = "face"  # flow outside the widened hull of the baseline landmarks is zero
    none = "none"  # the flow as computed


FLOW_MASKS = tuple(FlowMask.names())
MARGIN_IOD = 0.3  # the hull is widened by this many inter-ocular distances (the weight is 0 beyond)
FEATHER_IOD = 0.1  # the outer part of the margin over which the weight falls from 1 to 0
EYE_CORNERS = ((33, 133), (362, 263))  # mesh points: outer/inner corners of the subject's right and left eye
_EYE_CORNERS_SUBSET = tuple(tuple(LANDMARK_SUBSET_IDXS.index(i) for i in pair) for pair in EYE_CORNERS)


def interocular_distance(landmarks: np.ndarray) -> float:
    """Distance between the eye centres of a 146-point landmark set (the mean of each eye's corners)."""
    right, left = (np.asarray(landmarks, np.float64)[list(pair)].mean(axis=0) for pair in _EYE_CORNERS_SUBSET)
    return float(np.linalg.norm(right - left))


def _hull(points: np.ndarray) -> np.ndarray:
    """Vertices of the convex hull of 2-D points, ordered so that the inside is left of each edge (y down)."""
    hull = cv2.convexHull(np.asarray(points, np.float32)).reshape(-1, 2).astype(np.float64)
    following = np.roll(hull, -1, axis=0)
    twice_area = np.sum(hull[:, 0] * following[:, 1] - following[:, 0] * hull[:, 1])  # shoelace, signed
    return hull if twice_area >= 0 else hull[::-1]


def distance_to_hull(points: np.ndarray, size: int) -> np.ndarray:
    """(size, size) float32 distance of each pixel centre (x + 0.5, y + 0.5) to the convex hull of `points`
    (image pixels, the image spanning 0..size); 0 inside the hull."""
    hull = _hull(points).astype(np.float32)
    grid = pixel_grid(size)
    px, py = grid[..., 0], grid[..., 1]
    nearest2 = np.full((size, size), np.inf, np.float32)
    inside = np.ones((size, size), bool)
    for (x0, y0), (x1, y1) in zip(hull, np.roll(hull, -1, axis=0)):  # one edge at a time: small temporaries
        ex, ey = x1 - x0, y1 - y0
        rx, ry = px - x0, py - y0
        along = np.clip((rx * ex + ry * ey) / max(ex * ex + ey * ey, 1e-12), 0.0, 1.0)
        np.minimum(nearest2, (rx - along * ex) ** 2 + (ry - along * ey) ** 2, out=nearest2)
        inside &= ex * ry - ey * rx >= 0  # the inside is left of every edge
    return np.where(inside & (len(hull) >= 3), 0.0, np.sqrt(nearest2)).astype(np.float32)


@lru_cache(maxsize=4)
def pixel_grid(size: int) -> np.ndarray:
    """(size, size, 2) float32 (x, y) of each pixel's centre; the image spans 0..size. Shared: do not modify."""
    centres = np.arange(size, dtype=np.float32) + 0.5
    grid = np.stack(np.meshgrid(centres, centres), axis=-1)
    grid.flags.writeable = False
    return grid


def face_weight(landmarks: np.ndarray, size: int, margin_iod: float = MARGIN_IOD,
                feather_iod: float = FEATHER_IOD) -> np.ndarray:
    """(size, size) float32 weight of a size x size flow image: 1 on the face, 0 beyond the widened hull.

    `landmarks`: the sample's 146 baseline landmarks in the flow image's pixels (the image spanning 0..size).
    """
    iod = interocular_distance(landmarks)
    margin, feather = margin_iod * iod, feather_iod * iod
    beyond = (distance_to_hull(landmarks, size) - (margin - feather)) / max(feather, 1e-6)
    return (0.5 + 0.5 * np.cos(np.pi * np.clip(beyond, 0.0, 1.0))).astype(np.float32)


def mask_flow(flow: np.ndarray, landmarks: np.ndarray, mask: str) -> np.ndarray:
    """`flow` (size, size, 2) under the flow mask `mask` (one of FLOW_MASKS); landmarks as face_weight's."""
    if mask not in FLOW_MASKS:
        raise ValueError(f"unknown flow mask {mask!r}; choose one of {', '.join(FLOW_MASKS)}")
    if mask == "none":
        return flow
    return flow * face_weight(landmarks, flow.shape[0])[..., None]
