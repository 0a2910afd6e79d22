"""Augmentation keeps image and landmarks consistent, mirrors flow directions, and is reproducible."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import RandomSampler

from facedyn.data import load_training_data
from facedyn.data.augment import Augmenter, Frame, mirror_landmarks, mirror_sample
from facedyn.data.config import AugmentConfig
from facedyn.data.dataset import EpochSampler, make_loader
from facedyn.flow.encoding import decode_flow, encode_flow
from facedyn.landmarks import LANDMARK_SUBSET_IDXS, SUBSET_MIRROR_PERMUTATION
from tests.mediapipe_fixtures import read_landmarks
from tests.test_data_fixtures import dataset_root, folder_config  # noqa: F401

MAX_FLOW = 4.0
ONLY = dict(shift=0.0, scale=0.0, brightness=0.0, noise_std=0.0, landmark_jitter=0.0, hflip_p=0.0)


def _flow_field(size: int = 112) -> np.ndarray:
    """A smooth, asymmetric flow field: rightward-and-down on the left, upward on the right."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    return np.stack([2.5 * (1 - x) - 0.5, 1.5 * y - 1.2 * x], axis=-1)


def test_mirroring_twice_is_the_identity(mediapipe_fixtures: Path) -> None:
    portrait = read_landmarks(mediapipe_fixtures / "face_blendshapes_in_landmarks.prototxt", 820, 1024)
    face = portrait[list(LANDMARK_SUBSET_IDXS)].astype(np.float32)
    image = encode_flow(_flow_field(), MAX_FLOW)
    frame = Frame(0, 0, 820, 1024)
    once = mirror_sample(image, face, face + 1, frame)
    twice = mirror_sample(*once, frame)
    np.testing.assert_allclose(twice[1], face, atol=1e-4)
    np.testing.assert_allclose(twice[2], face + 1, atol=1e-4)
    assert np.abs(twice[0].astype(int) - image).max() <= 2  # uint8 rounding once per mirror
    assert np.abs(once[0].astype(int) - image).mean() > 20  # and once is far from the original


def test_mirror_negates_horizontal_flow_and_moves_landmarks_across() -> None:
    flow = _flow_field()
    image = encode_flow(flow, MAX_FLOW)
    landmarks = np.random.default_rng(0).uniform(100, 500, size=(146, 2)).astype(np.float32)
    augmenter = Augmenter(AugmentConfig(**{**ONLY, "hflip_p": 1.0}), frame_size=(640, 480))
    out, mirrored, _ = augmenter(image, landmarks, landmarks, epoch=0, row=0)

    decoded = decode_flow(np.round(out * 255).astype(np.uint8), MAX_FLOW)
    expected = flow[:, ::-1] * [-1, 1]  # the scene mirrored: positions flipped, u -> -u
    assert np.median(np.abs(decoded - expected)) < 0.05
    assert np.median(np.abs(decoded - flow)) > 0.5
    perm = np.asarray(SUBSET_MIRROR_PERMUTATION)
    np.testing.assert_allclose(mirrored[perm], np.stack([640 - landmarks[:, 0], landmarks[:, 1]], axis=1), atol=1e-3)


