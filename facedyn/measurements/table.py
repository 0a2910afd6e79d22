"""measurements.csv: one row per sample, measurement and side (`both` for the intercommissural width).

Columns: video, expression, frame, folder, measurement, side, unit (mm, IOD or degrees), at_rest,
at_expression, change, and for the measurements a movement is read from (brow_height: brow raise,
palpebral_fissure_height: eye closure, commissure_excursion) the movement's affected_side,
affected_to_healthy ratio and note, repeated on both sides' rows.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from facedyn.measurements.anatomy import SIDES
from facedyn.measurements.sample import MEASURES, MOVEMENT_OF_MEASURE, Movement, SampleMeasurements
from facedyn.runs.results import csv_text

HEADER = ["video", "expression", "frame", "folder", "measurement", "side", "unit", "at_rest", "at_expression",
          "change", "affected_side", "affected_to_healthy", "note"]
EXCURSION = "commissure_excursion"


def _number(value: float) -> str:
    return f"{value:.4f}" if np.isfinite(value) else ""


def _movement_cells(movement: Movement | None) -> list[str]:
    if movement is None:
        return ["", "", ""]
    ratio = "" if movement.ratio is None else f"{movement.ratio:.4f}"
    return [movement.affected or "none", ratio, movement.note]


def measurement_rows(result: SampleMeasurements) -> list[list[str]]:
    """The rows of one sample, from `measurement` on."""
    rows = []
    for measure in MEASURES:
        unit = "degrees" if measure.angle else result.unit
        movement = result.movements.get(MOVEMENT_OF_MEASURE.get(measure.name, ""))
        rest, expression = np.atleast_1d(result.rest[measure.name]), np.atleast_1d(result.expression[measure.name])
        sides = SIDES if measure.sided else ("both",)
        for s, side in enumerate(sides):
            rows.append([measure.name, side, unit, _number(rest[s]), _number(expression[s]),
                         _number(expression[s] - rest[s]), *_movement_cells(movement)])
    excursion = result.movements[EXCURSION]
    for s, side in enumerate(SIDES):
        rows.append([EXCURSION, side, result.unit, "", "", _number(excursion.amount[s]), *_movement_cells(excursion)])
    return rows


def measurements_csv(results: Sequence[SampleMeasurements], videos: Sequence[str], expressions: Sequence[str],
                     frames: Sequence[str], folders: Sequence[str]) -> str:
    rows = []
    for result, video, expression, frame, folder in zip(results, videos, expressions, frames, folders):
        rows += [[video, expression, frame, folder, *row] for row in measurement_rows(result)]
    return csv_text(rows, HEADER)
