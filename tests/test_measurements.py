"""Facial measurements on a constructed face whose geometry is known exactly (the real face is measured in
tests/test_prepare_videos.py, on landmarks MediaPipe found in the astronaut clips)."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from facedyn.landmarks import LANDMARK_SUBSET_IDXS, SUBSET_MIRROR_PERMUTATION
from facedyn.measurements import IOD, IRIS_DIAMETER_MM, MM, measure
from facedyn.measurements.table import measurements_csv

# The face in millimetres, in its own frame: x from the patient's right to left, y down; eye centres on y = 0.
EYE_CENTRE_X = 31.5  # inter-ocular distance 63 mm
EYE_HALF_WIDTH = 14.5
LID_UP, LID_DOWN = 6.0, 4.0  # palpebral fissure 10 mm at the eye's centre
BROW = 22.0
COMMISSURE = (25.0, 70.0)
LIP_MIDDLE_Y = 78.0
MESH = {
    "right_eye": (33, 246, 161, 160, 159, 158, 157, 173, 133), "right_lower": (33, 7, 163, 144, 145, 153, 154, 155, 133),
    "left_eye": (263, 466, 388, 387, 386, 385, 384, 398, 362), "left_lower": (263, 249, 390, 373, 374, 380, 381, 382, 362),
    "right_brow": (70, 63, 105, 66, 107), "left_brow": (300, 293, 334, 296, 336),
    "lower_lip": (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291),
}


def _set(points: np.ndarray, mesh: tuple[int, ...], xy: np.ndarray) -> None:
    points[[LANDMARK_SUBSET_IDXS.index(p) for p in mesh]] = xy


def _lid(side: float, height: float) -> np.ndarray:
    """A tent from corner (height 0) through the eye's centre (height `height`), outer corner first."""
    x = side * np.linspace(EYE_CENTRE_X + EYE_HALF_WIDTH, EYE_CENTRE_X - EYE_HALF_WIDTH, 9)
    return np.stack([x, height * (1 - np.abs(np.abs(x) - EYE_CENTRE_X) / EYE_HALF_WIDTH)], axis=1)


def face_mm(lids=((LID_UP, LID_DOWN), (LID_UP, LID_DOWN)), brows=(BROW, BROW),
            commissures=((-COMMISSURE[0], COMMISSURE[1]), COMMISSURE)) -> np.ndarray:
    """(146, 2) landmarks in mm of the face frame; lids/brows/commissures per side [right, left]."""
    points = np.zeros((146, 2))
    for s, (side, eye, lower, brow) in enumerate(((-1, "right_eye", "right_lower", "right_brow"),
                                                 (1, "left_eye", "left_lower", "left_brow"))):
        _set(points, MESH[eye], _lid(side, -lids[s][0]))
        _set(points, MESH[lower], _lid(side, lids[s][1]))
        _set(points, MESH[brow], np.stack([side * (EYE_CENTRE_X + np.linspace(12, -12, 5)), np.full(5, -brows[s])], 1))
        r = IRIS_DIAMETER_MM / 2  # centre, then +x, up, -x, down
        centre = np.array([side * EYE_CENTRE_X, -0.8])
        iris = centre + np.array([[0, 0], [r, 0], [0, -r], [-r, 0], [0, r]])
        start = LANDMARK_SUBSET_IDXS.index(468 if side < 0 else 473)
        points[start:start + 5] = iris
    right, left = np.asarray(commissures[0], float), np.asarray(commissures[1], float)
    middle = np.array([0.0, LIP_MIDDLE_Y])  # a V from corner to corner, lowest on the midline
    lip = np.concatenate([np.linspace(right, middle, 6), np.linspace(middle, left, 6)[1:]])
    _set(points, MESH["lower_lip"], lip)
    return points


def to_image(points_mm: np.ndarray, px_per_mm: float, roll_deg: float, shift: tuple[float, float]) -> np.ndarray:
    """The face as a camera sees it: scaled to pixels, rolled, moved."""
    a = np.radians(roll_deg)
    rotation = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return points_mm * px_per_mm @ rotation.T + np.asarray(shift)


