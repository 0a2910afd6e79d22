"""CV+ intervals (facedyn.inference.conformal): the order statistics against a direct reading of the
definition, and coverage by construction: calibration and test residuals drawn alike cover at the nominal
level over repeated random splits, and drawn unlike (calibration residuals too small) they do not."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facedyn.inference.conformal import centred, check_level, cv_plus, order_statistics, whole_grades

LEVELS = (0.8, 0.9)
REPEATS = 400  # random splits per level: the mean coverage's standard error is ~0.5 points
TOLERANCE = 0.02


def _direct(member_predictions, residual_member, residuals, level):
    """The CV+ ends read off the definition, one test point at a time (Barber et al. 2021, eq. 9)."""
    n = len(residuals)
    alpha = 1 - level
    low_rank, high_rank = math.floor(alpha * (n + 1) + 1e-9), math.ceil((1 - alpha) * (n + 1) - 1e-9)
    low, high = [], []
    for g in range(member_predictions.shape[1]):
        lower = sorted(member_predictions[residual_member[i], g] - residuals[i] for i in range(n))
        upper = sorted(member_predictions[residual_member[i], g] + residuals[i] for i in range(n))
        low.append(lower[low_rank - 1] if low_rank >= 1 else -np.inf)
        high.append(upper[high_rank - 1] if high_rank <= n else np.inf)
    return np.array(low), np.array(high)


@pytest.mark.parametrize("n", [3, 9, 19, 50])
def test_the_ends_are_the_order_statistics_of_the_definition(n):
    rng = np.random.default_rng(n)
    members = rng.normal(2.5, 1, (3, 7))
    member_of = rng.integers(0, 3, n)
    residuals = np.abs(rng.normal(0, 0.7, n))
    for level in (0.5, *LEVELS, 0.95):
        got = cv_plus(members, member_of, residuals, level)
        expected = _direct(members, member_of, residuals, level)
        np.testing.assert_allclose(got[0], expected[0])
        np.testing.assert_allclose(got[1], expected[1])


def test_too_few_residuals_for_the_level_leave_an_end_unbounded():
    assert order_statistics(9, 0.9) == (1, 9)  # 0.9 · 10 is 9.000000000000002 in floating point
    assert order_statistics(8, 0.9) == (0, 9)
    low, high = cv_plus(np.zeros((2, 4)), np.array([0, 1] * 4), np.ones(8), 0.9)
    assert np.isneginf(low).all() and np.isposinf(high).all()


@pytest.mark.parametrize("level", [0.0, 1.0, -0.1, 1.5])
def test_levels_outside_zero_one_are_refused(level):
    with pytest.raises(ValueError, match=f"interval={level}: the interval level must lie strictly between 0 and 1"):
        check_level(level)


def test_centred_is_the_residuals_order_statistic_about_the_prediction():
    low, high = centred(np.array([1.0, 2.5]), np.array([0.3, 0.1, 0.5, 0.2]), 0.6)  # ⌈0.6 · 5⌉ = 3rd smallest
    np.testing.assert_allclose(low, [0.7, 2.2])
    np.testing.assert_allclose(high, [1.3, 2.8])
    assert np.isposinf(centred(np.zeros(1), np.ones(8), 0.9)[1]).all()


def test_whole_grades_are_those_inside_the_interval():
    first, last = whole_grades(np.array([1.6, 2.0, 2.2, 0.0]), np.array([3.4, 2.0, 2.8, 5.0]))
    assert first.tolist() == [2, 2, 3, 0] and last.tolist() == [3, 2, 2, 5]  # [2.2, 2.8] holds none


def _coverage(level: float, calibration_scale: float, rng: np.random.Generator, method: str = "cv_plus"
              ) -> tuple[float, float]:
    """Mean coverage and width over REPEATS tiny cross-validations: 60 videos in 3 folds (each fold's model
    off by its own bias), 40 test videos; calibration residuals scaled by `calibration_scale` (1: exchangeable).
    method: cv_plus, or centred on the fold models' mean."""
    folds, n, m = 3, 60, 40
    covered, widths = [], []
    for _ in range(REPEATS):
        truth = lambda x: 2.5 + 1.5 * np.sin(x)  # noqa: E731
        bias = rng.normal(0, 0.1, folds)
        x_cal, x_test = rng.uniform(0, 6, n), rng.uniform(0, 6, m)
        fold_of = rng.permutation(np.arange(n) % folds)
        y_cal = truth(x_cal) + rng.normal(0, 0.5, n)
        y_test = truth(x_test) + rng.normal(0, 0.5, m)
        oof = truth(x_cal) + bias[fold_of]  # each calibration video predicted by the fold model that did not see it
        residuals = calibration_scale * np.abs(y_cal - oof)
        members = truth(x_test)[None, :] + bias[:, None]  # (K, m) each fold model's prediction of the test videos
        low, high = cv_plus(members, fold_of, residuals, level) if method == "cv_plus" else \
            centred(members.mean(axis=0), residuals, level)
        covered.append(np.mean((low <= y_test) & (y_test <= high)))
        widths.append(np.mean(high - low))
    return float(np.mean(covered)), float(np.mean(widths))


@pytest.mark.parametrize("method", ["cv_plus", "centred"])
@pytest.mark.parametrize("level", LEVELS)
def test_exchangeable_residuals_cover_at_the_nominal_level(level, method):
    coverage, width = _coverage(level, 1.0, np.random.default_rng(int(level * 100)), method)
    assert coverage >= level - TOLERANCE
    assert coverage <= level + 0.05, "intervals wider than the level asks: not informative"
    assert np.isfinite(width)


@pytest.mark.parametrize("method", ["cv_plus", "centred"])
@pytest.mark.parametrize("level", LEVELS)
def test_residuals_smaller_than_the_test_errors_undercover(level, method):
    """The check above can fail: calibrated on residuals 60 % of the real ones, the intervals miss."""
    coverage, _ = _coverage(level, 0.6, np.random.default_rng(int(level * 100)), method)
    assert coverage < level - TOLERANCE
