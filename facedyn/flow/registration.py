"""Similarity registration of a face: fit it on landmarks no expression moves, and the head motion that
landmark registration leaves in a flow field.

The head moves between two frames of a clip (a nod, a turn, the patient leaning in); optical flow would
show that motion everywhere and drown the expression. A similarity transform (rotation, uniform scale,
shift) fitted on landmarks that expressions do not move maps one frame's face onto the other's pose;
what the landmarks' jitter leaves is then fitted on the flow itself (residual_head_motion).
"""

from __future__ import annotations

import cv2
import numpy as np

# MediaPipe mesh points that no Sunnybrook expression moves much: the nose bridge (168, 6, 197, 195, 5),
# the eye corners (33, 133, 362, 263) and the face outline at the temples and ears (127, 356, 234, 454).
# Mouth, cheeks, lids, brows and nose wings are left out: they are what the expressions move.
STABLE_POINTS = (168, 6, 197, 195, 5, 33, 133, 362, 263, 127, 356, 234, 454)
KEEP_SHARE, TRIM_ROUNDS = 0.6, 4  # residual head motion: refit on the 60 % of the face that fits best


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity (no reflection) mapping points `src` onto `dst` in least squares (Umeyama 1991)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - src_mean, dst - dst_mean
    u, sigma, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rotation = u @ d @ vt
    scale = np.trace(np.diag(sigma) @ d) / max(a.var(axis=0).sum(), 1e-12)
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - matrix[:, :2] @ src_mean
    return matrix


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2x3 transform doing `inner`, then `outer`."""
    matrix = np.empty((2, 3))
    matrix[:, :2] = outer[:, :2] @ inner[:, :2]
    matrix[:, 2] = outer[:, :2] @ inner[:, 2] + outer[:, 2]
    return matrix


def to_baseline(expression: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """The similarity taking an expression frame's landmarks (478, 2) onto the baseline's stable points."""
    idx = list(STABLE_POINTS)
    return fit_similarity(expression[idx], baseline[idx])


def residual_head_motion(flow: np.ndarray, face: np.ndarray) -> np.ndarray:
    """The similarity motion field (H, W, 2) that most of the face's flow shares: what landmark registration
    left of the head motion (MediaPipe's points jitter by about a pixel). Fitted on a grid inside the face
    outline by trimmed least squares: each round refits on the KEEP_SHARE of points it explains best, so
    the expression's own region (well under half of the face) drops out."""
    height, width = flow.shape[:2]
    step = max(2, width // 56)
    ys, xs = np.mgrid[step // 2:height:step, step // 2:width:step]
    grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
    hull = cv2.convexHull(face.astype(np.float32))
    inside = np.array([cv2.pointPolygonTest(hull, (float(x), float(y)), False) >= 0 for x, y in grid])
    points = grid[inside].astype(np.float64)
    if len(points) < 12:
        return np.zeros_like(flow)
    moved = points + flow[grid[inside, 1], grid[inside, 0]]
    keep = np.arange(len(points))
    for _ in range(TRIM_ROUNDS):
        matrix = fit_similarity(points[keep], moved[keep])
        residual = np.linalg.norm(apply(matrix, points) - moved, axis=1)
        keep = np.argsort(residual, kind="stable")[:int(KEEP_SHARE * len(points))]
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    pixels = np.stack([xs, ys], axis=-1)
    return (apply(matrix, pixels) - pixels).astype(np.float32)
