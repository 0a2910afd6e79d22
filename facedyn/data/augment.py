"""Training-time augmentation that keeps the labels true, applied to a flow image and its landmarks together.

Coordinate frames: the flow image is 112x112, the landmarks are pixels of the original video frame. A
shift or zoom is therefore drawn as a fraction of the image size and applied to both in their own frame:
the image moves by tx * 112 pixels and the landmarks by tx * frame width, both zoom about their frame's
centre. The landmark frame is the video frame (data.landmarks.image_width/height) when known, otherwise
the sample's landmark bounding box; the blendshape model centres and scale-normalises its input, so only
the landmarks' relative geometry matters to it and either frame keeps them in a sane range.

The horizontal mirror flips the image and mirrors the flow directions (hue: angle t -> 180 deg - t, see
facedyn.flow.encoding.mirror_flow_image); the landmarks get x -> c - x (c = frame left + right edge)
and the left/right correspondence swapped (SUBSET_MIRROR_PERMUTATION). Palsy grades are side-independent,
so the labels stay.

The head-motion augmentation (off by default) imitates a recording nobody registered: a random similarity
(rotation, scale and shift about the frame's centre) moves the expression frame against the baseline. The
flow then maps each baseline pixel p to T(p + flow(p)), so the flow becomes T(p + flow(p)) - p on the face
(the convex hull of the baseline landmarks; the background stays put), and the expression landmarks move
by the same T in their frame; the baseline landmarks stay.

Randomness comes from (seed, epoch, sample row) alone, so a resumed run draws what an uninterrupted one
would, whatever the batch order or worker count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from facedyn.data.config import AugmentConfig
from facedyn.data.head_motion import face_mask
from facedyn.flow.encoding import decode_flow, encode_flow, mirror_flow_image
from facedyn.flow.mask import pixel_grid
from facedyn.landmarks import SUBSET_MIRROR_PERMUTATION

MIRROR_PERMUTATION = np.asarray(SUBSET_MIRROR_PERMUTATION, dtype=np.intp)
NOISE_FIELDS = 64  # noise fields in the bank (9.6 MB for 112x112 RGB float32)
NOISE_BANK_STREAM = 7_305_111  # seeds the bank apart from the per-sample draws


@dataclass(frozen=True)
class Frame:
    """A landmark coordinate frame: its left/top corner and size, in landmark units."""

    left: float
    top: float
    width: float
    height: float

    @classmethod
    def around(cls, *landmark_sets: np.ndarray) -> "Frame":
        points = np.concatenate(landmark_sets)
        low, high = points.min(axis=0), points.max(axis=0)
        return cls(float(low[0]), float(low[1]), float(high[0] - low[0]), float(high[1] - low[1]))

    @property
    def centre(self) -> np.ndarray:
        return np.array([self.left + self.width / 2, self.top + self.height / 2], dtype=np.float32)


def mirror_landmarks(landmarks: np.ndarray, frame: Frame) -> np.ndarray:
    """The 146 landmarks of the mirrored face: x -> left + right edge - x, left/right points swapped."""
    mirrored = landmarks[..., MIRROR_PERMUTATION, :].copy()
    mirrored[..., 0] = 2 * frame.left + frame.width - mirrored[..., 0]
    return mirrored


def mirror_sample(
    flow: np.ndarray, expression: np.ndarray, baseline: np.ndarray, frame: Frame
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return mirror_flow_image(flow), mirror_landmarks(expression, frame), mirror_landmarks(baseline, frame)


def _zoom_shift_image(image: np.ndarray, zoom: float, shift: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    centre = np.array([width, height], dtype=np.float64) / 2
    offset = centre * (1 - zoom) + shift * [width, height]
    matrix = np.array([[zoom, 0, offset[0]], [0, zoom, offset[1]]])
    # Outside the original image there was no measured movement: zero flow is black (V = 0).
    return cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderValue=0)


def _zoom_shift_landmarks(landmarks: np.ndarray, zoom: float, shift: np.ndarray, frame: Frame) -> np.ndarray:
    size = np.array([frame.width, frame.height], dtype=np.float32)
    return (landmarks - frame.centre) * zoom + frame.centre + shift * size


@dataclass(frozen=True)
class HeadMotion:
    """A similarity about a frame's centre: rotation (degrees), relative scale change, shift (fraction of the frame)."""

    rotation_deg: float
    scale: float
    shift: tuple[float, float]

    def matrix(self, left: float, top: float, width: float, height: float) -> np.ndarray:
        """The 2x3 matrix of this motion in the frame (left, top, width, height)."""
        angle = np.radians(self.rotation_deg)
        linear = (1 + self.scale) * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        centre = np.array([left + width / 2, top + height / 2])
        return np.hstack([linear, (centre - linear @ centre + np.multiply(self.shift, [width, height]))[:, None]])


