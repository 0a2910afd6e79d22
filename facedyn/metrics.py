"""Clinical metrics in the scores' own units, per frame and per video (frames averaged per video and expression)."""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

SCORES: tuple[str, ...] = ("dynamics", "synkinesis")
MAX_GRADE: dict[str, int] = {"dynamics": 5, "synkinesis": 3}
SCALE = np.array([MAX_GRADE[s] for s in SCORES], dtype=np.float64)
# The final metrics tables show (compare's columns, the sweep's summary): loss, then MAE, accuracy, QWK per score.
HEADLINE_METRICS: tuple[str, ...] = ("val_loss", *(f"val_{k}_{s}" for k in ("mae", "acc", "qwk") for s in SCORES))


def to_grades(normalised: np.ndarray) -> np.ndarray:
    """Model outputs (scores / max grade) → unrounded grades."""
    return np.asarray(normalised, dtype=np.float64) * SCALE


def rounded(pred: np.ndarray, score: str) -> np.ndarray:
    return np.clip(np.rint(pred), 0, MAX_GRADE[score]).astype(int)


def icc_2_1(ratings: np.ndarray) -> float:
    """ICC(2,1), Shrout & Fleiss: two-way random effects, absolute agreement, single rater.

    ratings: (n subjects, k raters). NaN when fewer than two subjects or no variance at all.
    """
    return icc_2_1_ci(ratings)[0]


