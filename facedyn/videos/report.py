"""What a person checks after prepare.py: prepare_report.csv (one row per clip) and a contact sheet per expression."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Mapping, Optional, Sequence

import cv2
import numpy as np

from facedyn.utils.io import atomic_write_bytes, atomic_write_text
from facedyn.videos.clip import TILE, ClipOutcome, record_path
from facedyn.videos.discovery import clip_key
from facedyn.videos.grades import Grade

REPORT_FILE = "prepare_report.csv"
CONTACT_SHEET_PREFIX = "contact_sheet_"
COLUMNS = ("video", "patient", "expression", "status", "reason", "note", "frames_read", "one_face_share",
           "baseline_frame", "apex_frame", "chosen_frames", "apex_movement", "rest_noise", "flow_noise", "samples", "labelled")
_CAPTION = 18
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _row(outcome: ClipOutcome) -> list[object]:
    return [outcome.relative, outcome.patient, outcome.expression, outcome.status, outcome.reason, outcome.note,
            outcome.frames_read, f"{outcome.one_face_share:.4f}", _blank(outcome.baseline_frame),
            _blank(outcome.apex_frame), " ".join(map(str, outcome.frames)), _blank(outcome.apex_movement),
            _blank(outcome.rest_noise), _blank(outcome.flow_noise), len(outcome.samples), "yes" if outcome.labelled else "no"]


def _blank(value: Optional[object]) -> object:
    return "" if value is None else value


def write_report(out: Path, outcomes: Sequence[ClipOutcome],
                 grades_without_video: Mapping[tuple[str, str], Grade]) -> Path:
    """out/prepare_report.csv: clips sorted by expression and patient, then grades that found no video."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for outcome in sorted(outcomes, key=lambda o: (o.expression or "", o.patient, o.relative)):
        writer.writerow(_row(outcome))
    for (patient, expression), grade in sorted(grades_without_video.items()):
        writer.writerow(["", patient, expression, "no_video", f"graded ({grade.row}) but no video found", "",
                         0, "", "", "", "", "", "", "", 0, "no"])
    target = out / REPORT_FILE
    atomic_write_text(target, buffer.getvalue())
    return target


def _text(image: np.ndarray, text: str, origin: tuple[int, int]) -> None:
    cv2.putText(image, text, origin, _FONT, 0.42, (235, 235, 235), 1, cv2.LINE_AA)


def write_contact_sheets(out: Path, outcomes: Sequence[ClipOutcome], grades: Mapping[tuple[str, str], Grade],
                         max_magnitude: float) -> list[Path]:
    """out/contact_sheet_<expression>.png: per clip prepared, its baseline and apex face crops with the
    landmarks drawn, and the apex's flow image; sheets of expressions without a clip are removed."""
    written = []
    grade_of = {clip_key(*key): grade for key, grade in grades.items()}
    by_expression: dict[str, list[ClipOutcome]] = {}
    for outcome in outcomes:
        if outcome.status == "ok":
            by_expression.setdefault(outcome.expression, []).append(outcome)
    for old in out.glob(f"{CONTACT_SHEET_PREFIX}*.png"):
        if old.stem[len(CONTACT_SHEET_PREFIX):] not in by_expression:
            old.unlink()
    for expression, clips in sorted(by_expression.items()):
        clips.sort(key=lambda o: o.patient)
        width = 3 * TILE
        sheet = np.full((_CAPTION * 2 + len(clips) * (TILE + _CAPTION), width, 3), 32, dtype=np.uint8)
        _text(sheet, f"{expression}: baseline | apex (registered) | flow", (4, 13))
        for row, outcome in enumerate(clips):
            top = _CAPTION + row * (TILE + _CAPTION)
            grade = grade_of.get(clip_key(outcome.patient, expression))
            graded = f"d{grade.dynamics} s{grade.synkinesis}" if grade else "not graded"
            note = f"  ({outcome.note})" if outcome.note else ""
            _text(sheet, f"{outcome.patient}  {graded}  frames {outcome.baseline_frame} -> {outcome.apex_frame}{note}",
                  (4, top + 13))
            tile = cv2.imread(str(record_path(out, expression, outcome.patient, ".png")), cv2.IMREAD_COLOR)
            if tile is not None and tile.shape == (TILE, width, 3):
                sheet[top + _CAPTION:top + _CAPTION + TILE] = tile
        _text(sheet, f"flow: hue = direction, brightness = magnitude (full at {max_magnitude:g} px)",
              (4, sheet.shape[0] - 5))
        target = out / f"{CONTACT_SHEET_PREFIX}{expression}.png"
        atomic_write_bytes(target, cv2.imencode(".png", sheet)[1].tobytes())
        written.append(target)
    return written
