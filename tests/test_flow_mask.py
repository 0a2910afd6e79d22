"""The face mask of flow images (facedyn.flow.mask): its geometry on real MediaPipe landmarks, and that the
synthetic generator and head-motion compensation apply it (prepare.py's images: tests/test_prepare_videos.py)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facedyn.data import DataError
from facedyn.data.cache import cache_location
from facedyn.data.config import DataConfig
from facedyn.data.head_motion import CompensationSettings, compensate_images, frame_crop, motion_field
from facedyn.data.settings import ReaderSettings
from facedyn.data.synthetic import SyntheticConfig, generate_dataset
from facedyn.data.synthetic.generator import clip_samples, sample_subject
from facedyn.data.synthetic.mesh import canonical_mesh
from facedyn.flow.encoding import decode_flow, encode_flow
from facedyn.flow.mask import FEATHER_IOD, MARGIN_IOD, face_weight, interocular_distance, mask_flow
from facedyn.landmarks import LANDMARK_SUBSET_IDXS
from tests.mediapipe_fixtures import read_landmarks

SIZE, MAX_FLOW = 112, 4.0


def hull_distance_in_iod(landmarks: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Per pixel centre, its distance beyond the landmarks' convex hull (0 inside) in inter-ocular distances,
    by OpenCV's point-polygon test (not the code under test)."""
    hull = cv2.convexHull(landmarks.astype(np.float32))
    distance = np.array([[max(0.0, -cv2.pointPolygonTest(hull, (x + 0.5, y + 0.5), True)) for x in range(size)]
                         for y in range(size)])
    eyes = [landmarks[[LANDMARK_SUBSET_IDXS.index(a), LANDMARK_SUBSET_IDXS.index(b)]].mean(axis=0)
            for a, b in ((33, 133), (362, 263))]
    return distance / np.linalg.norm(eyes[0] - eyes[1])


@pytest.fixture(scope="module")
def portrait(mediapipe_fixtures: Path) -> np.ndarray:
    """MediaPipe's real portrait landmarks (146-point subset) in a 112 px flow image, framed as prepare.py
    frames faces (the face 80 % of the side)."""
    points = read_landmarks(mediapipe_fixtures / "face_blendshapes_in_landmarks.prototxt", 820, 1024)
    subset = points[list(LANDMARK_SUBSET_IDXS)]
    low, high = subset.min(axis=0), subset.max(axis=0)
    return (subset - (low + high) / 2) * 0.8 * SIZE / (high - low).max() + SIZE / 2


def test_weight_is_zero_beyond_the_widened_hull_one_inside_and_falls_smoothly(portrait: np.ndarray) -> None:
    weight = face_weight(portrait, SIZE)
    beyond = hull_distance_in_iod(portrait)
    assert np.all(weight[beyond > MARGIN_IOD + 0.01] == 0.0)
    assert np.all(weight[beyond < MARGIN_IOD - FEATHER_IOD - 0.01] == 1.0)
    band = (beyond > MARGIN_IOD - FEATHER_IOD + 0.01) & (beyond < MARGIN_IOD - 0.01)
    assert band.sum() > 100 and np.all((weight[band] > 0) & (weight[band] < 1))
    order = np.argsort(beyond[band])
    assert np.all(np.diff(weight[band][order]) <= 1e-6)  # the further out, the less
    # No hard edge: a raised cosine over the feather (3 px here), neighbours differ by at most pi / 2 / 3.
    step = max(np.abs(np.diff(weight, axis=0)).max(), np.abs(np.diff(weight, axis=1)).max())
    assert step <= np.pi / 2 / (FEATHER_IOD * interocular_distance(portrait)) * 1.02 < 0.6
    # The margin leaves the crop's corners out and keeps the whole face.
    assert weight[:8, :8].max() == 0 and weight[-8:, -8:].max() == 0
    assert np.all(weight[beyond == 0] == 1.0)


def test_masked_image_keeps_the_face_bytes_and_is_black_beyond(portrait: np.ndarray) -> None:
    flow = np.random.default_rng(0).normal(0.0, 1.5, (SIZE, SIZE, 2)).astype(np.float32)
    plain = encode_flow(flow, MAX_FLOW)
    masked = encode_flow(mask_flow(flow, portrait, "face"), MAX_FLOW)
    beyond = hull_distance_in_iod(portrait)
    inside = beyond < MARGIN_IOD - FEATHER_IOD - 0.01
    np.testing.assert_array_equal(masked[inside], plain[inside])
    assert np.all(masked[beyond > MARGIN_IOD + 0.01] == 0)
    assert mask_flow(flow, portrait, "none") is flow  # none: today's images, byte for byte
    with pytest.raises(ValueError, match="unknown flow mask 'hull'"):
        mask_flow(flow, portrait, "hull")


def _one_peak(cfg: SyntheticConfig):
    mesh = canonical_mesh()
    subject, rng = sample_subject(mesh, cfg, 0)
    return next(clip_samples(mesh, cfg, subject, "smile", rng))


