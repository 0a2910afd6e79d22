"""The face's own frame and the scale that turns landmark pixels into millimetres.

Frame: the x axis runs through the centres of the two eyes (the midpoints of their corners), from the
patient's right eye to the left one; the origin is halfway between them, so the facial midline is x = 0;
y points down the face. Measuring in it takes out the head's roll and position. Emotrics (Guarin et al.,
JAMA Facial Plast Surg 2018) draws the same frame through the pupils; the eye corners are used here
because the lids cover the pupils when the eyes close, and the corners do not move with any expression.

Scale: the iris is the one feature of nearly constant size in adults, 11.77 mm across (the value
Emotrics uses), so one landmark pixel is 11.77 / (iris diameter in pixels) mm. The diameter is measured
in the rest frame (the lids hide the iris in an eye closure) and used for both frames of a sample. Where
the iris points are not usable — absent from the data (filled with zeros or copies of other points), not
a circle, or of a size no iris has relative to its eye — lengths are given in inter-ocular distances
(IOD: the distance between the eye centres at rest) instead, and labelled so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facedyn.measurements.anatomy import EYE_CORNERS, IRIS

IRIS_DIAMETER_MM = 11.77
# An iris is 0.35–0.45 of its eye's corner-to-corner width; outside these bounds the points are not an iris.
IRIS_PER_EYE_WIDTH = (0.25, 0.65)
IRIS_ROUNDNESS = 0.7  # the shorter of its two diameters at least this share of the longer one
MM, IOD = "mm", "IOD"


@dataclass(frozen=True)
class FaceFrame:
    origin: np.ndarray  # (N, 2) pixels: halfway between the eye centres
    x_axis: np.ndarray  # (N, 2) unit vector from the right eye's centre to the left eye's
    y_axis: np.ndarray  # (N, 2) unit vector down the face

    def coordinates(self, points: np.ndarray) -> np.ndarray:
        """(N, K, 2) pixels -> (N, K, 2) face coordinates (pixels along x_axis and y_axis)."""
        offset = points - self.origin[:, None, :]
        return np.stack([np.einsum("nkd,nd->nk", offset, self.x_axis),
                         np.einsum("nkd,nd->nk", offset, self.y_axis)], axis=-1)


def eye_centres(points: np.ndarray) -> np.ndarray:
    """(N, 146, 2) -> (N, 2, 2): the right and the left eye's centre (midpoint of its corners)."""
    return points[:, EYE_CORNERS].mean(axis=2)


def face_frame(points: np.ndarray) -> FaceFrame:
    centres = eye_centres(points)
    across = centres[:, 1] - centres[:, 0]
    x_axis = across / np.maximum(np.linalg.norm(across, axis=1, keepdims=True), 1e-9)
    y_axis = np.stack([-x_axis[:, 1], x_axis[:, 0]], axis=1)  # x turned 90° clockwise on screen: down the face
    return FaceFrame(centres.mean(axis=1), x_axis, y_axis)


def interocular_distance(points: np.ndarray) -> np.ndarray:
    centres = eye_centres(points)
    return np.linalg.norm(centres[:, 1] - centres[:, 0], axis=1)


def iris_diameters(points: np.ndarray) -> np.ndarray:
    """(N, 2) diameter of the right and left iris in pixels (the longer of its two rim-to-rim chords, the one
    the head's turn foreshortens less); NaN where that eye's iris points are not an iris."""
    iris = points[:, IRIS]  # (N, 2 eyes, 5, 2)
    chords = np.stack([np.linalg.norm(iris[:, :, 1] - iris[:, :, 3], axis=-1),
                       np.linalg.norm(iris[:, :, 2] - iris[:, :, 4], axis=-1)], axis=-1)
    diameter, shortest = chords.max(axis=-1), chords.min(axis=-1)
    corners = points[:, EYE_CORNERS]
    eye_width = np.linalg.norm(corners[:, :, 0] - corners[:, :, 1], axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = diameter / eye_width
        usable = (np.isfinite(iris).all(axis=(-1, -2)) & (shortest >= IRIS_ROUNDNESS * diameter)
                  & (share >= IRIS_PER_EYE_WIDTH[0]) & (share <= IRIS_PER_EYE_WIDTH[1]))
    return np.where(usable, diameter, np.nan)


@dataclass(frozen=True)
class Scale:
    per_pixel: np.ndarray  # (N,) units per landmark pixel
    unit: np.ndarray  # (N,) MM or IOD
    source: np.ndarray  # (N,) how it was set, in words


def scale(rest: np.ndarray) -> Scale:
    """Per sample, from its rest-frame landmarks (N, 146, 2): mm by the iris, else inter-ocular distances."""
    diameters = iris_diameters(rest)
    usable = np.isfinite(diameters)
    with np.errstate(invalid="ignore"):
        iris_px = np.where(usable.any(axis=1), np.nansum(diameters, axis=1) / np.maximum(usable.sum(axis=1), 1), np.nan)
    iod_px = interocular_distance(rest)
    per_pixel = np.where(np.isfinite(iris_px), IRIS_DIAMETER_MM / np.where(np.isfinite(iris_px), iris_px, 1.0),
                         1.0 / np.maximum(iod_px, 1e-9))
    unit = np.where(np.isfinite(iris_px), MM, IOD)
    source = np.array([f"iris diameter {d:.1f} px = {IRIS_DIAMETER_MM} mm" if np.isfinite(d) else
                       f"no usable iris points: inter-ocular distance {o:.1f} px = 1 IOD"
                       for d, o in zip(iris_px, iod_px)], dtype=object)
    return Scale(per_pixel, unit, source)
