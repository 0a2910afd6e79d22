"""Facial measurements from the landmarks, in millimetres where the iris gives the scale.

    from facedyn.measurements import measure
    results = measure(baseline_landmarks, expression_landmarks, expressions)  # (N, 146, 2) each
    results[0].rest["brow_height"]          # [right, left] at rest, results[0].unit "mm" (or "IOD")
    results[0].affected                     # the expression's movement: amounts, affected side, ratio

See facedyn.measurements.sample for what is measured and facedyn.measurements.frame for the frame and
scale; facedyn.measurements.table writes them as CSV rows.
"""

from facedyn.measurements.anatomy import SIDES
from facedyn.measurements.frame import IOD, IRIS_DIAMETER_MM, MM
from facedyn.measurements.sample import (EXPRESSION_MOVEMENT, MEASURES, MOVEMENT_OF_MEASURE, MOVEMENTS, Measure,
                                          Movement, SampleMeasurements, measure)

__all__ = ["EXPRESSION_MOVEMENT", "IOD", "IRIS_DIAMETER_MM", "MEASURES", "MM", "MOVEMENTS", "MOVEMENT_OF_MEASURE",
           "Measure", "Movement", "SIDES", "SampleMeasurements", "measure"]
