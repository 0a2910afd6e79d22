"""Which frames of a clip become samples: the neutral baseline and expression frames around the apex.

A clip starts at rest, moves to the expression's apex and relaxes. Movement is measured on landmarks
that expressions move, after a similarity fitted on landmarks no expression moves (REFERENCE_POINTS)
has mapped each frame onto the first one's pose, so head and camera motion are not mistaken for
expression; in units of the inter-ocular distance, so it compares across videos.

What the similarity leaves is not all expression. MediaPipe's points wander by up to a few hundredths
of an inter-ocular distance when the picture moves or is compressed hard — the brows and lips drift as
blocks, the face outline follows the background. So the face outline and the irises (gaze is no
expression) are not measured at all, and each measured landmark counts only by how far it moves beyond
NOISE_MARGIN times its own largest excursion during the rest phase. What the most-moving landmarks
wander at rest is the clip's noise level; a clip whose movement never rises above it has no movement
(Selection.moved), which is a grade of its own, not a failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from facedyn.flow.registration import STABLE_POINTS, apply, fit_similarity
from facedyn.landmarks import LANDMARK_SUBSET_IDXS
from facedyn.videos.config import SelectionConfig, baseline_index

EYE_CENTRES = ((33, 133), (362, 263))  # outer/inner corners of the subject's right and left eye
# The registration's points plus the nose tip and the point above it (4, 1): no Sunnybrook expression
# moves them (the snarl wrinkles the nose's wings and the skin of the bridge, not the tip), and they are
# the steadiest of the 146 points when the picture sways (measured on the test clips of
# tests/real_clips.py, 0.003-0.004 inter-ocular distances rms against 0.01 for the brows).
REFERENCE_POINTS = (*STABLE_POINTS, 4, 1)
# MediaPipe's face oval (its FACEMESH_FACE_OVAL): placed from the face's silhouette, it moves with the
# background and the head's pose, and no expression moves it that the lips or brows do not show.
FACE_OUTLINE = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
                152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
FIRST_IRIS_POINT = 468  # 468-477: the irises
MEASURED_POINTS = tuple(i for i in LANDMARK_SUBSET_IDXS if i not in FACE_OUTLINE and i < FIRST_IRIS_POINT)
MOVING_SHARE = 0.1  # the landmarks that move most; the smallest expression region (one eye) holds ~10 %
NOISE_MARGIN = 2.0  # a landmark moves by what it exceeds twice its largest excursion at rest
ABOVE_NOISE = 0.5  # movement above noise: at the apex, more than half the rest phase's noise level
APEX_PLATEAU = 0.7  # the apex is the middle of the stretch around the peak that moves this share of it
MIN_REST_SHARE = 0.25  # the rest phase's minimum length (selection.min_rest) is at most this share of a clip


class SelectionError(ValueError):
    """The clip has no usable baseline or expression frame; the message is the report's reason."""


@dataclass(frozen=True)
class Selection:
    baseline: int
    apex: int
    frames: tuple[int, ...]  # the expression frames, ascending, the apex among them
    apex_movement: float  # the peak of the landmark movement beyond the rest-phase noise, inter-ocular distances
    rest_noise: float  # what the most-moving landmarks wander during the rest phase, inter-ocular distances
    rest_partner: Optional[int]  # a second typical rest frame, for the flow's noise (None: the rest is one frame)
    moved: bool  # whether the movement rose above the rest phase's noise (False: the face did not move)


def _interocular(points: np.ndarray) -> float:
    right, left = (points[list(pair)].mean(axis=0) for pair in EYE_CENTRES)
    return max(float(np.linalg.norm(right - left)), 1e-6)


def registered(landmarks: np.ndarray, valid: np.ndarray, reference: int) -> np.ndarray:
    """(T, 478, 2) each valid frame's landmarks mapped onto frame `reference`'s pose (NaN elsewhere)."""
    idx = list(REFERENCE_POINTS)
    target = landmarks[reference, idx].astype(np.float64)
    out = np.full(landmarks.shape, np.nan)
    for t in np.flatnonzero(valid):
        out[t] = apply(fit_similarity(landmarks[t, idx], target), landmarks[t].astype(np.float64))
    return out


def _top_share(distances: np.ndarray) -> np.ndarray:
    """Per frame, the mean of the MOVING_SHARE largest of its (T, P) landmark distances (NaN rows stay NaN).
    Expressions move one region; a mean over the whole face would drown it in the landmarks' jitter."""
    top = max(1, int(round(MOVING_SHARE * distances.shape[1])))
    out = np.full(len(distances), np.nan)
    rows = ~np.isnan(distances).any(axis=1)
    out[rows] = np.sort(distances[rows], axis=1)[:, -top:].mean(axis=1)
    return out


