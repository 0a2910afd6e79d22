"""A baseline and an expression frame of a clip -> face crops in one box, registered, and their flow image.

The expression frame is mapped onto the baseline's pose by the similarity fitted on landmarks no expression
moves (facedyn.flow.registration); both frames are then cut with the baseline's box, framed as the synthetic
generator frames faces.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facedyn.flow.encoding import compute_flow, encode_flow, resize_flow
from facedyn.flow.mask import mask_flow
from facedyn.flow.registration import apply, compose, residual_head_motion, to_baseline
from facedyn.landmarks import LANDMARK_SUBSET_IDXS
from facedyn.videos.config import FlowConfig

NOISE_PERCENTILE = 99.9  # the flow noise floor: this percentile of the rest pair's flow inside the face,
# times FLOOR_MARGIN: an expression frame lies further from the baseline in time and pose than the rest frame
# the floor is measured with, and its noise runs higher (measured on tests/real_clips.py's swaying clips: at
# 1.0x a tenth to a quarter of a still eye closure's flow brightness stayed; at 1.5x none, the closure kept 94 %)
FLOOR_MARGIN = 1.5


def crop_transform(baseline: np.ndarray, cfg: FlowConfig) -> np.ndarray:
    """2x3 map from frame pixels to the crop: a square on the face's centre, the face `face_fill` of its side."""
    low, high = baseline.min(axis=0), baseline.max(axis=0)
    centre = (low + high) / 2.0
    side = float(max(high - low)) / cfg.face_fill
    k = cfg.crop_size / side
    return np.array([[k, 0.0, cfg.crop_size / 2.0 - k * centre[0]],
                     [0.0, k, cfg.crop_size / 2.0 - k * centre[1]]])


@dataclass(frozen=True)
class RegisteredPair:
    baseline: np.ndarray  # (crop_size, crop_size, 3) BGR crop of the baseline frame
    expression: np.ndarray  # the expression frame in the same box, registered onto the baseline's pose
    crop: np.ndarray  # 2x3 frame -> crop map of the baseline
    expression_to_crop: np.ndarray  # 2x3 expression frame -> crop map
    face: np.ndarray  # (478, 2) the baseline's landmarks in crop pixels


def register_pair(baseline_frame: np.ndarray, expression_frame: np.ndarray, baseline_landmarks: np.ndarray,
                  expression_landmarks: np.ndarray, cfg: FlowConfig) -> RegisteredPair:
    """Both frames cut with the baseline's box; the expression frame first mapped onto the baseline's pose
    when `cfg.register` (otherwise cut as it is, head motion and all)."""
    crop = crop_transform(baseline_landmarks, cfg)
    moved = compose(crop, to_baseline(expression_landmarks, baseline_landmarks)) if cfg.register else crop
    size = (cfg.crop_size, cfg.crop_size)

    def cut(frame: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(frame, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    return RegisteredPair(cut(baseline_frame, crop), cut(expression_frame, moved), crop, moved,
                          apply(crop, baseline_landmarks.astype(np.float64)))


def registered_flow(pair: RegisteredPair, cfg: FlowConfig) -> np.ndarray:
    """(crop_size, crop_size, 2) flow baseline -> expression in crop pixels; with `cfg.register`, the head
    motion the landmark registration left is taken out too."""
    flow = compute_flow(cv2.cvtColor(pair.baseline, cv2.COLOR_BGR2GRAY),
                        cv2.cvtColor(pair.expression, cv2.COLOR_BGR2GRAY), cfg.method)
    if cfg.register:
        flow = flow - residual_head_motion(flow, pair.face)
    return flow


def noise_floor(rest_pair: RegisteredPair, cfg: FlowConfig) -> float:
    """The flow (crop pixels) that two frames of the rest phase show inside the face: no expression moves
    between them, so what DIS finds there is the clip's noise — resampling after camera motion, compression,
    sensor noise. FLOOR_MARGIN times the NOISE_PERCENTILE of its magnitude inside the baseline landmarks' hull."""
    flow = registered_flow(rest_pair, cfg)
    inside = np.zeros(flow.shape[:2], np.uint8)
    cv2.fillConvexPoly(inside, cv2.convexHull(rest_pair.face.astype(np.float32)).astype(np.int32), 1)
    magnitude = np.linalg.norm(flow, axis=-1)[inside > 0]
    return FLOOR_MARGIN * float(np.percentile(magnitude, NOISE_PERCENTILE)) if magnitude.size else 0.0


def flow_image(pair: RegisteredPair, cfg: FlowConfig, floor: float = 0.0) -> np.ndarray:
    """The (image_size, image_size, 3) uint8 RGB HSV flow image baseline -> expression, as the synthetic data;
    flow weaker than `floor` (crop pixels: the clip's noise, see noise_floor) is set to zero, and so is the
    flow outside the face (`cfg.mask`, facedyn.flow.mask)."""
    flow = registered_flow(pair, cfg)
    if floor > 0:
        flow[np.linalg.norm(flow, axis=-1) < floor] = 0.0
    # crop pixel centres sit at integers, the flow image's at +0.5
    landmarks = (pair.face[list(LANDMARK_SUBSET_IDXS)] + 0.5) * (cfg.image_size / cfg.crop_size)
    return encode_flow(mask_flow(resize_flow(flow, cfg.image_size), landmarks, cfg.mask), cfg.max_magnitude)
