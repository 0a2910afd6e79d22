"""The part of a signed Grad-CAM map that is drawn and measured (numpy only: the report needs no torch).

A grade's map is positive where the flow raised the grade and negative where it lowered it. `positive` is
Grad-CAM's usual ReLU, `negative` its mirror, `absolute` both: where the flow changed the grade at all.
facedyn.explain.check measures how each localises; the default is the one the report draws.
"""

from __future__ import annotations

import numpy as np

PARTS = ("positive", "negative", "absolute")
DEFAULT_PART = "absolute"


def part(maps: np.ndarray, which: str = DEFAULT_PART) -> np.ndarray:
    """The non-negative part of signed maps (..., H, W) that `which` names, each map scaled to a maximum of 1
    (a map with nothing in that part stays 0)."""
    if which not in PARTS:
        raise ValueError(f"part {which!r} is not one of {PARTS}")
    chosen = {"positive": np.maximum(maps, 0.0), "negative": np.maximum(-maps, 0.0), "absolute": np.abs(maps)}[which]
    peak = chosen.max(axis=(-2, -1), keepdims=True)
    return np.divide(chosen, peak, out=np.zeros_like(chosen), where=peak > 0)