@pytest.mark.parametrize("hflip_p", [0.0, 1.0])
@pytest.mark.parametrize("frame_size", [(640, 480), None])
def test_shift_and_zoom_move_image_and_landmarks_together(hflip_p: float, frame_size) -> None:
    # A bright spot in the flow image where landmark 50 lies in a 640x480 video frame (image = frame resized).
    point = np.array([400.0, 150.0])
    size = 112
    image = np.zeros((size, size, 3), np.uint8)
    spot = point * [size / 640, size / 480]
    y, x = np.mgrid[0:size, 0:size]
    image[(x - spot[0]) ** 2 + (y - spot[1]) ** 2 <= 9] = 200
    landmarks = np.random.default_rng(1).uniform([0, 0], [640, 480], size=(146, 2)).astype(np.float32)
    landmarks[50] = point
    landmarks[[0, 1]] = [[0, 0], [640, 480]]  # landmarks span the frame: its own box is the frame too

    augmenter = Augmenter(AugmentConfig(**{**ONLY, "shift": 0.1, "scale": 0.15, "hflip_p": hflip_p}), frame_size)
    moved = 0.0
    for row in range(5):
        out, new_landmarks, _ = augmenter(image, landmarks, landmarks, epoch=0, row=row)
        weight = out.sum(axis=2)
        centroid = np.array([(weight * x).sum(), (weight * y).sum()]) / weight.sum()
        index = SUBSET_MIRROR_PERMUTATION[50] if hflip_p else 50
        np.testing.assert_allclose(centroid / [size / 640, size / 480], new_landmarks[index], atol=6.0)
        moved = max(moved, float(np.abs(new_landmarks[index] - (point if not hflip_p else [640 - point[0], point[1]])).max()))
    assert moved > 20  # the augmentation did move things


def test_noise_is_unbiased_independent_per_pixel_and_different_per_sample() -> None:
    grey = np.full((112, 112, 3), 128, np.uint8)  # mid-range: no clipping at 0 or 1
    augmenter = Augmenter(AugmentConfig(**{**ONLY, "noise_std": 0.05}))
    noise = np.stack([augmenter(grey, np.zeros((146, 2)), np.ones((146, 2)), epoch=0, row=row)[0] - 128 / 255
                      for row in range(40)])
    assert abs(noise.mean()) < 0.002
    assert abs(noise.std() - 0.05) < 0.002
    right_neighbour = np.corrcoef(noise[:, :, :-1].ravel(), noise[:, :, 1:].ravel())[0, 1]
    assert abs(right_neighbour) < 0.02
    same_pixel_across_samples = np.corrcoef(noise[:-1].reshape(39, -1).ravel(), noise[1:].reshape(39, -1).ravel())[0, 1]
    assert abs(same_pixel_across_samples) < 0.02
    again = augmenter(grey, np.zeros((146, 2)), np.ones((146, 2)), epoch=0, row=3)[0] - 128 / 255
    np.testing.assert_array_equal(again, noise[3])


def test_augmentation_depends_on_seed_epoch_and_row_only(dataset_root: Path, tmp_path: Path) -> None:
    data = load_training_data(folder_config(dataset_root, tmp_path / "cache"), None)
    rows = data.train_indices

    def items(epoch: int, positions: list[int], seed: int = 0) -> list[dict[str, torch.Tensor]]:
        data.cfg.augment.seed = seed
        dataset = data.make_dataset(rows, augment=True)
        return [dataset[epoch, p] for p in positions]  # (epoch, item): what EpochSampler hands the loader

    # A fresh dataset at epoch 3 (a resumed run) gives what one that went through epochs 0..2 gives.
    dataset = data.make_dataset(rows, augment=True)
    for epoch in range(3):
        dataset[epoch, 0]
    resumed = items(3, [0, 1])
    for key in resumed[0]:
        torch.testing.assert_close(dataset[3, 0][key], resumed[0][key], rtol=0, atol=0)
    # Another epoch or seed draws something else; the item's row, not its position, picks the draw.
    assert not torch.equal(items(4, [0])[0]["flow_image"], resumed[0]["flow_image"])
    assert not torch.equal(items(3, [0], seed=1)[0]["flow_image"], resumed[0]["flow_image"])
    data.cfg.augment.seed = 0
    reordered = data.make_dataset(rows[::-1], augment=True)
    torch.testing.assert_close(reordered[3, len(rows) - 1]["flow_image"], resumed[0]["flow_image"], rtol=0, atol=0)


