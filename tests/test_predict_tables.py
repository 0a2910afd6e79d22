"""Prediction tables (per video and expression, per patient with Sunnybrook's subtotals) and the prediction folder's lock."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from facedyn.data.reader import UNLABELLED
from facedyn.data.samples import Samples
from facedyn.inference import RunError, task
from facedyn.inference.config import SunnybrookConfig, compose_predict
from facedyn.runs import RunFolderInUse, owned
from facedyn.inference.tables import SUNNYBROOK_ITEMS, frames_csv, patient_rows, patients_csv, video_grades, videos_csv

MAPPING = vars(SunnybrookConfig())
FIVE = list(MAPPING.values())


def _samples(rows: list[tuple[str, str, str, int | None, int | None]]) -> Samples:
    n = len(rows)
    labelled = np.array([r[3] is not None for r in rows])
    return Samples(
        flow=np.zeros((n, 8, 8, 3), np.uint8), expression_landmarks=np.zeros((n, 146, 2), np.float32),
        baseline_landmarks=np.zeros((n, 146, 2), np.float32),
        dynamics=np.array([UNLABELLED if r[3] is None else r[3] for r in rows]),
        synkinesis=np.array([UNLABELLED if r[4] is None else r[4] for r in rows]),
        dynamics_valid=labelled, synkinesis_valid=labelled.copy(),
        video=np.array([r[0] for r in rows]), expression=np.array([r[1] for r in rows]),
        frame=np.array([r[2] for r in rows]), folder=np.array([f"{r[1]}/{r[0]}_{r[2]}" for r in rows]))


def _read(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_video_means_sds_and_rounded_grades():
    samples = _samples([("p1", "smile", "0001", 3, 1), ("p1", "smile", "0002", 3, 1), ("p1", "snarl", "0001", None, None)])
    grades = np.array([[2.4, 1.2], [3.0, 0.6], [5.7, -0.3]])
    rows = _read(videos_csv(video_grades(samples, grades)))
    smile, snarl = rows
    assert (smile["video"], smile["expression"], smile["frames"]) == ("p1", "smile", "2")
    assert float(smile["dynamics_mean"]) == np.mean([2.4, 3.0])
    assert abs(float(smile["dynamics_sd"]) - np.std([2.4, 3.0], ddof=1)) < 1e-6
    assert smile["dynamics_grade"] == "3" and smile["synkinesis_grade"] == "1" and smile["dynamics_true"] == "3"
    assert (snarl["dynamics_grade"], snarl["synkinesis_grade"], snarl["dynamics_true"]) == ("5", "0", "")  # clipped
    frames = _read(frames_csv(samples, grades))
    assert [f["dynamics_pred"] for f in frames] == ["2.400000", "3.000000", "5.700000"]
    assert frames[2]["synkinesis_grade"] == "0" and frames[2]["synkinesis_true"] == ""


def test_sunnybrook_subtotals_need_all_five_items():
    rng = np.random.default_rng(3)
    movement = rng.integers(1, 6, 5)
    synkinesis = rng.integers(0, 4, 5)
    rows = [("complete", e, "0001", int(m), int(s)) for e, m, s in zip(FIVE, movement, synkinesis)]
    rows += [("partial", e, "0001", 3, 1) for e in FIVE[:4]]  # no lip pucker recorded
    samples = _samples(rows)
    grades = np.stack([samples.dynamics, samples.synkinesis], axis=1).astype(float) + 0.3  # rounds back
    patients = patient_rows(video_grades(samples, grades), MAPPING)
    table = {r["video"]: r for r in _read(patients_csv(patients, labelled=True))}
    complete, partial = table["complete"], table["partial"]
    assert complete["voluntary_movement_score"] == str(4 * movement.sum())
    assert complete["synkinesis_score"] == str(synkinesis.sum())
    assert complete["voluntary_movement_score_true"] == str(4 * movement.sum())
    for item, m in zip(SUNNYBROOK_ITEMS, movement):
        assert complete[f"{item}_movement"] == str(m)
    assert partial["voluntary_movement_score"] == "" and partial["synkinesis_score"] == ""
    assert partial["lip_pucker_movement"] == "" and partial["snarl_movement"] == "3"


def test_the_mapping_decides_which_folder_is_which_item_and_movement_starts_at_one():
    names = {"brow_lift": "forehead", "gentle_eye_closure": "eyes", "open_mouth_smile": "grin", "snarl": "nose",
             "lip_pucker": "kiss"}
    samples = _samples([("p", e, "0001", None, None) for e in names.values()])
    grades = np.array([[0.2, 0.0], [2.0, 1.0], [3.0, 0.0], [4.0, 2.0], [5.0, 3.0]])
    (patient,) = patient_rows(video_grades(samples, grades), names)
    assert patient.items["brow_lift"] == (1, 0)  # a predicted 0 is Sunnybrook's lowest grade, 1
    assert patient.voluntary_movement == 4 * (1 + 2 + 3 + 4 + 5) and patient.synkinesis == 6
    assert patient.voluntary_movement_true is None  # unlabelled
    assert "voluntary_movement_score_true" not in _read(patients_csv([patient], labelled=False))[0]


def test_a_second_writer_of_one_prediction_folder_is_refused(tmp_path):
    cfg = compose_predict([f"run={tmp_path / 'no_such_run'}"])
    out = tmp_path / "out"
    with owned(out):  # another writer holds the folder
        with pytest.raises(RunFolderInUse, match="in use by process"):
            task.run(cfg, out)
    with pytest.raises(RunError, match="no such run folder"):  # free again: on to the next check
        task.run(cfg, out)


def test_clips_that_were_not_graded_are_in_patients_csv_with_the_reason():
    from facedyn.inference.tables import NotGraded

    samples = _samples([("p1", "smile", "0001", None, None)])
    skipped = [NotGraded("p1", "snarl", "p1/snarl.mp4", "empty file (0 bytes)"),
               NotGraded("p2", "smile", "p2/smile.avi", "exactly one face in only 0% of frames")]
    patients = patient_rows(video_grades(samples, np.array([[3.0, 1.0]])), MAPPING, skipped)
    table = {r["video"]: r for r in _read(patients_csv(patients, labelled=False))}
    assert table["p1"]["open_mouth_smile_movement"] == "3"
    assert table["p1"]["not_graded"] == "snarl (p1/snarl.mp4): empty file (0 bytes)"
    assert table["p2"]["open_mouth_smile_movement"] == ""  # none of p2's clips was graded: still a row
    assert table["p2"]["not_graded"] == "smile (p2/smile.avi): exactly one face in only 0% of frames"


def test_frames_that_disagree_are_flagged():
    samples = _samples([("p1", "smile", f"000{i}", None, None) for i in range(3)]
                       + [("p2", "smile", f"000{i}", None, None) for i in range(3)])
    grades = np.array([[2.44, 1.0], [1.46, 1.0], [8.45, 1.0], [2.4, 1.0], [2.6, 1.2], [2.5, 0.9]])  # p1 lay sideways
    rows = {r["video"]: r for r in _read(videos_csv(video_grades(samples, grades)))}
    assert rows["p1"]["frames_disagree"] == "yes" and rows["p2"]["frames_disagree"] == ""


def test_report_clips_shown_grades_to_the_scale_and_marks_raw_values_outside_it():
    from facedyn.inference.report import grade_lines

    samples = _samples([("p1", "smile", "0001", 5, 0), ("p1", "smile", "0002", 5, 0), ("p1", "snarl", "0001", 3, 1)])
    table = video_grades(samples, np.array([[6.12, -0.15], [6.38, -0.19], [3.2, 1.1]]))
    outside = grade_lines(0, table)
    assert "dynamics: <b>5</b>" in outside and "raw 6.25 ± 0.18, above the 0–5 scale" in outside
    assert "synkinesis: <b>0</b>" in outside and "raw -0.17 ± 0.03, below the 0–3 scale" in outside
    inside = grade_lines(1, table)
    assert "dynamics: <b>3</b> (3.20 ± 0.00)" in inside and "outside" not in inside
