"""Agreement statistics against published reference values."""

from __future__ import annotations

import numpy as np
import pytest

from facedyn import metrics
from facedyn.metrics import bland_altman, icc_2_1, icc_2_1_ci, score_metrics

# Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges.
SHROUT_FLEISS = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]])


def test_icc_2_1_and_its_interval_match_shrout_fleiss_and_psych():
    # Published: ICC(2,1) = .29 (Shrout & Fleiss); R psych::ICC on the same data: 95 % CI 0.019 .. 0.76.
    icc, low, high = icc_2_1_ci(SHROUT_FLEISS)
    assert icc == pytest.approx(0.290, abs=5e-4)
    assert low == pytest.approx(0.019, abs=5e-4)
    assert high == pytest.approx(0.76, abs=5e-3)
    assert icc_2_1(SHROUT_FLEISS) == icc


def test_interval_narrows_with_more_subjects_and_covers_the_estimate():
    rng = np.random.default_rng(0)
    widths = []
    for n in (10, 100, 1000):
        truth = rng.normal(0, 1, n)
        ratings = np.stack([truth + rng.normal(0, 0.5, n), truth + 0.2 + rng.normal(0, 0.5, n)], axis=1)
        icc, low, high = icc_2_1_ci(ratings)
        assert low < icc < high
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]


def test_degenerate_ratings_give_nan_not_a_number_that_looks_real():
    assert all(np.isnan(icc_2_1_ci(np.ones((5, 2)))))
    assert all(np.isnan(icc_2_1_ci(np.array([[1.0, 2.0]]))))


def test_video_metrics_carry_the_interval_and_bland_altman_limits():
    true = np.array([[1, 0], [2, 1], [3, 2], [4, 3], [5, 3], [3, 1]])
    pred = true + np.array([[0.4, -0.2], [-0.3, 0.1], [0.2, 0.3], [0.5, -0.4], [-0.6, 0.2], [0.1, 0.0]])
    metrics = score_metrics(pred, true, np.ones_like(true, bool), with_icc=True)
    for score in ("dynamics", "synkinesis"):
        assert metrics[f"icc_low_{score}"] < metrics[f"icc_{score}"] < metrics[f"icc_high_{score}"]
    limits = bland_altman(pred[:, 0], true[:, 0])
    differences = pred[:, 0] - true[:, 0]
    assert limits["bias"] == pytest.approx(0.05)
    assert (limits["loa_high"] - limits["loa_low"]) == pytest.approx(2 * 1.96 * np.std(differences, ddof=1))


def test_quadratic_weighted_kappa_and_confusion_by_hand() -> None:
    # Worked by hand: observed disagreement 2 (two cells one grade apart), chance-expected 8, so 1 - 2/8.
    true, pred = np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 1, 2, 2, 2])
    assert metrics._kappa(true, pred, "synkinesis") == pytest.approx(0.75)
    assert metrics.confusion(true, pred, "synkinesis").tolist() == [[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 2, 0],
                                                                     [0, 0, 0, 0]]
    assert metrics._kappa(true, true, "synkinesis") == pytest.approx(1.0)
    assert metrics._kappa(np.array([0, 3]), np.array([3, 0]), "synkinesis") == pytest.approx(-1.0)
    assert np.isnan(metrics._kappa(np.array([2, 2, 2]), np.array([2, 2, 2]), "dynamics"))  # one grade: undefined
