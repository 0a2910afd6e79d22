"""Frame choice and registration maths on landmark tracks with known motion (no MediaPipe needed)."""

from __future__ import annotations

import numpy as np
import pytest

from facedyn.flow.registration import STABLE_POINTS, apply, fit_similarity, residual_head_motion
from facedyn.videos.config import FlowConfig, SelectionConfig
from facedyn.videos.selection import SelectionError, choose_frames

RNG = np.random.default_rng(0)
FACE = RNG.uniform(100, 300, (478, 2))  # a face's 478 points, pixels
MOVERS = np.setdiff1d(np.arange(0, 478, 5), STABLE_POINTS)  # an expression moves these (a tenth of the face)
FRAMES, APEX = 40, 25


def _track(amplitudes: np.ndarray, head_motion: bool = False, blink_at: int | None = None) -> np.ndarray:
    """(T, 478, 2): MOVERS shifted up by amplitude x 12 px, optionally a head that sways, a blink at rest."""
    track = np.repeat(FACE[None], len(amplitudes), axis=0)
    track[:, MOVERS, 1] -= 12.0 * amplitudes[:, None]
    if blink_at is not None:
        track[blink_at, MOVERS[::3], 1] += 4.0
    track += RNG.normal(0.0, 0.2, track.shape)  # landmark jitter
    if head_motion:
        for t in range(len(track)):
            angle, centre = np.radians(3.0 * np.sin(t / 5)), FACE.mean(axis=0)
            rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
            track[t] = (track[t] - centre) @ rotation.T * (1 + 0.02 * np.sin(t / 3)) + centre + [4 * np.sin(t / 4), 0]
    return track


def _amplitudes() -> np.ndarray:
    t = np.arange(FRAMES)
    return np.clip(1.0 - np.abs(t - APEX) / 12.0, 0.0, 1.0)  # rest until 13, apex at 25


@pytest.mark.parametrize("head_motion", [False, True])
def test_apex_and_frames_around_it(head_motion):
    track = _track(_amplitudes(), head_motion)
    selection = choose_frames(track, np.ones(FRAMES, bool), SelectionConfig())
    assert selection.apex == APEX
    assert len(selection.frames) == 3 and APEX in selection.frames
    assert all(_amplitudes()[t] >= 0.75 for t in selection.frames)  # near the apex (0.8 of its movement, jitter)
    assert selection.baseline <= 13


def test_most_neutral_baseline_skips_a_blink_at_rest():
    track = _track(_amplitudes(), blink_at=0)
    valid = np.ones(FRAMES, bool)
    assert choose_frames(track, valid, SelectionConfig()).baseline not in (0, *range(13, FRAMES))
    assert choose_frames(track, valid, SelectionConfig(baseline="first")).baseline == 0
    assert choose_frames(track, valid, SelectionConfig(baseline="5")).baseline == 5


def test_frames_without_one_face_are_never_chosen():
    track = _track(_amplitudes())
    valid = np.ones(FRAMES, bool)
    valid[[0, APEX]] = False
    selection = choose_frames(track, valid, SelectionConfig(baseline="first"))
    assert selection.baseline == 1 and selection.apex in (APEX - 1, APEX + 1)
    assert not set(selection.frames) & {0, APEX}
    with pytest.raises(SelectionError, match="baseline frame 0 does not show exactly one face"):
        choose_frames(track, valid, SelectionConfig(baseline="0"))
    with pytest.raises(SelectionError, match="past the clip's end"):
        choose_frames(track, valid, SelectionConfig(baseline="40"))
    with pytest.raises(SelectionError, match="no frame shows exactly one face"):
        choose_frames(track, np.zeros(FRAMES, bool), SelectionConfig())


def test_similarity_fit_recovers_a_known_transform():
    angle, scale, shift = np.radians(7.0), 1.08, np.array([5.0, -3.0])
    matrix = np.array([[scale * np.cos(angle), -scale * np.sin(angle), shift[0]],
                       [scale * np.sin(angle), scale * np.cos(angle), shift[1]]])
    assert np.allclose(fit_similarity(FACE, apply(matrix, FACE)), matrix, atol=1e-9)


def test_residual_head_motion_is_found_despite_a_moving_region():
    size = FlowConfig().crop_size
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    pixels = np.stack([xs, ys], axis=-1)
    angle = np.radians(1.0)
    head = np.array([[np.cos(angle), -np.sin(angle), 1.5], [np.sin(angle), np.cos(angle), -0.5]])
    flow = (apply(head, pixels) - pixels).astype(np.float32)
    expression = (np.hypot(xs - 70, ys - 160) < 35)  # a mouth corner moving 5 px up: a fifth of the face
    flow[expression, 1] -= 5.0
    face = np.array([[20, 20], [200, 20], [200, 210], [20, 210]], float)
    residual = residual_head_motion(flow, face)
    assert np.abs(residual - (apply(head, pixels) - pixels)).max() < 1e-3
