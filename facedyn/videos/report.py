"""What a person checks after prepare.py: prepare_report.csv (one row per clip) and a contact sheet per expression.

Both show, per clip prepared, the movement its expression is graded by as measured at the apex
(facedyn.measurements): each side's amount, the affected side and its share of the other side's movement.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Mapping, Optional, Sequence

import cv2
import numpy as np

from facedyn.data.layout import BASELINE_LANDMARKS_FILE, EXPRESSION_LANDMARKS_FILE
from facedyn.utils.io import atomic_write_bytes, atomic_write_text
from facedyn.measurements import MOVEMENTS, SampleMeasurements, measure
from facedyn.videos.clip import TILE, ClipOutcome, record_path
from facedyn.videos.discovery import clip_key
from facedyn.videos.grades import Grade

REPORT_FILE = "prepare_report.csv"
CONTACT_SHEET_PREFIX = "contact_sheet_"
COLUMNS = ("video", "patient", "expression", "status", "reason", "note", "frames_read", "one_face_share",
           "baseline_frame", "apex_frame", "chosen_frames", "apex_movement", "rest_noise", "flow_noise", "samples",
           "labelled", "measured_movement", "unit", "movement_right", "movement_left", "affected_side",
           "affected_to_healthy")
Measured = Mapping[tuple[str, str], SampleMeasurements]  # (patient, expression) -> the apex's measurements
_CAPTION = 18
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def apex_measurements(out: Path, outcomes: Sequence[ClipOutcome]) -> dict[tuple[str, str], SampleMeasurements]:
    """Measurements of each prepared clip's apex sample, from the landmarks it was written with."""
    clips = [o for o in outcomes if o.status == "ok" and o.apex_frame is not None]
    if not clips:
        return {}
    folders = [out / o.expression / f"{o.patient}_{o.apex_frame}" for o in clips]
    rest = np.stack([np.load(f / BASELINE_LANDMARKS_FILE) for f in folders])
    expression = np.stack([np.load(f / EXPRESSION_LANDMARKS_FILE) for f in folders])
    results = measure(rest, expression, [o.expression for o in clips])
    return {(o.patient, o.expression): result for o, result in zip(clips, results)}


def _measured_cells(result: Optional[SampleMeasurements]) -> list[object]:
    movement = result.affected if result is not None else None
    if movement is None:
        return ["", "", "", "", "", ""]
    ratio = "" if movement.ratio is None else f"{movement.ratio:.3f}"
    return [movement.name, result.unit, f"{movement.amount[0]:.2f}", f"{movement.amount[1]:.2f}",
            movement.affected or "none", ratio]


def _row(outcome: ClipOutcome, measured: Measured) -> list[object]:
    return [outcome.relative, outcome.patient, outcome.expression, outcome.status, outcome.reason, outcome.note,
            outcome.frames_read, f"{outcome.one_face_share:.4f}", _blank(outcome.baseline_frame),
            _blank(outcome.apex_frame), " ".join(map(str, outcome.frames)), _blank(outcome.apex_movement),
            _blank(outcome.rest_noise), _blank(outcome.flow_noise), len(outcome.samples), "yes" if outcome.labelled else "no",
            *_measured_cells(measured.get((outcome.patient, outcome.expression)))]


def _blank(value: Optional[object]) -> object:
    return "" if value is None else value


def write_report(out: Path, outcomes: Sequence[ClipOutcome],
                 grades_without_video: Mapping[tuple[str, str], Grade], measured: Measured) -> Path:
    """out/prepare_report.csv: clips sorted by expression and patient, then grades that found no video."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for outcome in sorted(outcomes, key=lambda o: (o.expression or "", o.patient, o.relative)):
        writer.writerow(_row(outcome, measured))
    for (patient, expression), grade in sorted(grades_without_video.items()):
        writer.writerow(["", patient, expression, "no_video", f"graded ({grade.row}) but no video found", "",
                         0, "", "", "", "", "", "", "", 0, "no", *_measured_cells(None)])
    target = out / REPORT_FILE
    atomic_write_text(target, buffer.getvalue())
    return target


def _text(image: np.ndarray, text: str, origin: tuple[int, int]) -> None:
    cv2.putText(image, text, origin, _FONT, 0.42, (235, 235, 235), 1, cv2.LINE_AA)


def _measured_caption(result: Optional[SampleMeasurements]) -> str:
    movement = result.affected if result is not None else None
    if movement is None:
        return ""
    affected = f"{movement.affected[0].upper()} {movement.ratio:.0%}" if movement.affected else "none affected"
    return f"  R {movement.amount[0]:.1f} L {movement.amount[1]:.1f} {result.unit} ({affected})"


def write_contact_sheets(out: Path, outcomes: Sequence[ClipOutcome], grades: Mapping[tuple[str, str], Grade],
                         max_magnitude: float, measured: Measured) -> list[Path]:
    """out/contact_sheet_<expression>.png: per clip prepared, its baseline and apex face crops with the
    landmarks drawn, the apex's flow image, and its measured movement; sheets of expressions without a clip
    are removed."""
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
        names = {m.affected.name for m in (measured.get((o.patient, expression)) for o in clips) if m and m.affected}
        movement = f"; {', '.join(MOVEMENTS[n] for n in sorted(names))} at the apex" if names else ""
        _text(sheet, f"{expression}: baseline | apex (registered) | flow{movement}", (4, 13))
        for row, outcome in enumerate(clips):
            top = _CAPTION + row * (TILE + _CAPTION)
            grade = grade_of.get(clip_key(outcome.patient, expression))
            graded = f"d{grade.dynamics} s{grade.synkinesis}" if grade else "not graded"
            note = f"  ({outcome.note})" if outcome.note else ""
            _text(sheet, f"{outcome.patient}  {graded}  frames {outcome.baseline_frame} -> {outcome.apex_frame}{note}"
                  + _measured_caption(measured.get((outcome.patient, expression))), (4, top + 13))
            tile = cv2.imread(str(record_path(out, expression, outcome.patient, ".png")), cv2.IMREAD_COLOR)
            if tile is not None and tile.shape == (TILE, width, 3):
                sheet[top + _CAPTION:top + _CAPTION + TILE] = tile
        _text(sheet, f"flow: hue = direction, brightness = magnitude (full at {max_magnitude:g} px)",
              (4, sheet.shape[0] - 5))
        target = out / f"{CONTACT_SHEET_PREFIX}{expression}.png"
        atomic_write_bytes(target, cv2.imencode(".png", sheet)[1].tobytes())
        written.append(target)
    return written
