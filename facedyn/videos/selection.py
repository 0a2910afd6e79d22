"""Which frames of a clip become samples: the neutral baseline and expression frames around the apex.

A clip starts at rest, moves to the expression's apex and relaxes. Movement is measured on the
landmarks after mapping each frame onto the reference pose (registration.STABLE_POINTS), so head motion
is not mistaken for expression, and in units of the inter-ocular distance, so it compares across videos.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from facedyn.videos.config import SelectionConfig, baseline_index
from facedyn.videos.registration import apply, to_baseline

EYE_CENTRES = ((33, 133), (362, 263))  # outer/inner corners of the subject's right and left eye
MOVING_SHARE = 0.1  # the landmarks that move most; the smallest expression region (one eye) holds ~10 %


class SelectionError(ValueError):
    """The clip has no usable baseline or expression frame; the message is the report's reason."""


@dataclass(frozen=True)
class Selection:
    baseline: int
    apex: int
    frames: tuple[int, ...]  # the expression frames, ascending, the apex among them
    apex_movement: float  # mean landmark displacement at the apex, in inter-ocular distances


def _interocular(points: np.ndarray) -> float:
    right, left = (points[list(pair)].mean(axis=0) for pair in EYE_CENTRES)
    return max(float(np.linalg.norm(right - left)), 1e-6)


def movement(landmarks: np.ndarray, valid: np.ndarray, reference: int) -> np.ndarray:
    """Per frame, how far its registered landmarks moved from frame `reference`'s: the mean distance of
    the MOVING_SHARE that moved most, in inter-ocular distances (NaN where the frame has no single face).
    Expressions move one region; a mean over the whole face would drown it in the landmarks' jitter."""
    ref = landmarks[reference]
    top = max(1, int(round(MOVING_SHARE * len(ref))))
    out = np.full(len(landmarks), np.nan)
    for t in np.flatnonzero(valid):
        distance = np.linalg.norm(apply(to_baseline(landmarks[t], ref), landmarks[t]) - ref, axis=1)
        out[t] = np.partition(distance, len(distance) - top)[-top:].mean()
    return out / _interocular(ref)


def _smooth(values: np.ndarray) -> np.ndarray:
    """Median of each frame and its neighbours (frames without a face skipped): one jittery frame is no apex."""
    out = values.copy()
    for t in np.flatnonzero(~np.isnan(values)):
        out[t] = np.nanmedian(values[max(0, t - 1):t + 2])
    return out


def _most_neutral(landmarks: np.ndarray, valid: np.ndarray, cfg: SelectionConfig) -> int:
    """The rest phase's most typical frame: the one nearest (registered) to the median rest shape.

    The rest phase runs from the start to the first frame whose movement from the first usable frame
    rises rest_fraction of the way from the rest level to the largest; a blink or a twitch at rest (even
    in the first frame) is then not chosen.
    """
    first = int(np.flatnonzero(valid)[0])
    raw = movement(landmarks, valid, first)
    raw[first] = np.nan  # zero by definition; the other rest frames show what rest looks like
    moved = _smooth(raw)
    if np.all(np.isnan(moved)):
        return first
    # From the rest level up: the first frame may itself be a blink, which lifts every frame's movement.
    low, high = np.nanmin(moved), np.nanmax(moved)
    above = np.flatnonzero(np.nan_to_num(moved, nan=-np.inf) >= low + cfg.rest_fraction * (high - low))
    onset = int(above[0]) if high > low else len(moved)
    rest = [t for t in np.flatnonzero(valid) if t < max(onset, first + 1)]
    aligned = np.stack([apply(to_baseline(landmarks[t], landmarks[first]), landmarks[t]) for t in rest])
    distance = np.linalg.norm(aligned - np.median(aligned, axis=0), axis=2).mean(axis=1)
    return int(rest[int(np.argmin(distance))])


def choose_baseline(landmarks: np.ndarray, valid: np.ndarray, cfg: SelectionConfig) -> int:
    fixed: Optional[int] = baseline_index(cfg)
    if fixed is not None:
        if fixed >= len(valid):
            raise SelectionError(f"baseline frame {fixed} is past the clip's end ({len(valid)} frames)")
        if not valid[fixed]:
            raise SelectionError(f"baseline frame {fixed} does not show exactly one face")
        return fixed
    if cfg.baseline == "first":
        return int(np.flatnonzero(valid)[0])
    return _most_neutral(landmarks, valid, cfg)


def choose_frames(landmarks: np.ndarray, valid: np.ndarray, cfg: SelectionConfig) -> Selection:
    """Baseline, apex (largest smoothed movement from the baseline) and `cfg.frames` frames around it.

    The expression frames are spread evenly over the stretch around the apex that moves at least
    near_apex of the apex's movement, the apex always among them; a shorter stretch gives fewer frames.
    """
    if not valid.any():
        raise SelectionError("no frame shows exactly one face")
    baseline = choose_baseline(landmarks, valid, cfg)
    raw = movement(landmarks, valid, baseline)
    raw[baseline] = np.nan  # the baseline is no expression frame
    if np.all(np.isnan(raw)):
        raise SelectionError("no frame with one face besides the baseline")
    moved = _smooth(raw)
    # The smoothed peak says where (one jittery frame cannot win); the raw movement picks the frame there.
    peak = int(np.nanargmax(moved))
    window = raw[max(0, peak - 1):peak + 2]
    apex = max(0, peak - 1) + int(np.nanargmax(window))
    near = np.nan_to_num(moved, nan=-1.0) >= cfg.near_apex * moved[apex]
    start, stop = apex, apex
    while start > 0 and near[start - 1]:
        start -= 1
    while stop + 1 < len(near) and near[stop + 1]:
        stop += 1
    if stop - start + 1 <= cfg.frames:
        frames = set(range(start, stop + 1))
    else:
        frames = {int(round(t)) for t in np.linspace(start, stop, cfg.frames)}
        frames.remove(min(frames, key=lambda t: (abs(t - apex), t)))
        frames.add(apex)
    return Selection(baseline, apex, tuple(sorted(frames)), float(moved[apex]))
