"""Train/validation split by video id: every frame and expression of one recording lands on one side.

A video id names one patient recording across expression folders, so splitting by sample would leak the
patient's face into validation. The videos are shuffled with a seed (sorted first, so the split does not
depend on the order files were listed) and either cut at val_fraction or dealt into n folds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from facedyn.data.errors import DataError


@dataclass(frozen=True)
class Split:
    train_indices: np.ndarray  # rows of Samples, ascending
    val_indices: np.ndarray
    train_videos: list[str]
    val_videos: list[str]

    def as_dict(self, **settings: Any) -> dict[str, Any]:
        return {
            **settings,
            "train_samples": int(len(self.train_indices)),
            "val_samples": int(len(self.val_indices)),
            "train_videos": self.train_videos,
            "val_videos": self.val_videos,
        }


def _shuffled_videos(videos: np.ndarray, seed: int) -> np.ndarray:
    unique = np.unique(videos)  # sorted
    return unique[np.random.default_rng(seed).permutation(len(unique))]


def _split_by(videos: np.ndarray, val_videos: np.ndarray) -> Split:
    is_val = np.isin(videos, val_videos)
    return Split(
        train_indices=np.flatnonzero(~is_val),
        val_indices=np.flatnonzero(is_val),
        train_videos=sorted(map(str, np.unique(videos[~is_val]))),
        val_videos=sorted(map(str, np.unique(videos[is_val]))),
    )


def holdout_split(videos: np.ndarray, val_fraction: float, seed: int) -> Split:
    """About val_fraction of the videos (at least one, never all) go to validation."""
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"data.val_fraction={val_fraction} must lie between 0 and 1")
    order = _shuffled_videos(videos, seed)
    if len(order) < 2:
        raise DataError(f"the dataset holds {len(order)} video(s); a split by video needs at least 2")
    n_val = min(max(1, round(len(order) * val_fraction)), len(order) - 1)
    return _split_by(videos, order[:n_val])


def kfold_split(videos: np.ndarray, folds: int, fold: int, seed: int) -> Split:
    """Fold `fold` of `folds` near-equal groups of videos is the validation side."""
    if folds < 2:
        raise DataError(f"data.folds={folds}: cross-validation needs at least 2 folds (0 turns it off)")
    if not 0 <= fold < folds:
        raise DataError(f"data.fold={fold} must lie in 0..{folds - 1} for data.folds={folds}")
    order = _shuffled_videos(videos, seed)
    if len(order) < folds:
        raise DataError(f"data.folds={folds} is more than the {len(order)} videos in the dataset")
    return _split_by(videos, np.array_split(order, folds)[fold])


def split_by_video(videos: np.ndarray, val_fraction: float, seed: int, folds: int, fold: int) -> Split:
    if folds:
        return kfold_split(videos, folds, fold, seed)
    return holdout_split(videos, val_fraction, seed)
