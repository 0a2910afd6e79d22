"""Facial measurements of a sample: per side, at rest and at the expression, their change, and how the
two sides' movements compare.

Per frame, in the face's frame (facedyn.measurements.frame), after Emotrics (Guarin et al. 2018):
  brow_height               the brow's upper border above the eye line, at the eye's centre
  palpebral_fissure_height  upper to lower lid margin, at the eye's centre (Emotrics: MRD1 + MRD2)
  commissure_horizontal     the mouth corner's distance from the facial midline
  commissure_vertical       the mouth corner's height below the eye line
  smile_angle               90° + the mouth corner's elevation above the point where the lower lip's border
                            crosses the midline, seen from that point (Emotrics' smile angle): 90° level
  intercommissural_width    mouth corner to mouth corner (both sides together)
Movements, each side's amount in the direction the expression moves it (the opposite counts as none):
  brow_raise                increase of brow_height
  eye_closure               decrease of palpebral_fissure_height
  commissure_excursion      how far the mouth corner moved from rest, in the face's frame
The side that moved less is the affected one, and affected / healthy is its share of the other's
movement — unless neither side moved more than MIN_MOVEMENT_MM, or they moved within SYMMETRIC_RATIO of
each other; the note says which.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from facedyn.measurements.anatomy import BROW_TOP, COMMISSURE, EYE_CORNERS, LOWER_LID, LOWER_LIP, SIDES, UPPER_LID
from facedyn.measurements.frame import MM, face_frame, scale

# A movement below 1 mm on both sides is within the landmarks' jitter (~0.5 px at ~1 px/mm in a 224 px face
# crop): no movement. In IOD units the same 1 mm at an adult's inter-ocular distance of ~63 mm.
MIN_MOVEMENT_MM = 1.0
TYPICAL_INTEROCULAR_MM = 63.0
SYMMETRIC_RATIO = 0.9  # sides that moved within 10 % of each other: no side is called affected


@dataclass(frozen=True)
class Measure:
    name: str
    label: str  # for people
    angle: bool = False  # degrees, not scaled
    sided: bool = True


MEASURES: tuple[Measure, ...] = (
    Measure("brow_height", "brow height"),
    Measure("palpebral_fissure_height", "palpebral fissure height"),
    Measure("commissure_horizontal", "commissure from midline"),
    Measure("commissure_vertical", "commissure below eye line"),
    Measure("smile_angle", "smile angle", angle=True),
    Measure("intercommissural_width", "intercommissural width", sided=False),
)
MOVEMENTS: dict[str, str] = {"brow_raise": "brow raise", "eye_closure": "eye closure",
                             "commissure_excursion": "commissure excursion"}
MOVEMENT_OF_MEASURE: dict[str, str] = {"brow_height": "brow_raise", "palpebral_fissure_height": "eye_closure"}
# The movement each of Sunnybrook's expressions is graded by (facedyn.data.expressions names them).
EXPRESSION_MOVEMENT: dict[str, str] = {"brow_raise": "brow_raise", "eye_close": "eye_closure",
                                       "smile": "commissure_excursion", "snarl": "commissure_excursion",
                                       "lip_pucker": "commissure_excursion"}


def _height_at(contour: np.ndarray, x: np.ndarray) -> np.ndarray:
    """y of the polyline `contour` (..., K, 2), ordered along x either way, at x (...): linear between its
    points, held at its ends."""
    xs, ys = contour[..., 0], contour[..., 1]
    order = np.argsort(xs, axis=-1)
    xs, ys = np.take_along_axis(xs, order, -1), np.take_along_axis(ys, order, -1)
    x = np.clip(x, xs[..., 0], xs[..., -1])
    right = np.clip((xs < x[..., None]).sum(axis=-1), 1, xs.shape[-1] - 1)[..., None]
    x0, x1 = np.take_along_axis(xs, right - 1, -1)[..., 0], np.take_along_axis(xs, right, -1)[..., 0]
    y0, y1 = np.take_along_axis(ys, right - 1, -1)[..., 0], np.take_along_axis(ys, right, -1)[..., 0]
    t = np.where(x1 > x0, (x - x0) / np.where(x1 > x0, x1 - x0, 1.0), 0.0)
    return y0 + t * (y1 - y0)


def frame_measures(points: np.ndarray) -> dict[str, np.ndarray]:
    """Measures of frames (N, 146, 2) in face-frame pixels (angles in degrees): (N, 2) per sided measure
    [right, left], (N,) otherwise; also `commissure` (N, 2, 2), the corners' face coordinates."""
    face = face_frame(points).coordinates(points)
    eye_x = face[:, EYE_CORNERS, 0].mean(axis=2)  # (N, 2): each eye's centre, between its corners
    brow = np.stack([_height_at(face[:, BROW_TOP[s]], eye_x[:, s]) for s in range(2)], axis=1)
    upper = np.stack([_height_at(face[:, UPPER_LID[s]], eye_x[:, s]) for s in range(2)], axis=1)
    lower = np.stack([_height_at(face[:, LOWER_LID[s]], eye_x[:, s]) for s in range(2)], axis=1)
    corners = face[:, COMMISSURE]  # (N, 2, 2)
    lip_mid = _height_at(face[:, LOWER_LIP], np.zeros(len(points)))
    rise = lip_mid[:, None] - corners[..., 1]
    return {
        "brow_height": -brow,
        "palpebral_fissure_height": np.maximum(lower - upper, 0.0),
        "commissure_horizontal": np.abs(corners[..., 0]),
        "commissure_vertical": corners[..., 1],
        "smile_angle": 90.0 + np.degrees(np.arctan2(rise, np.abs(corners[..., 0]))),
        "intercommissural_width": np.linalg.norm(corners[:, 1] - corners[:, 0], axis=-1),
        "commissure": corners,
    }