def _distances(aligned: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """(T, P) how far each measured landmark is from `shape`'s, in inter-ocular distances."""
    points = list(MEASURED_POINTS)
    return np.linalg.norm(aligned[:, points] - shape[points], axis=2) / _interocular(shape)


def _smooth(values: np.ndarray, half: int = 1) -> np.ndarray:
    """Median of each frame and its `half` neighbours on each side (frames without a face skipped)."""
    out = values.copy()
    for t in np.flatnonzero(~np.isnan(values)):
        out[t] = np.nanmedian(values[max(0, t - half):t + half + 1])
    return out


def rest_phase(aligned: np.ndarray, valid: np.ndarray, cfg: SelectionConfig) -> list[int]:
    """The frames with a face from the start to the first frame whose movement from the first usable frame
    rises rest_fraction of the way from the rest level to the largest, and at least the first
    `cfg.min_rest` frames (a quarter of the clip at most): a noise level needs several frames, and a clip
    without any expression would otherwise end its rest phase at its first noisy frame."""
    usable = np.flatnonzero(valid)
    first = int(usable[0])
    raw = _top_share(_distances(aligned, aligned[first]))
    raw[first] = np.nan  # zero by definition; the other rest frames show what rest looks like
    moved = _smooth(raw)
    onset = len(moved)
    if not np.all(np.isnan(moved)):
        # From the rest level up: the first frame may itself be a blink, which lifts every frame's movement.
        low, high = np.nanmin(moved), np.nanmax(moved)
        above = np.flatnonzero(np.nan_to_num(moved, nan=-np.inf) >= low + cfg.rest_fraction * (high - low))
        onset = int(above[0]) if high > low else len(moved)
    minimum = first + min(cfg.min_rest, max(1, int(MIN_REST_SHARE * len(usable))))
    return [int(t) for t in usable if t < max(onset, minimum)]


def choose_baseline(aligned: np.ndarray, valid: np.ndarray, rest: list[int], cfg: SelectionConfig) -> int:
    """The configured frame, the first usable one, or (most_neutral) the rest frame nearest the median rest
    shape, so that a blink or a twitch at rest (even in the first frame) is not chosen."""
    fixed: Optional[int] = baseline_index(cfg)
    if fixed is not None:
        if fixed >= len(valid):
            raise SelectionError(f"baseline frame {fixed} is past the clip's end ({len(valid)} frames)")
        if not valid[fixed]:
            raise SelectionError(f"baseline frame {fixed} does not show exactly one face")
        return fixed
    if cfg.baseline == "first":
        return rest[0]
    distance = np.linalg.norm(aligned[rest] - np.median(aligned[rest], axis=0), axis=2).mean(axis=1)
    return rest[int(np.argmin(distance))]


def _rest_partner(distances: np.ndarray, rest: list[int], baseline: int) -> Optional[int]:
    """A second rest frame to measure the flow's noise against the baseline with: among the rest frames
    closer to the rest shape than their median (the rest phase's last frames may already start the
    expression), the one farthest in time from the baseline. None when the rest is one frame."""
    others = [t for t in rest if t != baseline]
    if not others:
        return None
    spread = distances[others].mean(axis=1)
    typical = [t for t, d in zip(others, spread) if d <= np.median(spread)]
    return max(typical, key=lambda t: (abs(t - baseline), t))


def _stretch(values: np.ndarray, around: int, share: float) -> list[int]:
    """The frames of the run around `around` whose values reach `share` of its value; a frame without a
    face (NaN) inside the run neither ends it nor belongs to it."""
    near = np.nan_to_num(values, nan=np.inf) >= share * values[around]
    start, stop = around, around
    while start > 0 and near[start - 1]:
        start -= 1
    while stop + 1 < len(near) and near[stop + 1]:
        stop += 1
    return [t for t in range(start, stop + 1) if not np.isnan(values[t])]


def choose_frames(landmarks: np.ndarray, valid: np.ndarray, cfg: SelectionConfig) -> Selection:
    """Baseline, apex and `cfg.frames` frames around it.

    Movement per frame: the MOVING_SHARE of measured landmarks that moved most beyond their noise, from
    the median rest shape, median-smoothed over 5 frames (a short drift is no expression). MediaPipe's
    points follow a closing lid in steps and then hold, so the peak is a plateau: the apex is the middle
    of the stretch around the peak that moves at least APEX_PLATEAU of it. The expression frames are
    spread evenly over the stretch around the apex that moves at least near_apex of the apex's movement,
    the apex always among them; a shorter stretch gives fewer frames. A clip without movement above its
    noise (Selection.moved) has its frames spread over the whole clip.
    """
    if not valid.any():
        raise SelectionError("no frame shows exactly one face")
    aligned = registered(landmarks, valid, int(np.flatnonzero(valid)[0]))
    rest = rest_phase(aligned, valid, cfg)
    baseline = choose_baseline(aligned, valid, rest, cfg)
    shape = np.median(aligned[rest], axis=0)
    distances = _distances(aligned, shape)
    wander = np.nanmax(distances[rest], axis=0)  # each landmark's largest excursion at rest
    rest_noise = float(np.nanmean(_top_share(distances[rest]))) if len(rest) > 1 else 0.0
    movement = _top_share(np.maximum(distances - NOISE_MARGIN * wander, 0.0))
    movement[baseline] = np.nan  # the baseline is no expression frame
    if np.all(np.isnan(movement)):
        raise SelectionError("no frame with one face besides the baseline")
    smoothed = _smooth(movement, half=2)
    above_noise = bool(np.nanmax(smoothed) > ABOVE_NOISE * rest_noise)
    # Without movement above noise the curve is noise: every frame is as good an apex as any, and the
    # frames are spread over the whole clip.
    moved = smoothed if above_noise else np.where(np.isnan(smoothed), np.nan, 0.0)
    plateau = _stretch(moved, int(np.nanargmax(moved)), APEX_PLATEAU)
    middle = (plateau[0] + plateau[-1]) / 2
    apex = min(plateau, key=lambda t: (abs(t - middle), t))
    near = _stretch(moved, apex, cfg.near_apex)
    if len(near) <= cfg.frames:
        frames = set(near)
    else:
        frames = {near[int(round(i))] for i in np.linspace(0, len(near) - 1, cfg.frames)}
        frames.remove(min(frames, key=lambda t: (abs(t - apex), t)))
        frames.add(apex)
    partner = _rest_partner(distances, rest, baseline)
    return Selection(baseline, apex, tuple(sorted(frames)), float(np.nanmax(smoothed)), rest_noise, partner, above_noise)
