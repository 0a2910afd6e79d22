"""Grey frames of a textured face: the mesh rasterised with a procedural skin texture in its UV space.

Every pixel knows which triangle it shows and where in that triangle it lies, so moving the mesh moves
the texture with it exactly as skin moves: optical flow between two renders sees real, textured motion.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facedyn.data.synthetic.expressions import LEFT_BROW, RIGHT_BROW
from facedyn.data.synthetic.face import (LEFT_EYE_CORNERS, LEFT_EYE_LOWER, LEFT_EYE_UPPER, RIGHT_EYE_CORNERS,
                                         RIGHT_EYE_LOWER, RIGHT_EYE_UPPER)
from facedyn.data.synthetic.mesh import CanonicalMesh

TEXTURE_SIZE = 384
OUTER_LIPS = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
INNER_LIPS = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
BROW_ROWS = ((RIGHT_BROW[:5], RIGHT_BROW[5:]), (LEFT_BROW[:5], LEFT_BROW[5:]))


@dataclass(frozen=True)
class Appearance:
    texture: np.ndarray  # (TEXTURE_SIZE, TEXTURE_SIZE) float32 grey albedo, 0-255
    background: np.ndarray  # (render_size, render_size) float32
    light: np.ndarray  # unit vector towards the light, camera frame (x right, y up, z to the camera)
    ambient: float


def _noise(rng: np.random.Generator, shape: tuple[int, int], blur: float) -> np.ndarray:
    field = rng.normal(0.0, 1.0, shape).astype(np.float32)
    if blur > 0:
        field = cv2.GaussianBlur(field, (0, 0), blur)
    return field / (field.std() + 1e-6)


def _uv_pixels(mesh: CanonicalMesh, indices) -> np.ndarray:
    uv = mesh.uv[list(indices)]
    return np.stack([uv[:, 0], 1.0 - uv[:, 1]], axis=1) * (TEXTURE_SIZE - 1)


def _fill(texture: np.ndarray, points: np.ndarray, value: float, softness: float = 1.5) -> None:
    """Paint a polygon into the texture with a soft edge."""
    mask = np.zeros_like(texture)
    cv2.fillPoly(mask, [np.round(points * 16).astype(np.int32)], 1.0, lineType=cv2.LINE_AA, shift=4)
    mask = cv2.GaussianBlur(mask, (0, 0), softness)
    texture *= 1.0 - mask
    texture += mask * value


def sample_appearance(mesh: CanonicalMesh, rng: np.random.Generator, render_size: int) -> Appearance:
    """A subject's skin (tone, blotches, pores, freckles), brows, lips, eyes, lighting and backdrop."""
    size = (TEXTURE_SIZE, TEXTURE_SIZE)
    tone = rng.uniform(110.0, 190.0)
    texture = tone * (1.0 + 0.06 * _noise(rng, size, 18.0) + 0.05 * _noise(rng, size, 2.0)
                      + 0.03 * _noise(rng, size, 0.0))
    for _ in range(int(rng.integers(40, 160))):  # freckles and moles
        centre = rng.uniform(0, TEXTURE_SIZE, 2)
        cv2.circle(texture, (int(centre[0]), int(centre[1])), int(rng.integers(1, 3)),
                   float(tone * rng.uniform(0.6, 0.85)), -1, cv2.LINE_AA)
    hair = tone * rng.uniform(0.2, 0.45)
    for upper, lower in BROW_ROWS:
        _fill(texture, np.concatenate([_uv_pixels(mesh, upper), _uv_pixels(mesh, lower)[::-1]]), hair)
        strands = np.clip(_noise(rng, size, 0.8), -2, 2) * 0.15 * hair
        texture += strands * (np.abs(texture - hair) < 0.1 * tone)
    _fill(texture, _uv_pixels(mesh, OUTER_LIPS), tone * rng.uniform(0.65, 0.8))
    _fill(texture, _uv_pixels(mesh, INNER_LIPS), tone * 0.3, softness=1.0)
    for corners, upper, lower in ((RIGHT_EYE_CORNERS, RIGHT_EYE_UPPER, RIGHT_EYE_LOWER),
                                  (LEFT_EYE_CORNERS, LEFT_EYE_UPPER, LEFT_EYE_LOWER)):
        contour = np.concatenate([_uv_pixels(mesh, (corners[0],) + upper + (corners[1],)),
                                  _uv_pixels(mesh, lower)[::-1]])
        _fill(texture, contour, min(235.0, tone * 1.35), softness=1.0)
        centre = contour.mean(axis=0)
        width = np.linalg.norm(_uv_pixels(mesh, corners)[0] - _uv_pixels(mesh, corners)[1])
        cv2.circle(texture, tuple(int(c) for c in centre), int(0.23 * width), rng.uniform(40, 110), -1, cv2.LINE_AA)
        cv2.circle(texture, tuple(int(c) for c in centre), int(0.09 * width), 20.0, -1, cv2.LINE_AA)
        cv2.polylines(texture, [np.round(_uv_pixels(mesh, (corners[0],) + upper + (corners[1],))).astype(np.int32)],
                      False, 30.0, 2, cv2.LINE_AA)  # lashes
    side = (render_size, render_size)
    background = rng.uniform(40.0, 200.0) * (1.0 + 0.15 * _noise(rng, side, 25.0) + 0.04 * _noise(rng, side, 1.5))
    light = np.array([rng.uniform(-0.6, 0.6), rng.uniform(0.0, 0.6), 1.0])
    return Appearance(np.clip(texture, 0, 255).astype(np.float32), np.clip(background, 0, 255).astype(np.float32),
                      light / np.linalg.norm(light), float(rng.uniform(0.35, 0.55)))