@dataclass(frozen=True)
class Movement:
    name: str  # a key of MOVEMENTS
    amount: np.ndarray  # (2,) [right, left], in the sample's unit
    affected: Optional[str]  # "right" | "left" | None (the note says why)
    ratio: Optional[float]  # the affected side's amount / the other's
    note: str


@dataclass(frozen=True)
class SampleMeasurements:
    unit: str  # MM or IOD
    scale_source: str
    rest: dict[str, np.ndarray]  # measure name -> (2,) [right, left] or a scalar
    expression: dict[str, np.ndarray]
    movements: dict[str, Movement]
    primary: Optional[str]  # the movement the expression is graded by (None: not one of Sunnybrook's)

    def change(self, name: str) -> np.ndarray:
        return self.expression[name] - self.rest[name]

    @property
    def affected(self) -> Optional[Movement]:
        """The expression's own movement (None for an expression facedyn does not know)."""
        return self.movements[self.primary] if self.primary else None


def _movement(name: str, amount: np.ndarray, unit: str) -> Movement:
    least = MIN_MOVEMENT_MM if unit == MM else MIN_MOVEMENT_MM / TYPICAL_INTEROCULAR_MM
    weaker = int(np.argmin(amount))
    stronger = 1 - weaker
    if not np.isfinite(amount).all():
        return Movement(name, amount, None, None, "not measurable")
    if amount[stronger] < least:
        return Movement(name, amount, None, None, f"no movement on either side (both below {least:.3g} {unit})")
    ratio = float(amount[weaker] / amount[stronger])
    if ratio >= SYMMETRIC_RATIO:
        return Movement(name, amount, None, ratio, f"symmetric: the sides moved within {1 - SYMMETRIC_RATIO:.0%} "
                                                   f"of each other")
    return Movement(name, amount, SIDES[weaker], ratio,
                    f"{SIDES[weaker]} moved {ratio:.0%} of the {SIDES[stronger]}")


def measure(rest: np.ndarray, expression: np.ndarray, expressions: Sequence[str]) -> list[SampleMeasurements]:
    """Measurements of N samples from their rest (baseline) and expression landmarks, (N, 146, 2) pixels;
    `expressions` (N,) names each sample's expression (Sunnybrook's names pick the movement it is graded by)."""
    rest, expression = np.asarray(rest, np.float64), np.asarray(expression, np.float64)
    units = scale(rest)
    at_rest, at_expression = frame_measures(rest), frame_measures(expression)
    out = []
    for i in range(len(rest)):
        factor = units.per_pixel[i]
        values = []
        for frame in (at_rest, at_expression):
            values.append({m.name: frame[m.name][i] * (1.0 if m.angle else factor) for m in MEASURES})
        excursion = np.linalg.norm(at_expression["commissure"][i] - at_rest["commissure"][i], axis=-1) * factor
        amounts = {"brow_raise": np.maximum(values[1]["brow_height"] - values[0]["brow_height"], 0.0),
                   "eye_closure": np.maximum(values[0]["palpebral_fissure_height"]
                                             - values[1]["palpebral_fissure_height"], 0.0),
                   "commissure_excursion": excursion}
        unit = str(units.unit[i])
        movements = {name: _movement(name, amount, unit) for name, amount in amounts.items()}
        out.append(SampleMeasurements(unit, str(units.source[i]), values[0], values[1], movements,
                                      EXPRESSION_MOVEMENT.get(str(expressions[i]))))
    return out