def test_a_known_face_is_measured_exactly_in_mm_whatever_its_size_roll_and_position():
    rest = face_mm()
    smile = face_mm(commissures=((-COMMISSURE[0] - 0.3, COMMISSURE[1] - 0.4), (30.0, 66.0)),  # left 6.4 mm, right 0.5
                    lids=((LID_UP, LID_DOWN), (LID_UP / 2, LID_DOWN)), brows=(BROW + 4.0, BROW + 1.0))
    rest_px = to_image(rest, 3.7, 12.0, (300.0, 200.0))
    smile_px = to_image(smile, 3.7, 9.0, (305.0, 196.0))  # the head rolled and moved between the frames
    result = measure(rest_px[None], smile_px[None], ["smile"])[0]
    assert result.unit == MM and "11.77 mm" in result.scale_source
    np.testing.assert_allclose(result.rest["brow_height"], [BROW, BROW], atol=1e-9)
    np.testing.assert_allclose(result.rest["palpebral_fissure_height"], [10.0, 10.0], atol=1e-9)
    np.testing.assert_allclose(result.rest["commissure_horizontal"], [25.0, 25.0], atol=1e-9)
    np.testing.assert_allclose(result.rest["commissure_vertical"], [70.0, 70.0], atol=1e-9)
    np.testing.assert_allclose(result.rest["smile_angle"], 90 + np.degrees(np.arctan2(8.0, 25.0)), atol=1e-9)
    assert result.rest["intercommissural_width"] == pytest.approx(50.0, abs=1e-9)
    np.testing.assert_allclose(result.change("brow_height"), [4.0, 1.0], atol=1e-9)
    np.testing.assert_allclose(result.change("palpebral_fissure_height"), [0.0, -3.0], atol=1e-9)
    np.testing.assert_allclose(result.expression["commissure_horizontal"], [25.3, 30.0], atol=1e-9)
    np.testing.assert_allclose(result.expression["smile_angle"][1], 90 + np.degrees(np.arctan2(12.0, 30.0)), atol=1e-9)

    excursion = result.movements["commissure_excursion"]
    np.testing.assert_allclose(excursion.amount, [0.5, np.hypot(5.0, 4.0)], atol=1e-9)
    assert excursion.affected == "right" and excursion.ratio == pytest.approx(0.5 / np.hypot(5.0, 4.0))
    assert result.primary == "commissure_excursion" and result.affected is excursion
    brow = result.movements["brow_raise"]
    assert brow.affected == "left" and brow.ratio == pytest.approx(0.25)
    eye = result.movements["eye_closure"]
    assert eye.affected == "right" and eye.ratio == 0.0 and "right moved 0% of the left" == eye.note


def test_the_same_face_mirrored_swaps_the_sides():
    rest = to_image(face_mm(), 2.0, 0.0, (200.0, 150.0))
    moved = to_image(face_mm(commissures=((-COMMISSURE[0], COMMISSURE[1]), (29.0, 67.0))), 2.0, 0.0, (200.0, 150.0))

    def mirror(points: np.ndarray) -> np.ndarray:
        flipped = points * np.array([-1.0, 1.0]) + np.array([400.0, 0.0])
        return flipped[list(SUBSET_MIRROR_PERMUTATION)]

    plain, mirrored = measure(np.stack([rest, mirror(rest)]), np.stack([moved, mirror(moved)]), ["smile"] * 2)
    assert plain.affected.affected == "right" and mirrored.affected.affected == "left"
    for name, values in plain.expression.items():
        np.testing.assert_allclose(np.atleast_1d(mirrored.expression[name]), np.atleast_1d(values)[::-1], atol=1e-9)


def test_without_usable_iris_points_lengths_are_in_interocular_distances():
    rest = face_mm()
    start = LANDMARK_SUBSET_IDXS.index(468)
    rest[start:start + 10] = 0.0  # a dataset whose landmarker had no iris model
    moved = rest.copy()
    result = measure(to_image(rest, 3.0, 5.0, (0.0, 0.0))[None], to_image(moved, 3.0, 5.0, (0.0, 0.0))[None],
                     ["brow_raise"])[0]
    assert result.unit == IOD and "inter-ocular" in result.scale_source
    np.testing.assert_allclose(result.rest["brow_height"], [BROW / 63.0] * 2, atol=1e-12)
    np.testing.assert_allclose(result.rest["smile_angle"], 90 + np.degrees(np.arctan2(8.0, 25.0)), atol=1e-9)


def test_no_movement_and_symmetric_movement_name_no_affected_side():
    rest = to_image(face_mm(), 3.0, 0.0, (0.0, 0.0))
    still = to_image(face_mm(brows=(BROW + 0.4, BROW + 0.2)), 3.0, 0.0, (0.0, 0.0))
    both = to_image(face_mm(brows=(BROW + 5.0, BROW + 4.8)), 3.0, 0.0, (0.0, 0.0))
    quiet, symmetric = measure(np.stack([rest, rest]), np.stack([still, both]), ["brow_raise", "brow_raise"])
    assert quiet.affected.affected is None and quiet.affected.note.startswith("no movement on either side")
    assert symmetric.affected.affected is None and symmetric.affected.ratio == pytest.approx(4.8 / 5.0)
    assert symmetric.affected.note.startswith("symmetric")
    unknown = measure(rest[None], still[None], ["frown"])[0]
    assert unknown.primary is None and unknown.affected is None


def test_csv_has_a_row_per_sample_measurement_and_side():
    rest = to_image(face_mm(), 3.0, 0.0, (0.0, 0.0))
    moved = to_image(face_mm(commissures=((-COMMISSURE[0], COMMISSURE[1]), (29.0, 67.0))), 3.0, 0.0, (0.0, 0.0))
    results = measure(np.stack([rest, moved]), np.stack([moved, moved]), ["smile", "smile"])
    text = measurements_csv(results, ["p1", "p2"], ["smile", "smile"], ["3", "4"], ["smile/p1_3", "smile/p2_4"])
    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames[:6] == ["video", "expression", "frame", "folder", "measurement", "side"]
    rows = list(reader)
    excursion = [r for r in rows if r["video"] == "p1" and r["measurement"] == "commissure_excursion"]
    assert [r["side"] for r in excursion] == ["right", "left"]
    assert float(excursion[1]["change"]) == pytest.approx(5.0, abs=1e-3) and excursion[1]["unit"] == "mm"
    assert {r["affected_side"] for r in excursion} == {"right"}
    width = [r for r in rows if r["video"] == "p1" and r["measurement"] == "intercommissural_width"]
    assert len(width) == 1 and width[0]["side"] == "both" and float(width[0]["at_rest"]) == pytest.approx(50.0, abs=1e-3)