def icc_2_1_ci(ratings: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """ICC(2,1) and its confidence interval: McGraw & Wong (1996) case 2A, the F-based interval
    (Satterthwaite's degrees of freedom) that R's psych::ICC and pingouin report. NaNs where undefined."""
    ratings = np.asarray(ratings, dtype=np.float64)
    n, k = ratings.shape
    nan = float("nan")
    if n < 2:
        return nan, nan, nan
    grand = ratings.mean()
    ss_rows = k * ((ratings.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((ratings.mean(axis=0) - grand) ** 2).sum()
    ss_error = ((ratings - grand) ** 2).sum() - ss_rows - ss_cols
    msr, msc = ss_rows / (n - 1), ss_cols / (k - 1)
    mse = ss_error / ((n - 1) * (k - 1))
    denominator = msr + (k - 1) * mse + k * (msc - mse) / n
    if denominator <= 0:
        return nan, nan, nan
    icc = float((msr - mse) / denominator)
    if icc >= 1 or mse <= 0:  # perfect agreement: no spread to build an interval from
        return icc, nan, nan
    a = k * icc / (n * (1 - icc))
    b = 1 + k * icc * (n - 1) / (n * (1 - icc))
    dof = (a * msc + b * mse) ** 2 / ((a * msc) ** 2 / (k - 1) + (b * mse) ** 2 / ((n - 1) * (k - 1)))
    tail = 1 - (1 - confidence) / 2
    from scipy.stats import f as f_distribution  # here: importing scipy.stats costs every process 1.4 s

    f_upper = f_distribution.ppf(tail, n - 1, dof)
    f_lower = f_distribution.ppf(tail, dof, n - 1)
    low = n * (msr - f_upper * mse) / (f_upper * (k * msc + (k * n - k - n) * mse) + n * msr)
    high = n * (f_lower * msr - mse) / (k * msc + (k * n - k - n) * mse + n * f_lower * msr)
    return icc, float(low), float(high)


def bland_altman(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Mean difference (predicted − true) and the 95 % limits of agreement, bias ± 1.96 SD."""
    difference = np.asarray(pred, float) - np.asarray(true, float)
    bias = float(difference.mean())
    sd = float(difference.std(ddof=1)) if len(difference) > 1 else float("nan")
    return {"bias": bias, "loa_low": bias - 1.96 * sd, "loa_high": bias + 1.96 * sd}


def confusion(true: np.ndarray, pred: np.ndarray, score: str) -> np.ndarray:
    """Counts of (true grade, predicted grade) over the score's grades 0..max: rows true, columns predicted."""
    grades = MAX_GRADE[score] + 1
    return np.bincount(np.asarray(true, int) * grades + np.asarray(pred, int), minlength=grades * grades
                       ).reshape(grades, grades)


def _kappa(true: np.ndarray, pred: np.ndarray, score: str) -> float:
    """Cohen's kappa with quadratic weights (as sklearn's cohen_kappa_score, without its 1.5 s import)."""
    observed = confusion(true, pred, score).astype(float)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    grades = np.arange(len(observed))
    weights = (grades[:, None] - grades[None, :]) ** 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # one grade only: kappa undefined → nan
        return float(1 - np.sum(weights * observed) / np.sum(weights * expected))


def score_metrics(pred: np.ndarray, true: np.ndarray, valid: np.ndarray, with_icc: bool = False) -> dict:
    """Metrics of (N, 2) unrounded predicted grades against (N, 2) true grades where `valid`.

    Per score: mse, mae, acc (rounded and clipped), within1, qwk, per-grade accuracy, confusion matrix
    (rows: true grade, columns: predicted); acc_both where both scores are valid; with_icc: ICC(2,1) and
    its 95 % interval (icc, icc_low, icc_high).
    """
    pred, true, valid = np.asarray(pred, float), np.asarray(true), np.asarray(valid, bool)
    out: dict = {}
    for column, score in enumerate(SCORES):
        mask = valid[:, column]
        p, t = pred[mask, column], true[mask, column].astype(int)
        if not mask.any():
            continue
        r = rounded(p, score)
        out[f"mse_{score}"] = float(np.mean((p - t) ** 2))
        out[f"mae_{score}"] = float(np.mean(np.abs(p - t)))
        out[f"acc_{score}"] = float(np.mean(r == t))
        out[f"within1_{score}"] = float(np.mean(np.abs(r - t) <= 1))
        out[f"qwk_{score}"] = _kappa(t, r, score)
        out[f"per_grade_acc_{score}"] = {
            str(g): float(np.mean(r[t == g] == g)) for g in range(MAX_GRADE[score] + 1) if (t == g).any()
        }
        out[f"confusion_{score}"] = confusion(t, r, score).tolist()
        if with_icc:
            icc, low, high = icc_2_1_ci(np.stack([t, p], axis=1))
            out[f"icc_{score}"], out[f"icc_low_{score}"], out[f"icc_high_{score}"] = icc, low, high
    both = valid.all(axis=1)
    if both.any():
        correct = [rounded(pred[both, c], s) == true[both, c] for c, s in enumerate(SCORES)]
        out["acc_both"] = float(np.mean(correct[0] & correct[1]))
    return out


def video_groups(videos: Sequence[str], expressions: Sequence[str]) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Group id per frame and the (video, expression) of each group, in first-seen order."""
    keys: dict[tuple[str, str], int] = {}
    ids = np.array([keys.setdefault((v, e), len(keys)) for v, e in zip(videos, expressions)])
    return ids, list(keys)


def aggregate_by_video(pred: np.ndarray, true: np.ndarray, valid: np.ndarray, group_ids: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames averaged per group (labels are per video and expression, so the first frame's stand)."""
    groups = int(group_ids.max()) + 1
    counts = np.bincount(group_ids, minlength=groups).astype(float)
    mean_pred = np.stack([np.bincount(group_ids, weights=pred[:, c], minlength=groups) / counts
                          for c in range(pred.shape[1])], axis=1)
    first = np.array([np.flatnonzero(group_ids == g)[0] for g in range(groups)])
    return mean_pred, true[first], valid[first]


def evaluate(pred_norm: np.ndarray, true: np.ndarray, valid: np.ndarray, videos: Sequence[str],
             expressions: Sequence[str]) -> dict:
    """Frame-level and video-level metrics (prefixes `frame_` is implicit, `video_` explicit)."""
    pred = to_grades(pred_norm)
    metrics = score_metrics(pred, true, valid)
    ids, _ = video_groups(videos, expressions)
    video_pred, video_true, video_valid = aggregate_by_video(pred, true, valid, ids)
    metrics.update({f"video_{k}": v for k, v in score_metrics(video_pred, video_true, video_valid, with_icc=True).items()})
    return metrics


def scalar_items(metrics: dict) -> dict[str, float]:
    """The single-number metrics (for history rows, tables and the summary)."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
