"""What each expression does to the face: displacement fields on a subject's neutral mesh (cm).

Each field is the full, two-sided movement of a healthy face; facedyn.data.synthetic.generator
scales each side separately (a paralysed side moves less) and adds synkinesis, the involuntary
movement of another region on the paralysed side (e.g. the eye narrowing during a smile).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from facedyn.data.synthetic.face import (LEFT_EYE_CORNERS, LEFT_EYE_LOWER, LEFT_EYE_UPPER, RIGHT_EYE_CORNERS,
                                         RIGHT_EYE_LOWER, RIGHT_EYE_UPPER)

RIGHT_BROW = (70, 63, 105, 66, 107, 46, 53, 52, 65, 55)
LEFT_BROW = (300, 293, 334, 296, 336, 276, 283, 282, 295, 285)
MOUTH_CORNERS = (61, 291)  # right, left
UPPER_LIP_LATERAL = (39, 269)
NOSE_WINGS = (129, 358)
CHEEKS = (50, 280)
INNER_BROWS = (55, 285)
MID_BROWS = (105, 334)
LOWER_LIDS = (145, 374)
NOSE_ROOT = 6
LIP_MIDDLE = (13, 14)
MIDLINE_SOFTNESS_CM = 0.35

Field = Callable[[np.ndarray], np.ndarray]


def _gauss(vertices: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    return np.exp(-np.sum((vertices - centre) ** 2, axis=1) / (2 * radius**2))[:, None]


def _lid_line(vertices: np.ndarray, corners: tuple[int, int], lid: tuple[int, ...], x: np.ndarray) -> np.ndarray:
    points = vertices[list(corners) + list(lid)]
    order = np.argsort(points[:, 0])
    return np.interp(x, points[order, 0], points[order, 1])


def eye_close(vertices: np.ndarray) -> np.ndarray:
    """Both eyes shut: the upper lid comes down 80 % of the opening, the lower lid up 20 %."""
    out = np.zeros_like(vertices)
    x, y = vertices[:, 0], vertices[:, 1]
    for corners, upper, lower in ((RIGHT_EYE_CORNERS, RIGHT_EYE_UPPER, RIGHT_EYE_LOWER),
                                  (LEFT_EYE_CORNERS, LEFT_EYE_UPPER, LEFT_EYE_LOWER)):
        corner_x = vertices[list(corners), 0]
        inside_x = np.clip(x, corner_x.min(), corner_x.max())
        beside = np.exp(-((x - inside_x) ** 2) / (2 * 0.35**2))  # fades beyond the corners
        top, bottom = _lid_line(vertices, corners, upper, inside_x), _lid_line(vertices, corners, lower, inside_x)
        opening = np.maximum(top - bottom, 0.0)
        on_upper = y >= (top + bottom) / 2
        down = -0.8 * opening * np.exp(-np.maximum(y - top, 0.0) / 0.7)
        up = 0.2 * opening * np.exp(-np.maximum(bottom - y, 0.0) / 0.4)
        out[:, 1] += np.where(on_upper, down, up) * beside
    return out


def smile(vertices: np.ndarray) -> np.ndarray:
    """Mouth corners pulled out, up and back; the cheeks rise."""
    out = np.zeros_like(vertices)
    for side, corner, cheek in zip((-1.0, 1.0), MOUTH_CORNERS, CHEEKS):
        out += _gauss(vertices, vertices[corner], 1.1) * np.array([0.75 * side, 0.68, -0.22])
        out += _gauss(vertices, vertices[cheek], 1.3) * np.array([0.15 * side, 0.38, 0.08])
    return out


def brow_raise(vertices: np.ndarray) -> np.ndarray:
    """Brows and forehead up; the upper lids follow a little (eyes widen)."""
    brows = vertices[list(RIGHT_BROW + LEFT_BROW)]
    nearest = np.sqrt(np.min(np.sum((vertices[:, None, :2] - brows[None, :, :2]) ** 2, axis=2), axis=1))
    brow_y = brows[:, 1].mean()
    weight = np.exp(-nearest**2 / (2 * 1.0**2))
    weight = np.maximum(weight, np.where(vertices[:, 1] > brow_y, 0.6 * np.exp(-(vertices[:, 1] - brow_y) / 4.0), 0.0))
    eye_top = vertices[[159, 386], 1].mean()
    weight *= 1.0 / (1.0 + np.exp(-(vertices[:, 1] - eye_top - 0.4) / 0.25))  # nothing below the eyes
    return weight[:, None] * np.array([0.0, 0.85, 0.0]) - 0.25 * eye_close(vertices)


def snarl(vertices: np.ndarray) -> np.ndarray:
    """Upper lip and nose wings drawn up (levator labii superioris alaeque nasi), inner brows down."""
    out = _gauss(vertices, vertices[NOSE_ROOT], 0.9) * np.array([0.0, -0.2, 0.0])
    for side, lip, wing, cheek, brow in zip((-1.0, 1.0), UPPER_LIP_LATERAL, NOSE_WINGS, CHEEKS, INNER_BROWS):
        out += _gauss(vertices, vertices[lip], 0.8) * np.array([0.05 * side, 0.75, 0.05])
        out += _gauss(vertices, vertices[wing], 0.9) * np.array([0.05 * side, 0.35, 0.0])
        out += _gauss(vertices, vertices[cheek], 1.0) * np.array([0.0, 0.2, 0.0])
        out += _gauss(vertices, vertices[brow], 0.8) * np.array([-0.1 * side, -0.3, 0.0])
    return out


def lip_pucker(vertices: np.ndarray) -> np.ndarray:
    """Lips drawn towards the middle and pushed forward."""
    centre = vertices[list(LIP_MIDDLE)].mean(axis=0)
    offset = vertices - centre
    weight = np.exp(-offset[:, 0] ** 2 / (2 * 2.2**2) - offset[:, 1] ** 2 / (2 * 1.1**2))
    out = np.zeros_like(vertices)
    out[:, 0] = -0.4 * offset[:, 0] * weight
    out[:, 2] = 0.6 * weight
    return out


def resting_droop(vertices: np.ndarray) -> np.ndarray:
    """A flaccid face at rest: mouth corners and brows sag, the lower lids a little."""
    out = np.zeros_like(vertices)
    for corner, lower_lid, brow in zip(MOUTH_CORNERS, LOWER_LIDS, MID_BROWS):
        out += _gauss(vertices, vertices[corner], 1.0) * np.array([0.0, -0.25, 0.0])
        out += _gauss(vertices, vertices[lower_lid], 0.5) * np.array([0.0, -0.06, 0.0])
        out += _gauss(vertices, vertices[brow], 1.5) * np.array([0.0, -0.2, 0.0])
    return out


EXPRESSION_FIELDS: dict[str, Field] = {
    "eye_close": eye_close, "smile": smile, "brow_raise": brow_raise, "snarl": snarl, "lip_pucker": lip_pucker,
}
# Synkinesis seen clinically: the eye narrows during mouth movements (oral-ocular), the mouth corner
# pulls during eye and brow movements (ocular-oral).
SYNKINESIS_FIELDS: dict[str, Field] = {
    "eye_close": smile, "brow_raise": smile, "smile": eye_close, "snarl": eye_close, "lip_pucker": eye_close,
}


def side_weights(vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How much each vertex belongs to the subject's right and left half (smooth across the midline)."""
    left = 1.0 / (1.0 + np.exp(-vertices[:, 0] / MIDLINE_SOFTNESS_CM))
    return 1.0 - left, left


def sided(field: np.ndarray, vertices: np.ndarray, right_gain: float, left_gain: float) -> np.ndarray:
    """`field` with its right half scaled by right_gain and its left half by left_gain."""
    right, left = side_weights(vertices)
    return field * (right_gain * right + left_gain * left)[:, None]
