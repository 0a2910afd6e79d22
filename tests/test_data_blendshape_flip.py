"""A mirrored face swaps the real blendshape model's left and right scores, and the synthetic data reads cleanly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facedyn.data import load_training_data
from facedyn.data.augment import Frame, mirror_landmarks
from facedyn.landmarks import BLENDSHAPE_NAMES, LANDMARK_SUBSET_IDXS
from tests.mediapipe_fixtures import read_landmarks
from tests.test_data_fixtures import tiny_synthetic_config  # noqa: F401

PAIRS = [(BLENDSHAPE_NAMES.index(name), BLENDSHAPE_NAMES.index(name[: -len("Left")] + "Right"))
         for name in BLENDSHAPE_NAMES if name.endswith("Left")]
LEFT, RIGHT = [left for left, _ in PAIRS], [right for _, right in PAIRS]


def test_synthetic_dataset_is_read_split_and_cached_like_real_data(tiny_synthetic_config, tmp_path) -> None:
    data = load_training_data(tiny_synthetic_config, tmp_path / "run")
    assert len(data.samples) == 8 and not data.bad_samples
    assert set(data.samples.expression) == {"eye_close", "smile"}
    assert not set(data.samples.video[data.train_indices]) & set(data.samples.video[data.val_indices])
    assert data.landmark_frame == (224.0, 224.0)  # the generator's render size
    assert (tmp_path / "run" / "split.json").is_file() and (tmp_path / "run" / "bad_samples.csv").is_file()


@pytest.mark.real_model
def test_mirrored_landmarks_swap_left_and_right_blendshapes(tiny_synthetic_config, mediapipe_fixtures, landmarker_task) -> None:
    from facedyn.blendshapes import load

    data = load_training_data(tiny_synthetic_config, None)
    portrait = read_landmarks(mediapipe_fixtures / "face_blendshapes_in_landmarks.prototxt", 820, 1024)
    faces = [(np.asarray(data.samples.expression_landmarks), Frame(0, 0, 224, 224)),
             (portrait[None, list(LANDMARK_SUBSET_IDXS)].astype(np.float32), Frame(0, 0, 820, 1024))]
    model = load().eval()
    original, mirrored = [], []
    with torch.no_grad():
        for landmarks, frame in faces:
            original.append(model(torch.from_numpy(landmarks)).numpy())
            mirrored.append(model(torch.from_numpy(mirror_landmarks(landmarks, frame))).numpy())
    original, mirrored = np.concatenate(original), np.concatenate(mirrored)

    swapped = np.corrcoef(mirrored[:, LEFT].ravel(), original[:, RIGHT].ravel())[0, 1]
    unswapped = np.corrcoef(mirrored[:, LEFT].ravel(), original[:, LEFT].ravel())[0, 1]
    assert swapped > 0.95 and 1 - swapped < 0.3 * (1 - unswapped), (swapped, unswapped)
    swapped_error = np.abs(mirrored[:, LEFT] - original[:, RIGHT]).mean()
    unswapped_error = np.abs(mirrored[:, LEFT] - original[:, LEFT]).mean()
    assert swapped_error < 0.5 * unswapped_error, (swapped_error, unswapped_error)
    # Side-free scores (jawOpen, mouthPucker, ...) stay put.
    both_sides = set(LEFT) | set(RIGHT)
    central = [i for i in range(1, len(BLENDSHAPE_NAMES)) if i not in both_sides]
    assert np.abs(mirrored[:, central] - original[:, central]).mean() < swapped_error + 0.02