def _vertex_normals(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Unit normals in camera axes (x right, y up, z to the camera) from image-space points."""
    camera = points * np.array([1.0, -1.0, 1.0])
    a, b, c = camera[triangles[:, 0]], camera[triangles[:, 1]], camera[triangles[:, 2]]
    face_normals = np.cross(b - a, c - a)
    if np.median(face_normals[:, 2]) < 0:  # orient towards the camera whatever the winding
        face_normals = -face_normals
    normals = np.zeros_like(camera)
    for corner in range(3):
        np.add.at(normals, triangles[:, corner], face_normals)
    return normals / (np.linalg.norm(normals, axis=1, keepdims=True) + 1e-9)


def render(mesh: CanonicalMesh, projected: np.ndarray, appearance: Appearance, render_size: int,
           pose_scale: float) -> np.ndarray:
    """Grey float32 frame (render_size^2) of the mesh at `projected` (468, 3: image x, y, depth in cm)."""
    triangles = mesh.triangles
    xy = projected[:, :2]
    corners = xy[triangles]  # (T, 3, 2)
    edges = np.stack([corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]], axis=2)  # (T, 2, 2)
    det = edges[:, 0, 0] * edges[:, 1, 1] - edges[:, 0, 1] * edges[:, 1, 0]
    drawable = np.abs(det) > 1e-6
    inverse = np.zeros_like(edges)
    inverse[drawable] = np.linalg.inv(edges[drawable])

    ids = np.full((render_size, render_size), -1, dtype=np.int32)
    depth = projected[triangles, 2].mean(axis=1)
    for t in np.argsort(depth):  # far to near: nearer triangles cover farther ones
        if drawable[t]:
            cv2.fillConvexPoly(ids, np.round(corners[t] * 16).astype(np.int32), int(t), cv2.LINE_8, 4)

    ys, xs = np.nonzero(ids >= 0)
    t = ids[ys, xs]
    rel = np.stack([xs, ys], axis=1).astype(np.float64) - corners[t, 0]
    bary = np.einsum("nij,nj->ni", inverse[t], rel)  # weights of corners 1 and 2
    weights = np.concatenate([1.0 - bary.sum(axis=1, keepdims=True), bary], axis=1)
    tri = triangles[t]
    uv = np.einsum("ni,nij->nj", weights, mesh.uv[tri])
    normals = _vertex_normals(projected * np.array([1.0, 1.0, pose_scale]), triangles)
    shade_vertex = appearance.ambient + (1 - appearance.ambient) * np.clip(normals @ appearance.light, 0.0, 1.0)
    shade = np.einsum("ni,ni->n", weights, shade_vertex[tri])

    map_x = np.full((render_size, render_size), -1.0, dtype=np.float32)
    map_y = np.full((render_size, render_size), -1.0, dtype=np.float32)
    map_x[ys, xs] = uv[:, 0] * (TEXTURE_SIZE - 1)
    map_y[ys, xs] = (1.0 - uv[:, 1]) * (TEXTURE_SIZE - 1)
    skin = cv2.remap(appearance.texture, map_x, map_y, cv2.INTER_LINEAR)
    frame = appearance.background.copy()
    frame[ys, xs] = skin[ys, xs] * shade
    return frame
