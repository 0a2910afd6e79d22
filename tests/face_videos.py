"""Test videos of a real face: scikit-image's astronaut photograph animated by known warps, written by OpenCV.

An expression is a smooth displacement bump (a Gaussian-weighted shift) at one feature, e.g. the
subject's right mouth corner pulled out and up, whose amplitude rises from rest, peaks at APEX_FRAME and
relaxes; head motion is a small similarity (rotation, scale, shift) about the face that changes every
frame. Both are applied in one remap, so each frame is the photograph resampled once. Also: a clip of
the synthetic face generator, and the damaged files a clinic's folder may hold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import cv2
import numpy as np
from skimage import data

FRAMES, REST_UNTIL, APEX_FRAME, RELAXED_AT = 40, 8, 22, 36
# Feature positions in the 512x512 photograph, measured with MediaPipe's landmarker on it (points 61,
# 291, 159, 386 of the mesh). The subject's right is the image's left.
FACE_CENTRE = (226.0, 124.0)
RIGHT_MOUTH_CORNER = (202.0, 139.0)
LEFT_UPPER_LID = (248.0, 98.0)
# (centre, displacement at the apex in photograph pixels, bump radius in photograph pixels)
SMILE_RIGHT = (RIGHT_MOUTH_CORNER, (-3.0, -6.0), 9.0)
CLOSE_LEFT_EYE = (LEFT_UPPER_LID, (0.0, 4.0), 6.0)


def amplitude(t: int) -> float:
    """0 at rest, a raised-cosine rise to 1 at APEX_FRAME, back to 0 at RELAXED_AT."""
    if t <= REST_UNTIL or t >= RELAXED_AT:
        return 0.0
    return float(0.5 - 0.5 * np.cos(2 * np.pi * (t - REST_UNTIL) / (RELAXED_AT - REST_UNTIL)))


def head_pose(t: int) -> tuple[float, float, tuple[float, float]]:
    """(rotation degrees, scale, shift in photograph pixels) of frame t: a slow sway, never at rest."""
    phase = 2 * np.pi * t / FRAMES
    return 2.0 * np.sin(phase), 1.0 + 0.02 * np.sin(2 * phase), (3.0 * np.sin(phase + 1.0), 2.0 * np.cos(phase))


class FaceClip:
    """Frames of size (width, height) showing the photograph around the face, magnified by height / 256."""

    def __init__(self, width: int = 256, height: int = 256):
        self.size = (width, height)
        self.scale = height / 256.0
        self.origin = np.array(FACE_CENTRE) - np.array([width, height]) / (2 * self.scale)
        self.photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
        xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
        self.grid = np.stack([xs, ys], axis=-1)

    def to_frame(self, point) -> np.ndarray:
        """Photograph pixels -> frame pixels (without head motion)."""
        return (np.asarray(point, np.float64) - self.origin) * self.scale

    def frame(self, t: int, warp: Optional[tuple] = None, head_motion: bool = False) -> np.ndarray:
        """Frame t (BGR): photograph coordinates of every frame pixel, head motion undone, bump undone."""
        points = self.grid / self.scale + self.origin.astype(np.float32)  # frame -> photograph
        if head_motion:
            angle, scale, shift = head_pose(t)
            centre = np.array(FACE_CENTRE, np.float32)
            rotation = cv2.getRotationMatrix2D((0.0, 0.0), -angle, 1.0 / scale)[:, :2].astype(np.float32)
            points = (points - centre - np.array(shift, np.float32)) @ rotation.T + centre
        if warp is not None:
            centre, vector, radius = warp
            weight = np.exp(-np.sum((points - np.array(centre, np.float32)) ** 2, axis=-1) / (2 * radius**2))
            points = points - amplitude(t) * weight[..., None] * np.array(vector, np.float32)
        return cv2.remap(self.photo, points[..., 0], points[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    def write(self, path: Path, warp: Optional[tuple] = None, head_motion: bool = False,
              frames: int = FRAMES, fps: float = 25.0) -> Path:
        write_video(path, [self.frame(t, warp, head_motion) for t in range(frames)], fps)
        return path


FOURCC = {".mp4": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


def write_video(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*FOURCC[path.suffix]), fps, (width, height))
    assert writer.isOpened(), f"OpenCV cannot write {path}"
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def no_face_video(path: Path, frames: int = 12) -> Path:
    """A real photograph without a face (scikit-image's coffee cup), slowly panned."""
    photo = cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR)
    return write_video(path, [np.ascontiguousarray(photo[20 + t:276 + t, 100:356]) for t in range(frames)])


def two_faces_video(path: Path, frames: int = 12) -> Path:
    """Two people side by side: the astronaut beside her mirror image."""
    face = FaceClip().frame(0)
    return write_video(path, [np.hstack([face, face[:, ::-1]])] * frames)


def truncated_copy(source: Path, path: Path, keep: float = 0.5) -> Path:
    content = source.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content[:int(len(content) * keep)])
    return path


def synthetic_face_video(path: Path, expression: str = "smile", frames: int = 24) -> Path:
    """A clip of the synthetic generator's subject 0 doing `expression`: rest, then up to full movement."""
    from facedyn.data.synthetic import expressions, face, render
    from facedyn.data.synthetic.config import SyntheticConfig
    from facedyn.data.synthetic.generator import sample_subject
    from facedyn.data.synthetic.mesh import canonical_mesh

    mesh = canonical_mesh()
    cfg = SyntheticConfig(render_size=256)
    subject, _ = sample_subject(mesh, cfg, 0)
    field = expressions.EXPRESSION_FIELDS[expression](subject.neutral)
    images = []
    for t in range(frames):
        fraction = min(1.0, max(0.0, (t - 6) / (frames - 10)))
        points = face.project(subject.neutral + fraction * field, subject.pose)
        grey = np.clip(render.render(mesh, points, subject.appearance, cfg.render_size, subject.pose.scale), 0, 255)
        images.append(cv2.cvtColor(grey.astype(np.uint8), cv2.COLOR_GRAY2BGR))
    return write_video(path, images)
