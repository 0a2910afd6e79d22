"""Dense optical flow between two frames and its HSV colour-wheel image, as real flow pipelines make it.

Encoding (OpenCV's convention): hue = direction (OpenCV H = angle in degrees / 2, image axes x right,
y down), saturation = 255, value = magnitude / max_magnitude, clipped to 1. The magnitude scale is a
FIXED number of pixels, not each image's own maximum, so that brightness means the same movement in
every image.
"""

from __future__ import annotations

import cv2
import numpy as np

FLOW_METHODS = ("farneback", "dis")


def _check_gray(name: str, image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError(
            f"{name} must be a 2-D uint8 grey image, got "
            f"{getattr(image, 'dtype', type(image).__name__)} of shape {getattr(image, 'shape', '?')}"
        )


def compute_flow(prev_gray: np.ndarray, next_gray: np.ndarray, method: str = "farneback") -> np.ndarray:
    """Dense flow (H, W, 2) float32 in pixels: where each pixel of `prev_gray` moves to in `next_gray`."""
    _check_gray("prev_gray", prev_gray)
    _check_gray("next_gray", next_gray)
    if prev_gray.shape != next_gray.shape:
        raise ValueError(f"frames differ in size: {prev_gray.shape} vs {next_gray.shape}")
    if method == "farneback":
        # OpenCV's documented example settings, the ones most face-flow pipelines use.
        flow = cv2.calcOpticalFlowFarneback(prev_gray, next_gray, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    elif method == "dis":
        flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(prev_gray, next_gray, None)
    else:
        raise ValueError(f"unknown flow method {method!r}; choose one of {FLOW_METHODS}")
    return flow.astype(np.float32, copy=False)


def resize_flow(flow: np.ndarray, size: int) -> np.ndarray:
    """Flow resampled to size x size pixels, its vectors rescaled into the new pixel units."""
    height, width = flow.shape[:2]
    resized = cv2.resize(flow, (size, size), interpolation=cv2.INTER_AREA)
    resized[..., 0] *= size / width
    resized[..., 1] *= size / height
    return resized


def _check_flow(flow: np.ndarray) -> None:
    if not isinstance(flow, np.ndarray) or flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be an (H, W, 2) array, got shape {getattr(flow, 'shape', '?')}")


def _check_max_magnitude(max_magnitude: float) -> None:
    if not max_magnitude > 0:
        raise ValueError(f"max_magnitude must be positive, got {max_magnitude}")


def encode_flow(flow: np.ndarray, max_magnitude: float) -> np.ndarray:
    """HSV colour-wheel image of `flow` as uint8 RGB (H, W, 3); magnitudes >= max_magnitude are full value."""
    _check_flow(flow)
    _check_max_magnitude(max_magnitude)
    flow = flow.astype(np.float32, copy=False)
    magnitude, angle = cv2.cartToPolar(flow[..., 0], flow[..., 1], angleInDegrees=True)
    hsv = np.empty(flow.shape[:2] + (3,), dtype=np.uint8)
    hsv[..., 0] = np.round(angle / 2.0).astype(np.int32) % 180
    hsv[..., 1] = 255
    hsv[..., 2] = np.round(np.clip(magnitude / max_magnitude, 0.0, 1.0) * 255.0).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def decode_flow(rgb: np.ndarray, max_magnitude: float) -> np.ndarray:
    """The flow (H, W, 2) float32 an encode_flow image stands for (magnitudes saturate at max_magnitude)."""
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"flow image must be (H, W, 3) RGB, got shape {getattr(rgb, 'shape', '?')}")
    _check_max_magnitude(max_magnitude)
    hsv = cv2.cvtColor(_as_float_rgb(rgb), cv2.COLOR_RGB2HSV)  # float: H in degrees, V in [0, 1]
    magnitude = hsv[..., 2] * max_magnitude
    u, v = cv2.polarToCart(magnitude, hsv[..., 0], angleInDegrees=True)
    return np.stack([u, v], axis=-1).astype(np.float32)


def _as_float_rgb(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    return image.astype(np.float32)


def mirror_flow_image(image: np.ndarray) -> np.ndarray:
    """The flow image of the horizontally mirrored scene: flipped left-right and u -> -u.

    A direction angle t becomes 180 deg - t. The hue is changed in float HSV so that mirroring twice
    gives the image back (up to float rounding; uint8 images round once per call). Float images are
    non-negative RGB (any scale: the value channel carries it through unchanged). A stack (..., H, W, 3)
    of images is mirrored image by image, in one pass (the conversions are per pixel).
    """
    if not isinstance(image, np.ndarray) or image.ndim < 3 or image.shape[-1] != 3:
        raise ValueError(f"flow image must be (H, W, 3) RGB, got shape {getattr(image, 'shape', '?')}")
    flipped = np.ascontiguousarray(_as_float_rgb(image)[..., ::-1, :]).reshape(-1, image.shape[-2], 3)
    hsv = cv2.cvtColor(flipped, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = np.mod(180.0 - hsv[..., 0], 360.0)
    mirrored = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).reshape(image.shape)
    if image.dtype == np.uint8:
        return np.clip(np.round(mirrored * 255.0), 0, 255).astype(np.uint8)
    return mirrored.astype(image.dtype, copy=False)