def test_loader_order_is_reproducible_per_epoch(dataset_root: Path, tmp_path: Path) -> None:
    data = load_training_data(folder_config(dataset_root, tmp_path / "cache"), None)

    rows = data.train_indices[:12]

    def order(epoch: int) -> list[int]:
        loader = make_loader(data.make_dataset(rows, augment=True), 4, shuffle=True, epoch=epoch, seed=7)
        assert loader.sampler.epoch == epoch
        return torch.cat([batch["index"] for batch in loader]).tolist()

    assert order(2) == order(2) and order(2) != order(3)
    assert sorted(order(2)) == sorted(rows.tolist())


def test_a_worker_process_draws_the_same_batches(dataset_root: Path, tmp_path: Path) -> None:
    load_training_data(folder_config(dataset_root, tmp_path / "cache"), None)
    data = load_training_data(folder_config(dataset_root, tmp_path / "cache"), None)  # memory-mapped from the cache
    rows = data.train_indices[:8]

    def batches(workers: int) -> list[dict[str, torch.Tensor]]:
        dataset = data.make_dataset(rows, augment=True)
        return list(make_loader(dataset, 4, shuffle=True, epoch=5, seed=1, num_workers=workers))

    for in_process, in_worker in zip(batches(0), batches(1)):
        for key in in_process:
            torch.testing.assert_close(in_process[key], in_worker[key], rtol=0, atol=0)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_persistent_loader_serves_each_epoch_like_a_fresh_one(dataset_root: Path, tmp_path: Path, workers: int) -> None:
    data = load_training_data(folder_config(dataset_root, tmp_path / "cache"), None)
    rows = data.train_indices[:10]
    kept = make_loader(data.make_dataset(rows, augment=True), 4, shuffle=True, seed=1, num_workers=workers, persistent=True)
    for epoch in (3, 4, 3):
        kept.sampler.set_epoch(epoch)
        fresh = make_loader(data.make_dataset(rows, augment=True), 4, shuffle=True, epoch=epoch, seed=1)
        for got, expected in zip(kept, fresh, strict=True):
            for key in expected:
                torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0)


def test_epoch_order_is_a_seeded_random_samplers(dataset_root: Path, tmp_path: Path) -> None:
    # Runs made before EpochSampler shuffled with a RandomSampler seeded this way: same order, same results.
    seed = int(np.random.default_rng([7, 2]).integers(2**62))
    expected = list(RandomSampler(range(13), generator=torch.Generator().manual_seed(seed)))
    assert [item for _, item in EpochSampler(13, shuffle=True, seed=7, epoch=2)] == expected
    assert list(EpochSampler(3, shuffle=False, epoch=5)) == [(5, 0), (5, 1), (5, 2)]


def test_validation_data_is_never_augmented(dataset_root: Path, tmp_path: Path) -> None:
    data = load_training_data(folder_config(dataset_root, tmp_path / "cache"), None)
    for dataset in (data.make_dataset(data.val_indices, augment=False),):
        for epoch in (0, 5):
            item = dataset[epoch, 0]
            row = int(data.val_indices[0])
            np.testing.assert_array_equal(item["flow_image"].numpy(), data.samples.flow[row].transpose(2, 0, 1) / np.float32(255))
            np.testing.assert_array_equal(item["expression_landmarks"].numpy(), data.samples.expression_landmarks[row])
    data.cfg.augment.enabled = False
    off = data.make_dataset(data.train_indices, augment=True)
    row = int(data.train_indices[0])
    np.testing.assert_array_equal(off[0]["baseline_landmarks"].numpy(), data.samples.baseline_landmarks[row])


