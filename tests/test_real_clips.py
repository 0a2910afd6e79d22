"""prepare.py on clips as a hand-held phone records them (tests/real_clips.py): the camera's sway must not
pass for facial movement, neither in the frames chosen nor in the flow images.

One module fixture writes, per face (the astronaut, Grace Hopper), an eye closure filmed with a still
camera, the same closure with the whole picture swaying, and the sway alone; `python prepare.py` runs
once over all six. MediaPipe runs only in prepare.py's worker processes.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import cv2
import numpy as np
import pytest

from facedyn.videos.clip import NO_MOVEMENT
from facedyn.videos.config import FlowConfig
from tests.conftest import REPO
from tests.real_clips import APEX_FRAME, PORTRAITS, write_clip

FACES = tuple(PORTRAITS)
CLIPS = {"still": dict(eye_closure=True, camera_sway=False), "sway": dict(eye_closure=True, camera_sway=True),
         "sway_only": dict(eye_closure=False, camera_sway=True)}
SIDEWAYS = "Zoë Müller"  # a portrait clip whose rotation tag was lost, in a folder named on macOS (NFD)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, landmarker_task) -> tuple[Path, dict[str, dict[str, str]], str]:
    root = tmp_path_factory.mktemp("phone")
    for face in FACES:
        for kind, motion in CLIPS.items():
            write_clip(root / "videos" / f"{face}-{kind}" / "eye_close.mp4", face, **motion)
    write_clip(root / "videos" / unicodedata.normalize("NFD", SIDEWAYS) / "eye_close.mp4", "astronaut",
               turn=cv2.ROTATE_90_CLOCKWISE)
    grades = root / "grades.csv"
    grades.write_text(f"patient,expression,dynamics,synkinesis\n{SIDEWAYS.lower()},eye_close,5,0\n")  # NFC
    out = root / "dataset"
    result = subprocess.run([sys.executable, str(REPO / "prepare.py"), f"videos={root / 'videos'}", f"out={out}",
                             f"grades={grades}", "progress=false", "workers=2"], cwd=REPO,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert result.returncode == 0, result.stdout
    with open(out / "prepare_report.csv") as fh:
        report = {row["patient"]: row for row in csv.DictReader(fh)}
    return out, report, result.stdout


def _row(prepared, face: str, kind: str) -> dict[str, str]:
    return prepared[1][f"{face}-{kind}"]


def _flow(prepared, face: str, kind: str) -> np.ndarray:
    """The apex's flow image as HSV (the value channel is the flow's brightness, 0-255)."""
    row = _row(prepared, face, kind)
    image = cv2.imread(str(prepared[0] / "eye_close" / f"{row['patient']}_{row['apex_frame']}" / "optical_flow.jpg"))
    return cv2.cvtColor(image, cv2.COLOR_BGR2HSV)


@pytest.mark.parametrize("face", FACES)
def test_camera_sway_is_not_movement(prepared, face):
    still, sway_only = _row(prepared, face, "still"), _row(prepared, face, "sway_only")
    print(f"{face}: apex movement, eye closure {still['apex_movement']}, sway only {sway_only['apex_movement']} "
          f"(rest-phase noise {still['rest_noise']}, {sway_only['rest_noise']})")
    assert float(still["apex_movement"]) > 0.01  # the closure itself is seen: a third of its lid points' travel
    assert float(sway_only["apex_movement"]) <= 0.3 * float(still["apex_movement"])


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("kind", ["still", "sway"])
def test_apex_within_two_frames_despite_sway(prepared, face, kind):
    row = _row(prepared, face, kind)
    assert abs(int(row["apex_frame"]) - APEX_FRAME) <= 2, row
    assert int(row["baseline_frame"]) <= 8  # in the rest phase: the lid starts moving after frame 8


def test_a_clip_without_movement_is_said_to_be_one_and_still_prepared(prepared):
    out, report, stdout = prepared
    for face in FACES:
        for kind in CLIPS:
            row = report[f"{face}-{kind}"]
            assert row["status"] == "ok" and int(row["samples"]) == len(row["chosen_frames"].split()) >= 1, row
            assert float(row["rest_noise"]) >= 0.0  # the noise level is reported for every clip
            assert row["note"] == (NO_MOVEMENT if kind == "sway_only" else ""), row
            if kind == "sway_only":
                assert f"{face}-{kind}/eye_close.mp4: note: {NO_MOVEMENT}" in stdout


def test_flow_images_are_masked_to_the_face_by_default():
    assert FlowConfig().mask == "face"


@pytest.mark.parametrize("face", FACES)
def test_sway_only_flow_is_dark_beside_an_eye_closure(prepared, face):
    still, sway_only = (_flow(prepared, face, kind)[..., 2].mean() for kind in ("still", "sway_only"))
    print(f"{face}: mean flow brightness, eye closure {still:.2f}, sway only {sway_only:.2f}")
    assert sway_only <= 0.25 * still


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("kind", ["still", "sway"])
def test_flow_is_on_the_closed_eyes_side(prepared, face, kind):
    value = _flow(prepared, face, kind)[..., 2].astype(np.float64)
    half = value.shape[1] // 2
    moved, other = value[:, half:].mean(), value[:, :half].mean()  # the subject's left is the image's right
    print(f"{face} {kind}: flow brightness on the closed eye's side {moved:.2f}, other side {other:.2f}")
    assert moved >= 1.5 * other


def test_a_face_on_its_side_is_turned_upright_and_a_decomposed_name_finds_its_grade(prepared):
    out, report, stdout = prepared
    row = report[SIDEWAYS]  # named composed (NFC) in the report and the samples
    assert row["note"] == "turned 90° counter-clockwise: the face lay on its side", row
    assert abs(int(row["apex_frame"]) - APEX_FRAME) <= 2, row
    assert row["labelled"] == "yes" and "no_video" not in {r["status"] for r in report.values()}
    assert "graded but no video" not in stdout
    sample = out / "eye_close" / f"{SIDEWAYS}_{row['apex_frame']}"
    landmarks = np.load(sample / "expression_landmarks.npy")
    right, left = landmarks[12], landmarks[109]  # mesh points 33 and 362 of the 146: the eye line is level
    assert abs(left[1] - right[1]) < 0.1 * abs(left[0] - right[0]) and left[0] > right[0]