def add_head_motion(
    flow_image: np.ndarray, expression: np.ndarray, baseline: np.ndarray, motion: HeadMotion, frame: Frame,
    max_magnitude: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(flow image uint8 RGB, expression landmarks) after the expression frame moved by `motion`.

    The (square) flow image shows the landmarks' `frame` (the frame's corners are the image's corners).
    """
    size = flow_image.shape[0]
    image_matrix = motion.matrix(0.0, 0.0, size, size)
    flow = decode_flow(flow_image, max_magnitude)
    # T(p + flow) - p = L flow + (L - I) p + t, with cv2.transform doing the per-pixel 2x2 products
    moved = cv2.transform(flow, np.hstack([image_matrix[:, :2], np.zeros((2, 1))]))
    moved += cv2.transform(pixel_grid(size), image_matrix - np.hstack([np.eye(2), np.zeros((2, 1))]))
    to_image = np.array([size / frame.width, size / frame.height])
    flow += (moved - flow) * face_mask((baseline - [frame.left, frame.top]) * to_image, size)[..., None]
    landmark_matrix = motion.matrix(frame.left, frame.top, frame.width, frame.height)
    return encode_flow(flow, max_magnitude), expression @ landmark_matrix[:, :2].T + landmark_matrix[:, 2]


@dataclass(frozen=True)
class AugmentDraw:
    """One sample's random choices in one epoch: all an augmentation needs besides the sample itself.

    Drawn on the host in every data path, so the device-resident one (facedyn.data.resident) applies the
    very choices the host path would.
    """

    flip: bool
    motion: Optional[HeadMotion]
    zoom: float
    shift: np.ndarray  # (2,) fractions of the frame
    gain: float  # flow magnitude factor (zoom included)
    noise: Optional[tuple[int, bool, int, int]]  # (field of the bank, mirrored, dy, dx)
    jitter: Optional[tuple[np.ndarray, np.ndarray]]  # standard normals for (expression, baseline) landmarks


class Augmenter:
    """Draws and applies one random augmentation per (epoch, sample row)."""

    def __init__(self, cfg: AugmentConfig, frame_size: Optional[tuple[float, float]] = None,
                 max_magnitude: Optional[float] = None):
        self.cfg = cfg
        self.frame_size = frame_size  # (width, height) of the landmarks' video frame, if known
        self.max_magnitude = max_magnitude  # flow pixels at full brightness: head motion needs it
        self.head_motion = bool(cfg.head_motion_deg or cfg.head_motion_shift or cfg.head_motion_scale)
        if self.head_motion and max_magnitude is None:
            raise ValueError("head-motion augmentation needs the flow images' max_magnitude")
        self._noise_bank: Optional[np.ndarray] = None  # made on first use, in each worker process

    def noise_fields(self, shape: tuple[int, ...]) -> np.ndarray:
        """The bank of NOISE_FIELDS noise fields (std cfg.noise_std) of `shape`, fixed by cfg.seed."""
        if self._noise_bank is None or self._noise_bank.shape[1:] != shape:
            rng = np.random.default_rng([self.cfg.seed, NOISE_BANK_STREAM])
            self._noise_bank = rng.standard_normal((NOISE_FIELDS, *shape), dtype=np.float32) * np.float32(self.cfg.noise_std)
        return self._noise_bank

    def _add_noise(self, image: np.ndarray, noise: tuple[int, bool, int, int]) -> None:
        """Add Gaussian noise (std cfg.noise_std) in place: a field from a fixed bank, circularly shifted.

        Drawing 37,632 normal values per 112x112 image took ~0.3 ms, half of all the work on a training
        item; a random field of NOISE_FIELDS, shifted by a random (dy, dx) and maybe mirrored, costs ~10 us
        and still gives every pixel N(0, std^2) noise, independent between neighbours.
        """
        index, mirrored, dy, dx = noise
        field = self.noise_fields(image.shape)[index]
        if mirrored:
            field = field[:, ::-1]
        height, width = image.shape[:2]
        # image[y, x] += field[(y + dy) % height, (x + dx) % width], as four block additions
        for rows_to, rows_from in ((slice(0, height - dy), slice(dy, height)), (slice(height - dy, height), slice(0, dy))):
            for cols_to, cols_from in ((slice(0, width - dx), slice(dx, width)), (slice(width - dx, width), slice(0, dx))):
                image[rows_to, cols_to] += field[rows_from, cols_from]

    def rng(self, epoch: int, row: int) -> np.random.Generator:
        return np.random.default_rng([self.cfg.seed, epoch, row])

    def frame(self, expression: np.ndarray, baseline: np.ndarray) -> Frame:
        """The landmark frame a sample's shifts, zooms and mirror use."""
        if self.frame_size is not None:
            return Frame(0.0, 0.0, *self.frame_size)
        return Frame.around(expression, baseline)

    def draw(self, epoch: int, row: int, image_size: tuple[int, int], landmark_shape: tuple[int, ...]) -> AugmentDraw:
        """The choices for sample `row` in `epoch` (from (seed, epoch, row) alone), for an image of (height,
        width) `image_size` and landmark arrays of `landmark_shape`."""
        cfg, rng = self.cfg, self.rng(epoch, row)
        flip = bool(rng.random() < cfg.hflip_p)
        motion = None
        if self.head_motion:
            motion = HeadMotion(rng.uniform(-cfg.head_motion_deg, cfg.head_motion_deg),
                                rng.uniform(-cfg.head_motion_scale, cfg.head_motion_scale),
                                tuple(rng.uniform(-cfg.head_motion_shift, cfg.head_motion_shift, size=2)))
        zoom = 1 + rng.uniform(-cfg.scale, cfg.scale)
        shift = rng.uniform(-cfg.shift, cfg.shift, size=2)
        gain = zoom * (1 + rng.uniform(-cfg.brightness, cfg.brightness))
        noise = None
        if cfg.noise_std:
            noise = (int(rng.integers(NOISE_FIELDS)), bool(rng.random() < 0.5),
                     int(rng.integers(image_size[0])), int(rng.integers(image_size[1])))
        jitter = None
        if cfg.landmark_jitter:  # N(0, s) is s times a standard normal, bit for bit
            jitter = (rng.standard_normal(landmark_shape), rng.standard_normal(landmark_shape))
        return AugmentDraw(flip, motion, zoom, shift, gain, noise, jitter)

    def __call__(
        self, flow: np.ndarray, expression: np.ndarray, baseline: np.ndarray, epoch: int, row: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Augmented (flow float32 HxWx3 in [0, 1], expression landmarks, baseline landmarks)."""
        return self.apply(self.draw(epoch, row, flow.shape[:2], expression.shape), flow, expression, baseline)

    def apply(self, draw: AugmentDraw, flow: np.ndarray, expression: np.ndarray, baseline: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cfg = self.cfg
        frame = self.frame(expression, baseline)
        if draw.flip:
            flow, expression, baseline = mirror_sample(flow, expression, baseline, frame)
        if draw.motion is not None:
            flow, expression = add_head_motion(flow, expression, baseline, draw.motion, frame, self.max_magnitude)
        if cfg.scale or cfg.shift:
            flow = _zoom_shift_image(flow, draw.zoom, draw.shift)
            expression = _zoom_shift_landmarks(expression, draw.zoom, draw.shift, frame)
            baseline = _zoom_shift_landmarks(baseline, draw.zoom, draw.shift, frame)
        # Scaling RGB scales V (the flow magnitude) and keeps hue and saturation (the direction); a zoomed
        # scene also moves `zoom` times as many pixels.
        image = flow.astype(np.float32) * np.float32(draw.gain / 255)
        if draw.noise is not None:
            self._add_noise(image, draw.noise)
        np.clip(image, 0, 1, out=image)
        if draw.jitter is not None:
            sigma = cfg.landmark_jitter * float(np.ptp(baseline, axis=0).max())
            expression = expression + sigma * draw.jitter[0]
            baseline = baseline + sigma * draw.jitter[1]
        return image, expression.astype(np.float32), baseline.astype(np.float32)
