"""The report's pictures, as data URIs: flow images, landmark sets, face images, Grad-CAM overlays and the
flow colour legend."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from facedyn.flow.encoding import encode_flow

TILE = 168  # pixels of each image in the per-expression cards
BASELINE_BGR, EXPRESSION_BGR = (200, 120, 40), (40, 40, 220)
CAM_OPACITY = 0.5
WHEEL = 150


def data_uri(image_bgr: np.ndarray, fmt: str = ".png") -> str:
    """PNG (exact: flow images, drawings) or JPEG (photographs: faces, overlays; a tenth of the size)."""
    ok, encoded = cv2.imencode(fmt, image_bgr, [cv2.IMWRITE_JPEG_QUALITY, 85] if fmt == ".jpg" else [])
    if not ok:
        raise ValueError("image encoding failed")
    kind = "jpeg" if fmt == ".jpg" else "png"
    return f"data:image/{kind};base64,{base64.b64encode(encoded.tobytes()).decode('ascii')}"


def image_file(path: Path) -> str:
    return f"data:image/png;base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def flow_tile(flow_rgb: np.ndarray) -> str:
    """The flow image as the model saw it (the page enlarges it without smoothing)."""
    return data_uri(cv2.cvtColor(flow_rgb, cv2.COLOR_RGB2BGR))


def landmark_tile(baseline: np.ndarray, expression: np.ndarray) -> str:
    """Both 146-point sets in one box (image y pointing down), baseline blue, expression red, joined by lines."""
    points = np.concatenate([baseline, expression])
    low, high = points.min(axis=0), points.max(axis=0)
    scale = (TILE - 16) / max(float((high - low).max()), 1e-6)
    offset = (TILE - (high - low) * scale) / 2

    def to_pixels(p: np.ndarray) -> np.ndarray:
        return np.round((p - low) * scale + offset).astype(np.int32)

    canvas = np.full((TILE, TILE, 3), 255, np.uint8)
    base_px, expr_px = to_pixels(baseline), to_pixels(expression)
    for a, b in zip(base_px, expr_px):
        cv2.line(canvas, tuple(map(int, a)), tuple(map(int, b)), (150, 150, 150), 1, cv2.LINE_AA)
    for pts, colour in ((base_px, BASELINE_BGR), (expr_px, EXPRESSION_BGR)):
        for x, y in pts:
            cv2.circle(canvas, (int(x), int(y)), 2, colour, -1, cv2.LINE_AA)
    return data_uri(canvas)


def read_face(path: Path) -> Optional[np.ndarray]:
    """A sample's face image as BGR at TILE pixels, None when the dataset has none."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
    return None if image is None else cv2.resize(image, (TILE, TILE), interpolation=cv2.INTER_AREA)


def face_tile(face_bgr: np.ndarray) -> str:
    return data_uri(face_bgr, ".jpg")


def cam_overlay(cam: np.ndarray, background_bgr: np.ndarray) -> str:
    """A map (H, W) in [0, 1] drawn over a picture of the same field of view: the 'jet' colours, blue (0) to
    red (1), the more opaque the higher, over the picture in grey."""
    heat = cv2.resize(cam.astype(np.float32), background_bgr.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    colours = cv2.applyColorMap(np.clip(heat * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET).astype(np.float32)
    grey = cv2.cvtColor(cv2.cvtColor(background_bgr, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR).astype(np.float32)
    alpha = CAM_OPACITY * (0.3 + 0.7 * np.clip(heat, 0, 1))[..., None]
    return data_uri(np.clip((1 - alpha) * grey + alpha * colours, 0, 255).astype(np.uint8), ".jpg")


def flow_background(flow_rgb: np.ndarray) -> np.ndarray:
    """Where a dataset has no face images: the flow image's brightness (its magnitude) at TILE pixels."""
    value = cv2.cvtColor(flow_rgb, cv2.COLOR_RGB2HSV)[..., 2]
    return cv2.cvtColor(cv2.resize(value, (TILE, TILE), interpolation=cv2.INTER_NEAREST), cv2.COLOR_GRAY2BGR)


def cam_colour_bar(width: int = 160, height: int = 12) -> str:
    ramp = np.tile(np.linspace(0, 255, width).astype(np.uint8), (height, 1))
    return data_uri(cv2.applyColorMap(ramp, cv2.COLORMAP_JET))


def flow_legend(size: int = WHEEL) -> str:
    """The flow encoding's own colour wheel: each point shows the colour of a motion from the centre towards
    it, the rim at full magnitude, encoded by the same code as the flow images (facedyn.data.flow_encoding)."""
    margin = 34  # room for the labels of the image's sides
    radius = size / 2 - 18
    ys, xs = np.mgrid[0:size, 0:size + 2 * margin].astype(np.float32) + 0.5
    flow = np.stack([xs - size / 2 - margin, ys - size / 2], axis=-1) / radius
    inside = np.linalg.norm(flow, axis=-1) <= 1.0
    wheel = cv2.cvtColor(encode_flow(np.where(inside[..., None], flow, 0.0).astype(np.float32), 1.0), cv2.COLOR_RGB2BGR)
    wheel[~inside] = 255
    width = size + 2 * margin
    for text, (x, y) in (("up", (width // 2 - 7, 12)), ("down", (width // 2 - 13, size - 4)),
                         ("left", (2, size // 2 + 4)), ("right", (width - 30, size // 2 + 4))):  # the image's sides
        cv2.putText(wheel, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (40, 40, 40), 1, cv2.LINE_AA)
    return data_uri(wheel)
