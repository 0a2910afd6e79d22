"""The decoded dataset: one row per sample, held as plain numpy arrays (cheap to index, to cache, to fork)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Mapping

import numpy as np


@dataclass
class Samples:
    flow: np.ndarray  # (N, H, W, 3) uint8, RGB, HSV-encoded optical flow
    expression_landmarks: np.ndarray  # (N, 146, 2) float32, pixels of the video frame
    baseline_landmarks: np.ndarray  # (N, 146, 2) float32
    dynamics: np.ndarray  # (N,) int64, 0..5 (or an ignored value)
    synkinesis: np.ndarray  # (N,) int64, 0..3 (or an ignored value)
    dynamics_valid: np.ndarray  # (N,) bool, False where the label is an ignored value
    synkinesis_valid: np.ndarray  # (N,) bool
    video: np.ndarray  # (N,) str, patient recording id (shared across expression folders)
    expression: np.ndarray  # (N,) str, expression folder name
    frame: np.ndarray  # (N,) str, frame part of the folder name
    folder: np.ndarray  # (N,) str, sample folder relative to the dataset root: "<expression>/<video>_<frame>"

    def __len__(self) -> int:
        return len(self.video)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def targets(self, rows: np.ndarray | slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """(N, 2) grades [dynamics, synkinesis] of `rows` and (N, 2) bool: whether each label counts."""
        return (np.stack([self.dynamics[rows], self.synkinesis[rows]], axis=1),
                np.stack([self.dynamics_valid[rows], self.synkinesis_valid[rows]], axis=1))

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> "Samples":
        return cls(**{name: arrays[name] for name in cls.field_names()})


def flow_input(flow_images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 flow images → the model's (N, 3, H, W) float32 input in [0, 1] (un-augmented)."""
    chw = np.ascontiguousarray(np.asarray(flow_images).transpose(0, 3, 1, 2), dtype=np.float32)
    chw /= 255
    return chw
