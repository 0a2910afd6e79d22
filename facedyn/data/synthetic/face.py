"""Subjects' faces: the canonical mesh with per-subject shape, posed and projected into a frame.

Canonical coordinates are MediaPipe's: cm, x towards the subject's left, y up, z towards the camera.
Frames use image coordinates: x right, y down (pixels), so the subject's right eye is on the left.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facedyn.landmarks import LANDMARK_SUBSET_IDXS

# Eye contours of MediaPipe's mesh: outer corner, upper lid, inner corner, lower lid.
RIGHT_EYE_CORNERS = (33, 133)
RIGHT_EYE_UPPER = (246, 161, 160, 159, 158, 157, 173)
RIGHT_EYE_LOWER = (7, 163, 144, 145, 153, 154, 155)
LEFT_EYE_CORNERS = (263, 362)
LEFT_EYE_UPPER = (466, 388, 387, 386, 385, 384, 398)
LEFT_EYE_LOWER = (249, 390, 373, 374, 380, 381, 382)
# Iris size and height relative to the corner-to-corner eye width, as in MediaPipe's portrait test vector.
IRIS_RADIUS_PER_EYE_WIDTH = 0.23
IRIS_RAISE_PER_EYE_WIDTH = 0.05


@dataclass(frozen=True)
class Pose:
    yaw_deg: float
    pitch_deg: float
    roll_deg: float
    scale: float  # pixels per cm
    center: tuple[float, float]  # image position of the canonical origin

    def moved(self, rng: np.random.Generator, rotation_sd: float, shift_sd: float) -> "Pose":
        """The same head a moment later: slightly rotated and shifted."""
        yaw, pitch, roll = rng.normal(0.0, rotation_sd, 3)
        dx, dy = rng.normal(0.0, shift_sd, 2)
        return Pose(self.yaw_deg + yaw, self.pitch_deg + pitch, self.roll_deg + roll, self.scale,
                    (self.center[0] + dx, self.center[1] + dy))


def rotation_matrix(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    yaw, pitch, roll = np.radians([yaw_deg, pitch_deg, roll_deg])
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    about_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    about_x = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    about_z = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return about_z @ about_x @ about_y


def project(vertices: np.ndarray, pose: Pose) -> np.ndarray:
    """(N, 3) canonical points -> (N, 3) image x, y (pixels) and depth (larger = nearer the camera).

    Weak perspective: a face crop is far from the camera compared with the face's depth.
    """
    rotated = vertices @ rotation_matrix(pose.yaw_deg, pose.pitch_deg, pose.roll_deg).T
    out = np.empty_like(rotated)
    out[:, 0] = pose.center[0] + pose.scale * rotated[:, 0]
    out[:, 1] = pose.center[1] - pose.scale * rotated[:, 1]
    out[:, 2] = rotated[:, 2]
    return out


def sample_shape(canonical: np.ndarray, rng: np.random.Generator, variation: float) -> np.ndarray:
    """A subject's neutral face: the canonical mesh with smooth, nearly symmetric deformations."""
    vertices = canonical * (1.0 + variation * rng.normal(0.0, [0.05, 0.05, 0.07]))
    mirror = np.array([-1.0, 1.0, 1.0])
    for _ in range(6):
        centre = canonical[rng.integers(len(canonical))]
        radius = rng.uniform(2.0, 4.0)
        push = variation * rng.normal(0.0, 0.15, 3)
        asymmetry = rng.uniform(0.8, 1.2)
        for c, d in ((centre, push), (centre * mirror, push * mirror * asymmetry)):
            weight = np.exp(-np.sum((canonical - c) ** 2, axis=1) / (2 * radius**2))
            vertices = vertices + weight[:, None] * d
    return vertices


def sample_pose(rng: np.random.Generator, render_size: int, max_yaw: float, max_pitch: float,
                max_roll: float) -> Pose:
    """Head pose and framing of a face crop: the face fills about 80 % of the frame's height."""
    face_height_cm = 17.7
    scale = rng.uniform(0.72, 0.86) * render_size / face_height_cm
    centre = render_size / 2 + rng.normal(0.0, 0.025 * render_size, 2) + np.array([0.0, -0.05 * scale])
    return Pose(rng.uniform(-max_yaw, max_yaw), rng.uniform(-max_pitch, max_pitch),
                rng.uniform(-max_roll, max_roll), float(scale), (float(centre[0]), float(centre[1])))


def _iris(image_xy: np.ndarray, corners: tuple[int, int], gaze: np.ndarray) -> np.ndarray:
    """Centre and four circle points (right, up, left, down in the eye's frame), MediaPipe's order.

    Placed from the eye corners, which stay put when the lids move: the eyeball does not follow them.
    """
    outer, inner = image_xy[corners[0]], image_xy[corners[1]]
    left_to_right = inner - outer if inner[0] > outer[0] else outer - inner
    width = float(np.linalg.norm(left_to_right))
    axis_x = left_to_right / max(width, 1e-9)
    axis_y = np.array([-axis_x[1], axis_x[0]])  # image-down for an upright head
    centre = (outer + inner) / 2 + width * (gaze[0] * axis_x + (gaze[1] - IRIS_RAISE_PER_EYE_WIDTH) * axis_y)
    radius = IRIS_RADIUS_PER_EYE_WIDTH * width
    return np.stack([centre, centre + radius * axis_x, centre - radius * axis_y,
                     centre - radius * axis_x, centre + radius * axis_y])


def mesh_with_iris(image_xy: np.ndarray, gaze: np.ndarray) -> np.ndarray:
    """(468, 2) projected mesh points -> the 478 points of MediaPipe's landmarker (iris 468-477)."""
    right = _iris(image_xy, RIGHT_EYE_CORNERS, gaze)
    left = _iris(image_xy, LEFT_EYE_CORNERS, gaze)
    return np.concatenate([image_xy, right, left])


def landmark_subset(points_478: np.ndarray) -> np.ndarray:
    """The 146 landmarks the blendshape model reads, as float32."""
    return points_478[list(LANDMARK_SUBSET_IDXS)].astype(np.float32)
