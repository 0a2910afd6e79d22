"""Prediction tables: per frame, per video and expression, and per patient with Sunnybrook subtotals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from facedyn.data.samples import Samples
from facedyn.runs.results import csv_text
from facedyn.metrics import SCORES, aggregate_by_video, rounded, video_groups

# Sunnybrook's voluntary-movement items in the order of its form; each graded 1 (none) – 5 (complete).
SUNNYBROOK_ITEMS: tuple[str, ...] = ("brow_lift", "gentle_eye_closure", "open_mouth_smile", "snarl", "lip_pucker")
SUNNYBROOK_MIN_MOVEMENT = 1
# A video's frames disagree when their grades spread by more than one grade (standard deviation): the
# frames show different things (a face on its side, a wrong frame), and the mean grade is not to be trusted.
DISAGREEING_SD = 1.0


@dataclass(frozen=True)
class NotGraded:
    """A clip that was asked for but could not be graded, and why (prepare.py's reason)."""

    video: str  # the patient, as the samples name it
    expression: str
    file: str  # the clip, relative to the videos folder
    reason: str

    def text(self) -> str:
        return f"{self.expression} ({self.file}): {self.reason}"


@dataclass
class VideoGrades:
    """Frames averaged per (video, expression): the grade a patient gets for one expression."""

    keys: list[tuple[str, str]]  # (video, expression) per group
    frames: np.ndarray  # (G,) frames per group
    mean: np.ndarray  # (G, 2) mean unrounded grade
    sd: np.ndarray  # (G, 2) standard deviation over frames (0 for one frame)
    true: np.ndarray  # (G, 2) the label (UNLABELLED where there is none)
    valid: np.ndarray  # (G, 2) whether the label counts
    group_of_row: np.ndarray  # (N,) group id of each sample row

    @property
    def grades(self) -> np.ndarray:
        """(G, 2) rounded and clipped mean grades."""
        return np.stack([rounded(self.mean[:, c], s) for c, s in enumerate(SCORES)], axis=1)

    @property
    def disagreeing(self) -> np.ndarray:
        """(G,) whether a group's frames disagree (DISAGREEING_SD) on either score."""
        return (self.sd > DISAGREEING_SD).any(axis=1)


def video_grades(samples: Samples, grades: np.ndarray) -> VideoGrades:
    ids, keys = video_groups(samples.video, samples.expression)
    true = np.stack([samples.dynamics, samples.synkinesis], axis=1)
    valid = np.stack([samples.dynamics_valid, samples.synkinesis_valid], axis=1)
    mean, group_true, group_valid = aggregate_by_video(grades, true, valid, ids)
    counts = np.bincount(ids, minlength=len(keys))
    squares = np.stack([np.bincount(ids, weights=(grades[:, c] - mean[ids, c]) ** 2, minlength=len(keys))
                        for c in range(2)], axis=1)
    sd = np.sqrt(squares / np.maximum(counts - 1, 1)[:, None])
    return VideoGrades(list(keys), counts, mean, sd, group_true, group_valid, ids)


Columns = tuple[list[str], list[list]]  # extra columns of a table: (header, one row of cells per table row)


def _with(header: list[str], rows: list[list], extra: Optional[Columns]) -> str:
    if extra is not None:
        header = header + extra[0]
        rows = [row + cells for row, cells in zip(rows, extra[1])]
    return csv_text(rows, header)


def frames_shown(samples: Samples, table: VideoGrades) -> np.ndarray:
    """(G,) per video and expression, the row of the frame a report shows: the one whose landmarks moved
    most from rest."""
    movement = np.abs(samples.expression_landmarks - samples.baseline_landmarks).mean(axis=(1, 2))
    shown = np.empty(len(table.keys), dtype=np.int64)
    for g in range(len(table.keys)):
        rows = np.flatnonzero(table.group_of_row == g)
        shown[g] = rows[int(np.argmax(movement[rows]))]
    return shown


def _label(value: int, valid: bool) -> str:
    return str(int(value)) if valid else ""


def frames_csv(samples: Samples, grades: np.ndarray, extra: Optional[Columns] = None) -> str:
    """predictions.csv: one row per frame, both scores unrounded and as rounded, clipped grades (and `extra`
    columns: an ensemble's spread, facedyn.inference.uncertainty)."""
    header = ["video", "expression", "frame", "folder"]
    for score in SCORES:
        header += [f"{score}_pred", f"{score}_grade", f"{score}_true"]
    labels = ((samples.dynamics, samples.dynamics_valid), (samples.synkinesis, samples.synkinesis_valid))
    rounded_grades = [rounded(grades[:, c], s) for c, s in enumerate(SCORES)]
    rows = []
    for i in range(len(samples)):
        row = [samples.video[i], samples.expression[i], samples.frame[i], samples.folder[i]]
        for c in range(2):
            row += [f"{grades[i, c]:.6f}", int(rounded_grades[c][i]), _label(labels[c][0][i], labels[c][1][i])]
        rows.append(row)
    return _with(header, rows, extra)


def videos_csv(table: VideoGrades, extra: Optional[Columns] = None) -> str:
    """predictions_video.csv: per video and expression the mean, SD and number of frames, and the grade (and
    `extra` columns: an ensemble's spread, interval and flag)."""
    header = ["video", "expression", "frames"]
    for score in SCORES:
        header += [f"{score}_mean", f"{score}_sd", f"{score}_grade", f"{score}_true"]
    header.append("frames_disagree")
    grades = table.grades
    rows = []
    for g, (video, expression) in enumerate(table.keys):
        row = [video, expression, int(table.frames[g])]
        for c in range(2):
            row += [f"{table.mean[g, c]:.6f}", f"{table.sd[g, c]:.6f}", int(grades[g, c]),
                    _label(table.true[g, c], table.valid[g, c])]
        row.append("yes" if table.disagreeing[g] else "")
        rows.append(row)
    return _with(header, rows, extra)


@dataclass
class PatientRow:
    video: str
    items: dict[str, Optional[tuple[int, int]]]  # Sunnybrook item → (movement 1–5, synkinesis 0–3), None: missing
    true_items: dict[str, Optional[tuple[int, int]]]  # the same from labels, None where unlabelled
    voluntary_movement: Optional[int]  # 4 × Σ movement over the five items; None unless all five are there
    synkinesis: Optional[int]  # Σ synkinesis over the five items; None unless all five are there
    voluntary_movement_true: Optional[int]
    synkinesis_true: Optional[int]
    not_graded: tuple[NotGraded, ...] = ()  # this patient's clips that could not be graded


def _subtotals(items: dict[str, Optional[tuple[int, int]]]) -> tuple[Optional[int], Optional[int]]:
    graded = [items[item] for item in SUNNYBROOK_ITEMS]
    if any(grade is None for grade in graded):
        return None, None  # a subtotal of fewer items would read as a (wrong) low score
    return 4 * sum(g[0] for g in graded), sum(g[1] for g in graded)


def patient_rows(table: VideoGrades, mapping: dict[str, Optional[str]],
                 not_graded: Sequence[NotGraded] = ()) -> list[PatientRow]:
    """One row per video (patient), also for a patient none of whose clips could be graded. Predicted
    movement grades are clipped to Sunnybrook's 1–5; a label of 0 (outside Sunnybrook's scale) or an
    unlabelled expression leaves the true item, and its subtotal, empty."""
    by_key = {key: g for g, key in enumerate(table.keys)}
    grades = table.grades
    rows = []
    for video in dict.fromkeys([*(video for video, _ in table.keys), *(clip.video for clip in not_graded)]):
        items: dict[str, Optional[tuple[int, int]]] = {}
        true_items: dict[str, Optional[tuple[int, int]]] = {}
        for item in SUNNYBROOK_ITEMS:
            g = by_key.get((video, mapping.get(item))) if mapping.get(item) else None
            if g is None:
                items[item] = true_items[item] = None
                continue
            items[item] = (max(int(grades[g, 0]), SUNNYBROOK_MIN_MOVEMENT), int(grades[g, 1]))
            labelled = table.valid[g].all() and table.true[g, 0] >= SUNNYBROOK_MIN_MOVEMENT
            true_items[item] = (int(table.true[g, 0]), int(table.true[g, 1])) if labelled else None
        movement, synkinesis = _subtotals(items)
        movement_true, synkinesis_true = _subtotals(true_items)
        rows.append(PatientRow(video, items, true_items, movement, synkinesis, movement_true, synkinesis_true,
                               tuple(clip for clip in not_graded if clip.video == video)))
    return rows


def _cell(value: Optional[int]) -> str:
    return "" if value is None else str(value)


def patients_csv(rows: list[PatientRow], labelled: bool, extra: Optional[Columns] = None) -> str:
    """patients.csv: per patient the five items' grades and Sunnybrook's voluntary-movement (4 × Σ, 20–100)
    and synkinesis (Σ, 0–15) subtotals; where clips could not be graded, which and why (`not_graded`); with
    labels also the true ones (and `extra` columns: an ensemble's intervals and flag)."""
    header = ["video"]
    for item in SUNNYBROOK_ITEMS:
        header += [f"{item}_movement", f"{item}_synkinesis"]
    header += ["voluntary_movement_score", "synkinesis_score"]
    if labelled:
        for item in SUNNYBROOK_ITEMS:
            header += [f"{item}_movement_true", f"{item}_synkinesis_true"]
        header += ["voluntary_movement_score_true", "synkinesis_score_true"]
    header.append("not_graded")
    lines = []
    for row in rows:
        line = [row.video]
        for item in SUNNYBROOK_ITEMS:
            line += [_cell(row.items[item][0] if row.items[item] else None),
                     _cell(row.items[item][1] if row.items[item] else None)]
        line += [_cell(row.voluntary_movement), _cell(row.synkinesis)]
        if labelled:
            for item in SUNNYBROOK_ITEMS:
                line += [_cell(row.true_items[item][0] if row.true_items[item] else None),
                         _cell(row.true_items[item][1] if row.true_items[item] else None)]
            line += [_cell(row.voluntary_movement_true), _cell(row.synkinesis_true)]
        line.append("; ".join(clip.text() for clip in row.not_graded))
        lines.append(line)
    return _with(header, lines, extra)

