"""The synthetic faces read as real ones to MediaPipe's own blendshape model.

For a few dozen subjects (shape, pose, framing and landmark jitter as generated), the peak frame of
eye_close raises eyeBlinkLeft/Right and that of smile raises mouthSmileLeft/Right by at least 0.3 over
the clip's baseline frame, and a paralysed side raises its own score less than the healthy side does.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from facedyn.data.synthetic import SyntheticConfig
from facedyn.data.synthetic.generator import ClipLabels, clip_samples, sample_subject
from facedyn.data.synthetic.mesh import canonical_mesh
from facedyn.landmarks import BLENDSHAPE_NAMES

torch = pytest.importorskip("torch")

SUBJECTS = 24
CHECKS = {"eye_close": "eyeBlink", "smile": "mouthSmile"}
PARALYSED = ClipLabels(2, 0, "left"), ClipLabels(2, 0, "right")  # alternating between subjects


@pytest.fixture(scope="module")
def rises(landmarker_task) -> dict[tuple[str, bool], np.ndarray]:
    """(expression, paralysed?) -> (subjects, 2): the peak frame's rise of the expression's Left and
    Right score over the baseline frame, for healthy subjects and for ones with dynamics grade 2."""
    from facedyn.blendshapes import load

    model = load().eval()
    mesh = canonical_mesh()
    cfg = SyntheticConfig(frames_per_video=1, peak_fraction_range=[1.0, 1.0])
    out = {}
    for expression, score in CHECKS.items():
        columns = [BLENDSHAPE_NAMES.index(score + side) for side in ("Left", "Right")]
        for paralysed in (False, True):
            baseline, peak = [], []
            for index in range(SUBJECTS):
                subject, rng = sample_subject(mesh, cfg, 500 + index)
                labels = PARALYSED[index % 2] if paralysed else ClipLabels(5, 0, "none")
                subject = dataclasses.replace(subject, labels={expression: labels})
                sample = next(clip_samples(mesh, cfg, subject, expression, rng))
                baseline.append(sample.baseline_landmarks)
                peak.append(sample.expression_landmarks)
            with torch.no_grad():
                rise = model(torch.from_numpy(np.stack(peak))) - model(torch.from_numpy(np.stack(baseline)))
            out[expression, paralysed] = rise.numpy()[:, columns]
    return out


@pytest.mark.real_model
@pytest.mark.parametrize("expression", CHECKS)
def test_full_movement_raises_the_matching_blendshapes(rises, expression):
    rise = rises[expression, False]
    assert rise.min() >= 0.3, rise.min(axis=0)


@pytest.mark.real_model
@pytest.mark.parametrize("expression", CHECKS)
def test_paralysed_side_rises_less(rises, expression):
    rise = rises[expression, True]
    left_paralysed = np.arange(SUBJECTS) % 2 == 0
    paralysed = np.where(left_paralysed, rise[:, 0], rise[:, 1])
    healthy = np.where(left_paralysed, rise[:, 1], rise[:, 0])
    assert np.all(paralysed < healthy - 0.1), (paralysed, healthy)
    assert healthy.min() >= 0.3
