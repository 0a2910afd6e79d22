"""Head-motion compensation: the fit, its mapping into the flow image, the crop, and the data pipeline around it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facedyn.data import DataError, load_training_data
from facedyn.data.head_motion import (STABLE_MESH_POINTS, STABLE_POINTS, CompensationSettings, compensate_images,
                                      face_box_crop, fit_transform, frame_crop, global_motion, motion_field)
from facedyn.data.loading import HEAD_MOTION_FILE
from facedyn.data.synthetic import ensure_dataset, preset
from facedyn.flow.encoding import decode_flow, encode_flow
from facedyn.landmarks import LANDMARK_SUBSET_IDXS
from tests.mediapipe_fixtures import read_landmarks
from tests.test_data_fixtures import folder_config

MAX_FLOW = 4.0


def _similarity(degrees: float, scale: float, shift: tuple[float, float], centre: np.ndarray) -> np.ndarray:
    angle = np.radians(degrees)
    linear = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.hstack([linear, (centre - linear @ centre + shift)[:, None]])


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


@pytest.fixture(scope="module")
def portrait(mediapipe_fixtures: Path) -> np.ndarray:
    """MediaPipe's real portrait landmarks (146-point subset) in a 224 x 224 frame."""
    points = read_landmarks(mediapipe_fixtures / "face_blendshapes_in_landmarks.prototxt", 820, 1024)
    subset = points[list(LANDMARK_SUBSET_IDXS)]
    low, high = subset.min(axis=0), subset.max(axis=0)
    return ((subset - (low + high) / 2) * 170 / (high - low).max() + 112).astype(np.float64)


def test_stable_points_are_mesh_points_of_the_subset() -> None:
    assert [LANDMARK_SUBSET_IDXS[i] for i in STABLE_POINTS] == list(STABLE_MESH_POINTS)


@pytest.mark.parametrize("model", ["similarity", "affine"])
def test_fit_recovers_the_motion_despite_a_stable_point_that_moved(portrait: np.ndarray, model: str) -> None:
    truth = _similarity(2.0, 1.02, (3.0, -2.0), portrait.mean(axis=0))
    source = portrait[STABLE_POINTS]
    target = _apply(truth, source)
    target[0] += [0.0, 15.0]  # a detector slip on one point: least squares would be off by ~1 px
    error = _apply(fit_transform(source, target, model), portrait) - _apply(truth, portrait)
    assert np.abs(error).max() < 0.1


def _field_image(matrix: np.ndarray, crop_scale: np.ndarray, crop_offset: np.ndarray) -> np.ndarray:
    return encode_flow(motion_field(matrix, crop_scale, crop_offset, 112), MAX_FLOW)


def test_a_pure_head_motion_is_removed_in_the_flow_images_frame(portrait: np.ndarray) -> None:
    """Flow images of the 224 px frame showing only a known head motion: nothing is left on the face."""
    truth = _similarity(1.5, 1.01, (2.0, -3.0), np.array([100.0, 130.0]))
    crop = frame_crop(1, (224.0, 224.0), 112)
    image = _field_image(truth, crop.scale[0], crop.offset[0])
    images = image[None].copy()
    report = compensate_images(images, portrait[None], _apply(truth, portrait)[None],
                               CompensationSettings("similarity", "frame", False, MAX_FLOW, 112, (224.0, 224.0), "none"))
    before, after = decode_flow(image, MAX_FLOW), decode_flow(images[0], MAX_FLOW)
    points = crop.to_image(portrait[None])
    assert global_motion(before[None], points)[0] > 1.0
    assert global_motion(after[None], points)[0] < 0.06  # uint8 encoding: hue steps of 2 deg
    assert report.crop_fit_r2 > 0.99 and report.global_motion_after_px < 0.06
    assert abs(report.rotation_deg_median - 1.5) < 0.01
    corner = after[:5, :5]  # the background did not move with the head: left as it was
    np.testing.assert_allclose(corner, before[:5, :5], atol=0.06)


def test_an_unknown_face_box_crop_is_estimated(portrait: np.ndarray) -> None:
    """Landmarks in a 640x480 video frame, flow images of a face box around them (not given): found, then removed."""
    rng = np.random.default_rng(3)
    faces, moved, images = [], [], []
    for _ in range(6):
        face = portrait * rng.uniform(1.0, 1.6) + rng.uniform([150, 60], [350, 150])
        truth = _similarity(rng.uniform(-2, 2), rng.uniform(0.99, 1.01), tuple(rng.uniform(-4, 4, 2)), face.mean(axis=0))
        crop = face_box_crop(face[None], 112, 1.4, 0.05, -0.1)
        faces.append(face)
        moved.append(_apply(truth, face))
        images.append(_field_image(truth, crop.scale[0], crop.offset[0]))
    images = np.stack(images)
    report = compensate_images(images, np.stack(faces), np.stack(moved),
                               CompensationSettings("similarity", "face_box", False, MAX_FLOW, 112, None, "none"))
    np.testing.assert_allclose(report.crop_box, (1.4, 0.05, -0.1), atol=0.02)
    assert report.crop_fit_r2 > 0.95
    assert report.global_motion_before_px > 0.5 and report.global_motion_after_px < 0.05


