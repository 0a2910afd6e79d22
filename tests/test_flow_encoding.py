"""Flow computation and its HSV image: direction as hue, magnitude on a fixed scale, mirroring."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facedyn.flow.encoding import (FLOW_METHODS, compute_flow, decode_flow, encode_flow, mirror_flow_image,
                                        resize_flow)


def _random_flow(seed: int, shape=(40, 48), scale=3.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, scale, shape + (2,)).astype(np.float32)


def _textured(seed: int, size: int = 96) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, 1.0, (size, size)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), 1.5)
    return np.clip(128 + 40 * noise / noise.std(), 0, 255).astype(np.uint8)


def test_hue_is_direction_and_value_is_magnitude_in_opencv_convention():
    directions = {0.0: (1.0, 0.0), 90.0: (0.0, 1.0), 180.0: (-1.0, 0.0), 270.0: (0.0, -1.0)}  # y points down
    for degrees, (u, v) in directions.items():
        flow = np.zeros((4, 4, 2), np.float32)
        flow[...] = (2.0 * u, 2.0 * v)
        hsv = cv2.cvtColor(encode_flow(flow, max_magnitude=4.0), cv2.COLOR_RGB2HSV)
        assert abs(int(hsv[0, 0, 0]) - degrees / 2) <= 1
        assert hsv[0, 0, 1] == 255
        assert abs(int(hsv[0, 0, 2]) - 128) <= 1  # 2 of 4 pixels: half brightness


def test_round_trip_within_quantisation_and_saturation_at_max_magnitude():
    flow = _random_flow(0)
    decoded = decode_flow(encode_flow(flow, max_magnitude=12.0), max_magnitude=12.0)
    magnitude = np.linalg.norm(flow, axis=-1)
    # 8-bit hue (2 degrees) and value (1/255 of 12 px) bound the error.
    assert np.all(np.linalg.norm(decoded - flow, axis=-1) <= 0.05 * magnitude + 0.08)
    saturated = decode_flow(encode_flow(flow * 10, max_magnitude=12.0), max_magnitude=12.0)
    big = magnitude * 10 > 12.5
    assert np.allclose(np.linalg.norm(saturated, axis=-1)[big], 12.0, atol=0.1)


def test_magnitude_scale_is_fixed_not_per_image():
    small = np.zeros((8, 8, 2), np.float32)
    small[..., 0] = 1.0
    both = small.copy()
    both[:4] *= 3.0  # another region moving more must not dim the 1-pixel region
    a = encode_flow(small, max_magnitude=4.0)
    b = encode_flow(both, max_magnitude=4.0)
    assert np.array_equal(a[4:], b[4:])


def test_mirror_flips_image_and_direction():
    flow = _random_flow(1)
    mirrored = decode_flow(mirror_flow_image(encode_flow(flow, 10.0)), 10.0)
    expected = flow[:, ::-1].copy()
    expected[..., 0] *= -1.0
    magnitude = np.linalg.norm(expected, axis=-1)
    unsaturated = magnitude < 9.5
    error = np.linalg.norm(mirrored - expected, axis=-1)
    assert np.all((error <= 0.06 * magnitude + 0.1)[unsaturated])


def test_mirror_twice_is_identity_and_keeps_dtype():
    image = encode_flow(_random_flow(2), 6.0)
    as_float = image.astype(np.float32) / 255.0
    twice = mirror_flow_image(mirror_flow_image(as_float))
    assert twice.dtype == np.float32 and np.allclose(twice, as_float, atol=1e-5)
    twice_uint8 = mirror_flow_image(mirror_flow_image(image))
    assert twice_uint8.dtype == np.uint8 and np.abs(twice_uint8.astype(int) - image).max() <= 1


@pytest.mark.parametrize("method", FLOW_METHODS)
def test_compute_flow_recovers_a_known_shift(method):
    first = _textured(3)
    shift = (2.0, -1.0)
    second = cv2.warpAffine(first, np.float32([[1, 0, shift[0]], [0, 1, shift[1]]]), first.shape[::-1],
                            borderMode=cv2.BORDER_REFLECT)
    flow = compute_flow(first, second, method)
    assert flow.shape == first.shape + (2,) and flow.dtype == np.float32
    inner = flow[16:-16, 16:-16].reshape(-1, 2)
    assert np.allclose(np.median(inner, axis=0), shift, atol=0.25)


def test_resize_flow_rescales_vectors():
    flow = np.zeros((224, 224, 2), np.float32)
    flow[..., 0], flow[..., 1] = 4.0, -2.0
    small = resize_flow(flow, 112)
    assert small.shape == (112, 112, 2)
    assert np.allclose(small[..., 0], 2.0) and np.allclose(small[..., 1], -1.0)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="prev_gray must be a 2-D uint8"):
        compute_flow(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="differ in size"):
        compute_flow(np.zeros((8, 8), np.uint8), np.zeros((8, 9), np.uint8))
    with pytest.raises(ValueError, match="unknown flow method"):
        compute_flow(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8), "lucas")
    with pytest.raises(ValueError, match=r"\(H, W, 2\)"):
        encode_flow(np.zeros((8, 8)), 1.0)
    with pytest.raises(ValueError, match="max_magnitude must be positive"):
        encode_flow(np.zeros((8, 8, 2)), 0.0)
    with pytest.raises(ValueError, match="RGB"):
        mirror_flow_image(np.zeros((8, 8), np.uint8))