def test_generator_images_are_masked_and_none_keeps_them(landmarker_task, tmp_path: Path) -> None:
    # A moving head (the hard preset's) puts flow on the whole face and its outline, noise on the background.
    settings = dict(frames_per_video=1, head_motion_deg=1.0, head_motion_px=2.0, expressions=["smile"], videos=1)
    masked, plain = (_one_peak(SyntheticConfig(**settings, flow_mask=mask)) for mask in ("face", "none"))
    np.testing.assert_array_equal(masked.baseline_landmarks, plain.baseline_landmarks)  # same draws
    points = (masked.baseline_landmarks + 0.5) * SIZE / SyntheticConfig().render_size  # render px -> image px
    beyond = hull_distance_in_iod(points)
    outside, inside = beyond > MARGIN_IOD + 0.01, beyond < MARGIN_IOD - FEATHER_IOD - 0.01
    assert np.count_nonzero(plain.flow_image[outside].max(axis=1)) > 100  # unmasked: flow out there
    assert np.all(masked.flow_image[outside] == 0)
    np.testing.assert_array_equal(masked.flow_image[inside], plain.flow_image[inside])
    # The written JPEG: black beyond the margin but for compression's ringing (a grey level or two; measured:
    # mean 0.010 px, 63 % of the pixels exactly 0, against the unmasked flow's 0.060 px and 1.5 %).
    root = generate_dataset(tmp_path / "ds", SyntheticConfig(**settings))
    written = cv2.cvtColor(cv2.imread(str(root / "smile" / "s0000_0" / "optical_flow.jpg")), cv2.COLOR_BGR2RGB)
    magnitude = np.linalg.norm(decode_flow(written, MAX_FLOW), axis=-1)[outside]
    unmasked = np.linalg.norm(decode_flow(plain.flow_image, MAX_FLOW), axis=-1)[outside]
    assert magnitude.mean() < 0.25 * unmasked.mean() and np.mean(magnitude == 0) > 0.5
    assert magnitude.max() < 0.1 * MAX_FLOW


def test_compensated_images_are_masked(portrait: np.ndarray) -> None:
    """Flow images of the whole frame showing a head motion and a swaying background; compensated with the
    face mask: the face's flow as without it, nothing beyond the widened hull."""
    frame = (portrait - SIZE / 2) * 1.2 + 112  # landmarks in a 224 px frame
    angle = np.radians(1.5)
    truth = np.array([[np.cos(angle), -np.sin(angle), 2.0], [np.sin(angle), np.cos(angle), -3.0]])
    crop = frame_crop(1, (224.0, 224.0), SIZE)
    image = encode_flow(motion_field(truth, crop.scale[0], crop.offset[0], SIZE), MAX_FLOW)
    expression = frame @ truth[:, :2].T + truth[:, 2]
    results = {}
    for mask in ("face", "none"):
        images = image[None].copy()
        compensate_images(images, frame[None], expression[None],
                          CompensationSettings("similarity", "frame", True, MAX_FLOW, SIZE, (224.0, 224.0), mask))
        results[mask] = images[0]
    beyond = hull_distance_in_iod(crop.to_image(frame[None])[0])
    outside, inside = beyond > MARGIN_IOD + 0.01, beyond < MARGIN_IOD - FEATHER_IOD - 0.01
    assert np.count_nonzero(results["none"][outside].max(axis=1)) > 1000  # the background's motion is left
    assert np.all(results["face"][outside] == 0)
    np.testing.assert_array_equal(results["face"][inside], results["none"][inside])


def test_data_settings_resolve_the_mask_and_key_the_cache(tmp_path: Path) -> None:
    def settings(**flow) -> ReaderSettings:
        cfg = DataConfig(kind=flow.pop("kind", "synthetic"), root=str(tmp_path))
        for key, value in {"compensate_head_motion": True, "max_magnitude": MAX_FLOW, **flow}.items():
            setattr(cfg.flow, key, value)
        return ReaderSettings.from_config(cfg)

    assert settings().head_motion.mask == "face"  # as the synthetic data were made (data.synthetic.flow_mask)
    cfg = DataConfig()
    cfg.synthetic.flow_mask, cfg.flow.compensate_head_motion = "none", True
    assert ReaderSettings.from_config(cfg).head_motion.mask == "none"
    assert settings(kind="folder").head_motion.mask == "face"  # prepare.py's default
    assert settings(mask="none").head_motion.mask == "none"
    keys = {mask: cache_location(tmp_path, tmp_path, [], settings(mask=mask)) for mask in ("face", "none")}
    assert keys["face"] != keys["none"]  # compensated images of each mask are cached apart
    with pytest.raises(DataError, match=r"^data.flow.mask=none masks the images head-motion compensation rewrites"):
        settings(compensate_head_motion=False, mask="none")
    with pytest.raises(ValueError, match="flow_mask must be one of face, none"):
        SyntheticConfig(flow_mask="hull")
    assert SyntheticConfig(flow_mask="none").digest() != SyntheticConfig().digest()  # its own cached dataset