@pytest.fixture(scope="module")
def recordings(tmp_path_factory, landmarker_task) -> dict[str, Path]:
    """The same synthetic subjects filmed with a moving and with a still head (and the same landmark noise)."""
    base = tmp_path_factory.mktemp("head-motion")
    settings = dict(videos=2, frames_per_video=1, expressions=["smile", "eye_close", "brow_raise"], seed=4)
    return {
        "moving": ensure_dataset(preset("hard", **settings, root=str(base / "moving"))),
        "still": ensure_dataset(preset("hard", **settings, head_motion_deg=0.0, head_motion_px=0.0, root=str(base / "still"))),
    }


def _compensating(root: Path, cache: Path, **overrides):
    return folder_config(root, cache, **{"flow.compensate_head_motion": True, "flow.max_magnitude": MAX_FLOW,
                                         "flow.crop": "frame", "landmarks.image_width": 224,
                                         "landmarks.image_height": 224, **overrides})


def test_generated_head_motion_falls_to_the_still_heads_level(recordings: dict[str, Path], tmp_path: Path) -> None:
    moving = load_training_data(_compensating(recordings["moving"], tmp_path / "cache"), tmp_path / "run")
    raw = load_training_data(folder_config(recordings["moving"], tmp_path / "cache"), None)
    still = load_training_data(folder_config(recordings["still"], tmp_path / "cache"), None)
    still_compensated = still.samples.flow.copy()
    compensate_images(still_compensated, still.samples.baseline_landmarks, still.samples.expression_landmarks,
                      CompensationSettings("similarity", "frame", False, MAX_FLOW, 112, (224.0, 224.0), "none"))
    report = json.loads((tmp_path / "run" / HEAD_MOTION_FILE).read_text())
    crop = frame_crop(len(raw.samples), (224.0, 224.0), 112)
    points = crop.to_image(raw.samples.baseline_landmarks)

    def motion(images: np.ndarray) -> float:
        return float(np.median(global_motion(np.stack([decode_flow(f, MAX_FLOW) for f in images]), points)))

    # measured: raw 1.96 px, landmark fit 0.95, refined 0.52; a still head 0.53 (landmark fit alone 0.72)
    assert motion(raw.samples.flow) > 2 * motion(still.samples.flow) + 0.5  # head motion dominates the raw flow
    assert report["global_motion_landmark_fit_px"] < 0.6 * motion(raw.samples.flow)
    assert report["global_motion_landmark_fit_px"] < motion(still_compensated) + 0.4  # left: out-of-plane rotation
    assert motion(moving.samples.flow) < motion(still.samples.flow) + 0.1  # refined: the still head's level
    assert report["global_motion_before_px"] == pytest.approx(motion(raw.samples.flow), abs=1e-3)
    assert report["global_motion_after_px"] == pytest.approx(motion(moving.samples.flow), abs=1e-3)
    assert report["crop_fit_r2"] > 0.5


def test_the_cache_holds_compensated_flow_under_its_own_key(recordings: dict[str, Path], tmp_path: Path, caplog) -> None:
    raw = load_training_data(folder_config(recordings["moving"], tmp_path / "cache"), None)
    first = load_training_data(_compensating(recordings["moving"], tmp_path / "cache"), None)
    caplog.clear()
    with caplog.at_level("INFO", logger="facedyn.data"):
        warm = load_training_data(_compensating(recordings["moving"], tmp_path / "cache"), tmp_path / "run")
    assert len([p for p in (tmp_path / "cache").iterdir() if p.is_dir()]) == 2  # one per setting
    assert "loaded" in caplog.text and "head motion compensated" in caplog.text
    np.testing.assert_array_equal(warm.samples.flow, first.samples.flow)
    assert np.abs(warm.samples.flow.astype(int) - raw.samples.flow).mean() > 1  # and it differs from the raw flow
    assert json.loads((tmp_path / "run" / HEAD_MOTION_FILE).read_text())["samples"] == len(raw.samples)


def test_flow_that_does_not_fit_the_landmarks_is_refused(recordings: dict[str, Path], tmp_path: Path) -> None:
    wrong_frame = _compensating(recordings["moving"], tmp_path / "cache", **{"landmarks.image_width": 448,
                                                                          "landmarks.image_height": 448})
    with pytest.raises(DataError, match=r"do not line up with the landmarks .* reproduces -?\d+% of their motion") as info:
        load_training_data(wrong_frame, None)
    assert "\n" not in str(info.value)
    no_scale = folder_config(recordings["moving"], tmp_path / "cache", **{"flow.compensate_head_motion": True})
    with pytest.raises(DataError, match="data.flow.max_magnitude"):
        load_training_data(no_scale, None)
    no_frame = _compensating(recordings["moving"], tmp_path / "cache", **{"landmarks.image_width": None})
    with pytest.raises(DataError, match="data.flow.crop=frame needs"):
        load_training_data(no_frame, None)
    with pytest.raises(DataError, match=r"would add motion, not remove it .* look registered already"):
        load_training_data(_compensating(recordings["still"], tmp_path / "cache"), None)  # nothing to take out