def test_items_have_the_trainers_format(dataset_root: Path, tmp_path: Path) -> None:
    data = load_training_data(folder_config(dataset_root, tmp_path / "cache"), None)
    row = int(data.train_indices[3])
    for augment in (False, True):
        item = data.make_dataset(data.train_indices, augment=augment)[3]
        assert item["flow_image"].shape == (3, 112, 112) and item["flow_image"].dtype == torch.float32
        assert 0.0 <= item["flow_image"].min() and item["flow_image"].max() <= 1.0
        for key in ("expression_landmarks", "baseline_landmarks"):
            assert item[key].shape == (146, 2) and item[key].dtype == torch.float32
        assert item["target"].tolist() == [data.samples.dynamics[row], data.samples.synkinesis[row]]
        assert item["target_valid"].tolist() == [1.0, 1.0] and item["index"].item() == row
        assert item["index"].dtype == torch.int64


def test_landmark_mirror_without_a_known_frame_stays_in_place() -> None:
    landmarks = np.random.default_rng(2).uniform([300, 200], [500, 420], size=(146, 2)).astype(np.float32)
    mirrored = mirror_landmarks(landmarks, Frame.around(landmarks))
    np.testing.assert_allclose(mirrored.min(axis=0), landmarks.min(axis=0), atol=1e-3)
    np.testing.assert_allclose(mirrored.max(axis=0), landmarks.max(axis=0), atol=1e-3)


def test_head_motion_moves_flow_on_the_face_and_expression_landmarks_alike(mediapipe_fixtures: Path) -> None:
    """A flow field that agrees with the landmarks' movement still agrees after a random head motion."""
    portrait = read_landmarks(mediapipe_fixtures / "face_blendshapes_in_landmarks.prototxt", 820, 1024)
    low, high = portrait.min(axis=0), portrait.max(axis=0)
    baseline = ((portrait[list(LANDMARK_SUBSET_IDXS)] - (low + high) / 2) * 300 / (high - low).max() + [320, 240])
    frame, size = Frame(0, 0, 640, 480), 112
    to_image = np.array([size / 640, size / 480])
    flow = _flow_field(size) * 0.5  # image pixels; the expression landmarks moved with it
    grid = np.stack(np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5), axis=-1)
    expression = baseline + np.stack([np.interp(baseline[:, 0] * to_image[0], grid[0, :, 0], flow[56, :, 0]),
                                      np.interp(baseline[:, 1] * to_image[1], grid[:, 0, 1], flow[:, 56, 1])], axis=1) / to_image
    flow = np.stack([np.broadcast_to(flow[56, :, 0], (size, size)), np.broadcast_to(flow[:, 56, 1][:, None], (size, size))], -1)
    image = encode_flow(flow, MAX_FLOW)
    cfg = AugmentConfig(**ONLY, head_motion_deg=2.0, head_motion_shift=0.02, head_motion_scale=0.02)
    out, moved, base_out = Augmenter(cfg, frame_size=(640, 480), max_magnitude=MAX_FLOW)(image, expression, baseline, 0, 3)

    np.testing.assert_array_equal(base_out, baseline.astype(np.float32))  # the baseline frame did not move
    assert np.abs(moved - expression).max() > 2.0
    decoded = decode_flow(np.round(out * 255).astype(np.uint8), MAX_FLOW)
    inside = [LANDMARK_SUBSET_IDXS.index(i) for i in (1, 4, 6, 168, 133, 362, 13, 14)]  # well inside the face
    at = decoded[(baseline[inside, 1] * to_image[1]).astype(int), (baseline[inside, 0] * to_image[0]).astype(int)]
    expected = (moved[inside] - baseline[inside]) * to_image  # where each point went, in image pixels
    assert np.abs(at - expected).max() < 0.15  # a pixel's centre vs the point, and 8-bit encoding
    np.testing.assert_allclose(decoded[:3, :3], decode_flow(image, MAX_FLOW)[:3, :3], atol=0.05)  # background stays
    again = Augmenter(cfg, frame_size=(640, 480), max_magnitude=MAX_FLOW)(image, expression, baseline, 0, 3)
    np.testing.assert_array_equal(again[1], moved)
    with pytest.raises(ValueError, match="max_magnitude"):
        Augmenter(cfg, frame_size=(640, 480))
