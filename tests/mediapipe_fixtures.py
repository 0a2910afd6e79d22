"""Readers for MediaPipe's text-format test vectors in ../shared/fixtures/mediapipe."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np


def read_landmarks(path: Path, width: float, height: float) -> np.ndarray:
    """All landmarks of a NormalizedLandmarkList prototxt, as (N, 2) pixel coordinates."""
    text = Path(path).read_text()
    xs = re.findall(r"^\s*x:\s*([-+\d.eE]+)", text, re.M)
    ys = re.findall(r"^\s*y:\s*([-+\d.eE]+)", text, re.M)
    assert xs and len(xs) == len(ys), f"{path}: unexpected landmark format"
    return np.stack([np.asarray(xs, float) * width, np.asarray(ys, float) * height], axis=1)


def read_scores(path: Path) -> dict[str, float]:
    """Blendshape scores of a ClassificationList prototxt, by label."""
    text = Path(path).read_text()
    entries = re.findall(r"score:\s*([-+\d.eE]+).*?label:\s*\"([^\"]+)\"", text, re.S)
    if not entries:  # label may come before score
        entries = [(s, l) for l, s in re.findall(r"label:\s*\"([^\"]+)\".*?score:\s*([-+\d.eE]+)", text, re.S)]
    return {label: float(score) for score, label in entries}
