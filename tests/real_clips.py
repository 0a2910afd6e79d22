"""Test clips as a hand-held phone records them: two real face photographs, a one-sided eye closure, the
whole picture swaying, and lossy H.264.

The faces are scikit-image's astronaut and matplotlib's sample photograph of Grace Hopper. Unlike the
clips of tests/face_videos.py (tight crops, a head that sways about its own centre, high-bitrate MPEG-4),
each frame here shows the whole portrait — flag, wall, clothing — with dark, nearly textureless regions
(the astronaut's collar and the black table, Grace Hopper's cap and uniform), and the camera moves the
WHOLE frame: a rotation of up to 2° about a point below the frame (a wrist holding the phone) plus a
shift of up to 4 px. The eye closure slides the subject's left upper lid down over the eye with the
amplitude curve of face_videos.amplitude (apex at APEX_FRAME). Clips are encoded with libx264 at a low
bitrate through the ffmpeg binary that imageio-ffmpeg ships (a test-only dependency).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from tests.face_videos import APEX_FRAME, FRAMES, amplitude

# Constant quality, as a phone's encoder holds it over a long clip (a bitrate target would spend a short
# clip's first frames well and starve the rest); CRF 28 gives ~170 kbit/s at 384x384 and 25 fps, about
# 0.05 bits per pixel: a messenger app's compression, not a camera's.
CRF = 28
FPS = 25.0
SWAY_DEGREES, SWAY_SHIFT = 2.0, 4.0
SWAY_PERIOD = 30  # frames: slower than a tremor, not in step with the expression
__all__ = ["APEX_FRAME", "FRAMES", "PORTRAITS", "Portrait", "sway", "write_clip"]


@dataclass(frozen=True)
class Portrait:
    """A photograph shown `scale` times its size through a `size` window at `origin` (photograph pixels)."""

    name: str
    scale: float
    origin: tuple[float, float]
    size: tuple[int, int]  # frame width, height (even: H.264 wants even sides)
    # The subject's left eye in the photograph, measured with MediaPipe's landmarker: corners (mesh points
    # 362, 263) and the lids' middle (386 upper, 374 lower).
    inner_corner: tuple[float, float]
    outer_corner: tuple[float, float]
    upper_lid: tuple[float, float]
    lower_lid: tuple[float, float]

    def photo(self) -> np.ndarray:
        if self.name == "astronaut":
            from skimage import data

            return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
        from matplotlib import cbook

        with cbook.get_sample_data("grace_hopper.jpg") as fh:
            return cv2.imdecode(np.frombuffer(fh.read(), np.uint8), cv2.IMREAD_COLOR)


# The astronaut at full size (interocular distance ~42 px): wall, rocket, orange suit, black collar, table.
# Grace Hopper at half size (~40 px): flag, blue wall, cap and uniform in black.
PORTRAITS = {
    "astronaut": Portrait("astronaut", 1.0, (64.0, 0.0), (384, 384),
                          (236.4, 104.9), (255.3, 103.8), (248.1, 100.2), (245.9, 106.5)),
    "grace_hopper": Portrait("grace_hopper", 0.5, (0.0, 0.0), (256, 300),
                             (288.9, 192.8), (322.0, 186.7), (308.7, 181.3), (306.1, 192.3)),
}
def close_left_eye(points: np.ndarray, amount: float, portrait: Portrait) -> np.ndarray:
    """Where in the photograph each of `points` (photograph pixels of the shown picture) comes from when the
    subject's left eye is `amount` (0-1) closed: the upper lid slides down over the eye until it meets the
    lower lid, the lid's skin above it stretches, the eye below it is pressed together. The lids are
    parabolas through the corners and the lids' middles; per column the map is piecewise linear in y and
    the identity beyond the corners."""
    inner, outer = np.array(portrait.inner_corner), np.array(portrait.outer_corner)
    x, y = points[..., 0], points[..., 1]
    u = np.clip((x - (inner[0] + outer[0]) / 2) / (abs(outer[0] - inner[0]) / 2), -1.0, 1.0)
    corners = inner[1] + (x - inner[0]) * (outer[1] - inner[1]) / (outer[0] - inner[0])  # the line through them
    middle = (inner[1] + outer[1]) / 2  # that line's height between the corners
    bulge = 1.0 - u**2
    upper = corners - (middle - portrait.upper_lid[1]) * bulge
    lower = corners + (portrait.lower_lid[1] - middle) * bulge
    crease = upper - 1.5 * (portrait.lower_lid[1] - portrait.upper_lid[1]) * bulge - 1e-3  # above: nothing moves
    lid = upper + amount * (lower - upper)  # where the upper lid's margin is shown
    source = y.copy()
    skin = (y > crease) & (y < lid)
    source[skin] = crease[skin] + (y[skin] - crease[skin]) * (upper[skin] - crease[skin]) / (lid[skin] - crease[skin])
    eye = (y >= lid) & (y < lower)
    source[eye] = upper[eye] + (y[eye] - lid[eye]) * (lower[eye] - upper[eye]) / (lower[eye] - lid[eye])
    return np.stack([x, source], axis=-1)


def sway(t: int) -> tuple[float, tuple[float, float]]:
    """(rotation degrees, shift in frame pixels) of the camera at frame t; extremes away from APEX_FRAME."""
    phase = 2 * np.pi * t / SWAY_PERIOD
    return SWAY_DEGREES * np.sin(phase), (SWAY_SHIFT * np.sin(phase + 0.7), SWAY_SHIFT * np.cos(phase))


def render(portrait: Portrait, photo: np.ndarray, t: int, eye_closure: bool, camera_sway: bool) -> np.ndarray:
    """Frame t (BGR): for each frame pixel the photograph point it shows, the camera's motion and the lid's
    displacement undone, resampled once."""
    width, height = portrait.size
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    points = np.stack([xs, ys], axis=-1)
    if camera_sway:
        angle, shift = sway(t)
        pivot = np.array([width / 2.0, 2.0 * height])  # the hand, a frame's height below the frame
        a = np.radians(angle)
        inverse = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])  # rotation by -angle
        points = (points - pivot - np.array(shift)) @ inverse.T + pivot
    points = points / portrait.scale + np.array(portrait.origin)  # frame -> photograph
    if eye_closure:
        points = close_left_eye(points, amplitude(t), portrait)
    maps = points.astype(np.float32)
    return cv2.remap(photo, maps[..., 0], maps[..., 1], cv2.INTER_AREA if portrait.scale < 1 else cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REFLECT)


def write_h264(path: Path, frames: list[np.ndarray], fps: float = FPS, crf: int = CRF) -> Path:
    """frames (BGR) -> an H.264 MP4 at constant quality `crf` (libx264's scale: 0 lossless, 51 worst)."""
    import imageio_ffmpeg

    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    writer = imageio_ffmpeg.write_frames(str(path), (width, height), pix_fmt_in="bgr24", fps=fps, codec="libx264",
                                         bitrate=None, quality=None, macro_block_size=1, ffmpeg_log_level="error",
                                         output_params=["-crf", str(crf)])
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    return path


def write_clip(path: Path, face: str, eye_closure: bool = True, camera_sway: bool = False,
               frames: int = FRAMES, turn: Optional[int] = None) -> Path:
    """A clip of `face`; `turn` (a cv2.ROTATE_* code) turns every frame, as a portrait clip shows when its
    rotation tag was lost."""
    portrait = PORTRAITS[face]
    photo = portrait.photo()
    images = [render(portrait, photo, t, eye_closure, camera_sway) for t in range(frames)]
    return write_h264(path, images if turn is None else [cv2.rotate(image, turn) for image in images])
