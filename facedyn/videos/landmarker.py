"""MediaPipe's Face Landmarker (VIDEO running mode) over a clip's frames, in a worker process.

Import this module only in processes that never import torch/torchvision (the pool's spawned workers):
with TensorFlow installed, `import mediapipe` would import it too, and TensorFlow then torchvision in one
process segfaults. MediaPipe needs TensorFlow only for its API docs (tasks/python/core/
optional_dependencies.py falls back when it is missing), so it is kept out here, which also saves the
~12 s that importing TensorFlow costs every worker.
"""

from __future__ import annotations

import os
import sys

sys.modules.setdefault("tensorflow", None)  # type: ignore[arg-type]  # `import tensorflow` now fails fast
os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ INFO/WARNING lines on every start

from dataclasses import dataclass  # noqa: E402
from typing import Optional  # noqa: E402

import mediapipe as mp  # noqa: E402
import numpy as np  # noqa: E402
from mediapipe.tasks.python import BaseOptions, vision  # noqa: E402

from facedyn.landmarks import NUM_BLENDSHAPES, NUM_MESH_LANDMARKS  # noqa: E402
from facedyn.videos.config import LandmarkerConfig  # noqa: E402

# Up to two faces are looked for, so that a second person in the picture is seen and reported.
MAX_FACES = 2


@dataclass(frozen=True)
class FrameFaces:
    count: int  # faces found (0, 1 or MAX_FACES meaning "several")
    landmarks: Optional[np.ndarray]  # (478, 2) float32 pixels of the original frame, when count == 1
    blendshapes: Optional[np.ndarray]  # (52,) MediaPipe's own scores, when asked for and count == 1


class VideoLandmarker:
    """One clip's landmarker: fresh tracking state per clip, so a clip's result never depends on another."""

    def __init__(self, bundle: str, cfg: LandmarkerConfig):
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=bundle),
            running_mode=vision.RunningMode.VIDEO,
            num_faces=MAX_FACES,
            min_face_detection_confidence=cfg.min_detection_confidence,
            min_face_presence_confidence=cfg.min_presence_confidence,
            min_tracking_confidence=cfg.min_tracking_confidence,
            output_face_blendshapes=cfg.blendshapes,
        )
        self._landmarker = vision.FaceLandmarker.create_from_options(options)
        self._last_timestamp = -1

    def __enter__(self) -> "VideoLandmarker":
        return self

    def __exit__(self, *exc: object) -> None:
        self._landmarker.close()

    def detect(self, rgb: np.ndarray, timestamp_ms: int) -> FrameFaces:
        """Faces in one RGB uint8 frame; timestamps must increase (VIDEO mode tracks between frames)."""
        timestamp_ms = max(int(timestamp_ms), self._last_timestamp + 1)
        self._last_timestamp = timestamp_ms
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        result = self._landmarker.detect_for_video(image, timestamp_ms)
        count = len(result.face_landmarks)
        if count != 1:
            return FrameFaces(count, None, None)
        height, width = rgb.shape[:2]
        points = result.face_landmarks[0]
        if len(points) != NUM_MESH_LANDMARKS:
            raise RuntimeError(f"the landmarker returned {len(points)} points, expected {NUM_MESH_LANDMARKS}; "
                               "is the bundle MediaPipe's face_landmarker.task?")
        # MediaPipe's blendshape graph scales the normalised points by the frame size in float32, as here.
        xy = np.array([(p.x, p.y) for p in points], dtype=np.float32) * np.array([width, height], dtype=np.float32)
        scores = None
        if result.face_blendshapes:
            scores = np.array([c.score for c in result.face_blendshapes[0]], dtype=np.float32)
            assert scores.shape == (NUM_BLENDSHAPES,)
        return FrameFaces(1, xy, scores)
