"""Prediction tables: per frame, per video and expression, and per patient with Sunnybrook subtotals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from facedyn.data.samples import Samples
from facedyn.results import csv_text
from facedyn.metrics import SCORES, aggregate_by_video, rounded, video_groups

# Sunnybrook's voluntary-movement items in the order of its form; each graded 1 (none) – 5 (complete).
SUNNYBROOK_ITEMS: tuple[str, ...] = ("brow_lift", "gentle_eye_closure", "open_mouth_smile", "snarl", "lip_pucker")
SUNNYBROOK_MIN_MOVEMENT = 1


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


def frames_csv(samples: Samples, grades: np.ndarray) -> str:
    """predictions.csv: one row per frame, both scores unrounded and as rounded, clipped grades."""
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
    return csv_text(rows, header)


def videos_csv(table: VideoGrades) -> str:
    """predictions_video.csv: per video and expression the mean, SD and number of frames, and the grade."""
    header = ["video", "expression", "frames"]
    for score in SCORES:
        header += [f"{score}_mean", f"{score}_sd", f"{score}_grade", f"{score}_true"]
    grades = table.grades
    rows = []
    for g, (video, expression) in enumerate(table.keys):
        row = [video, expression, int(table.frames[g])]
        for c in range(2):
            row += [f"{table.mean[g, c]:.6f}", f"{table.sd[g, c]:.6f}", int(grades[g, c]),
                    _label(table.true[g, c], table.valid[g, c])]
        rows.append(row)
    return csv_text(rows, header)


@dataclass
class PatientRow:
    video: str
    items: dict[str, Optional[tuple[int, int]]]  # Sunnybrook item → (movement 1–5, synkinesis 0–3), None: missing
    true_items: dict[str, Optional[tuple[int, int]]]  # the same from labels, None where unlabelled
    voluntary_movement: Optional[int]  # 4 × Σ movement over the five items; None unless all five are there
    synkinesis: Optional[int]  # Σ synkinesis over the five items; None unless all five are there
    voluntary_movement_true: Optional[int]
    synkinesis_true: Optional[int]


def _subtotals(items: dict[str, Optional[tuple[int, int]]]) -> tuple[Optional[int], Optional[int]]:
    graded = [items[item] for item in SUNNYBROOK_ITEMS]
    if any(grade is None for grade in graded):
        return None, None  # a subtotal of fewer items would read as a (wrong) low score
    return 4 * sum(g[0] for g in graded), sum(g[1] for g in graded)


def patient_rows(table: VideoGrades, mapping: dict[str, Optional[str]]) -> list[PatientRow]:
    """One row per video (patient). Predicted movement grades are clipped to Sunnybrook's 1–5; a label of 0
    (outside Sunnybrook's scale) or an unlabelled expression leaves the true item, and its subtotal, empty."""
    by_key = {key: g for g, key in enumerate(table.keys)}
    grades = table.grades
    rows = []
    for video in dict.fromkeys(video for video, _ in table.keys):
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
        rows.append(PatientRow(video, items, true_items, movement, synkinesis, movement_true, synkinesis_true))
    return rows


def _cell(value: Optional[int]) -> str:
    return "" if value is None else str(value)


def patients_csv(rows: list[PatientRow], labelled: bool) -> str:
    """patients.csv: per patient the five items' grades and Sunnybrook's voluntary-movement (4 × Σ, 20–100)
    and synkinesis (Σ, 0–15) subtotals; with labels also the true ones."""
    header = ["video"]
    for item in SUNNYBROOK_ITEMS:
        header += [f"{item}_movement", f"{item}_synkinesis"]
    header += ["voluntary_movement_score", "synkinesis_score"]
    if labelled:
        for item in SUNNYBROOK_ITEMS:
            header += [f"{item}_movement_true", f"{item}_synkinesis_true"]
        header += ["voluntary_movement_score_true", "synkinesis_score_true"]
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
        lines.append(line)
    return csv_text(lines, header)

