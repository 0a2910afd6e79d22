"""Conformal prediction intervals from a cross-validation's out-of-fold residuals: CV+ (Barber et al. 2021),
and the same residuals centred on the ensemble's grade.

Calibration point i (a video and expression of fold k(i)'s validation side) has the out-of-fold residual
R_i = |y_i − μ_k(i)(x_i)|, where μ_k is fold k's model, which never saw x_i. For a new x the interval at
level 1 − α is

  [ ⌊α(n+1)⌋-th smallest of μ_k(i)(x) − R_i ,  ⌈(1−α)(n+1)⌉-th smallest of μ_k(i)(x) + R_i ]

over the n calibration points: each residual is set around the prediction of the model that did not see
it. Coverage is at least 1 − 2α in the worst case and close to 1 − α in practice (Barber et al.); the
evaluation on data no model saw (facedyn.crossval.evaluate) measures it. With too few residuals for the
level an end is unbounded (then clipped to the grade range).

`centred` sets the ⌈(1−α)(n+1)⌉-th smallest residual on both sides of the ensemble's own prediction (the
mean of the fold models): split conformal with the out-of-fold residuals as the calibration set. The
residuals are those of single fold models, the test error that of their mean, which is usually smaller:
no finite-sample guarantee, conservative in practice, narrower than CV+ when the fold models disagree, and
symmetric about the grade shown.

Written here rather than taken from MAPIE or crepes: MAPIE's CrossConformalRegressor trains its own
scikit-learn estimators on its own folds (only its split method takes fitted models), and crepes'
ConformalRegressor calibrates one point prediction per object (split conformal); neither takes k models
trained elsewhere with their own out-of-fold residuals, which is what CV+ needs. crepes would fit
`centred`, but it imports pandas and scipy.stats for one order statistic.
"""

from __future__ import annotations

import math

import numpy as np

EPSILON = 1e-9  # (n+1)·level products such as 0.9·10 = 9.000000000000002 must not round up


def check_level(level: float) -> float:
    """A level strictly between 0 and 1; ValueError naming it otherwise."""
    if not isinstance(level, (int, float)) or not 0 < float(level) < 1:
        raise ValueError(f"interval={level}: the interval level must lie strictly between 0 and 1 (e.g. 0.9)")
    return float(level)


def order_statistics(n: int, level: float) -> tuple[int, int]:
    """(lower, upper) 1-based ranks among n values: ⌊α(n+1)⌋ and ⌈(1−α)(n+1)⌉; 0 or n+1: unbounded."""
    alpha = 1.0 - check_level(level)
    return math.floor(alpha * (n + 1) + EPSILON), math.ceil((1.0 - alpha) * (n + 1) - EPSILON)


def cv_plus(member_predictions: np.ndarray, residual_member: np.ndarray, residuals: np.ndarray,
            level: float) -> tuple[np.ndarray, np.ndarray]:
    """CV+ interval ends for G test points.

    member_predictions: (K, G) each fold model's prediction of each test point; residual_member: (n,) the
    index (into K) of the model that predicted calibration point i out of fold; residuals: (n,) |R_i|.
    Returns (low, high), each (G,); ±inf where the calibration set is too small for the level.
    """
    member_predictions = np.asarray(member_predictions, dtype=np.float64)
    residuals = np.asarray(residuals, dtype=np.float64)
    groups = member_predictions.shape[1]
    n = len(residuals)
    lower_rank, upper_rank = order_statistics(n, level)
    low = np.full(groups, -np.inf)
    high = np.full(groups, np.inf)
    if n == 0:
        return low, high
    centres = member_predictions[np.asarray(residual_member, dtype=int)]  # (n, G)
    if lower_rank >= 1:
        low = np.partition(centres - residuals[:, None], lower_rank - 1, axis=0)[lower_rank - 1]
    if upper_rank <= n:
        high = np.partition(centres + residuals[:, None], upper_rank - 1, axis=0)[upper_rank - 1]
    return low, high


def centred(prediction: np.ndarray, residuals: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """prediction ± the ⌈level·(n+1)⌉-th smallest of n residuals (±inf where n is too small), each (G,)."""
    prediction = np.asarray(prediction, dtype=np.float64)
    residuals = np.sort(np.asarray(residuals, dtype=np.float64))
    rank = order_statistics(len(residuals), level)[1]
    radius = residuals[rank - 1] if rank <= len(residuals) else np.inf
    return prediction - radius, prediction + radius


METHODS = {"cv_plus": "CV+", "centred": "centred"}  # interval_method= values and their names in tables


def whole_grades(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first, last) whole grade inside each interval [low, high]; first > last where it holds none. For
    integer true grades the set covers exactly when the interval does."""
    return np.ceil(np.asarray(low) - EPSILON).astype(int), np.floor(np.asarray(high) + EPSILON).astype(int)
