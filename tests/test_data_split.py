"""Splits by video: no recording on both sides, for the hold-out split and for every cross-validation fold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facedyn.data import DataError, load_training_data
from facedyn.data.split import holdout_split, kfold_split
from tests.test_data_fixtures import folder_config, write_dataset


@pytest.fixture(scope="module")
def many_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """23 videos (an awkward number for 5 folds) x 2 expressions x 2 frames."""
    root = tmp_path_factory.mktemp("split") / "dataset"
    write_dataset(root, videos=23, frames=2, expressions=("smile", "snarl"))
    return root


def _assert_disjoint_and_complete(videos: np.ndarray, train: np.ndarray, val: np.ndarray) -> None:
    assert not set(videos[train]) & set(videos[val])
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(len(videos)))


def test_holdout_split_keeps_each_video_on_one_side(many_videos: Path, tmp_path: Path) -> None:
    data = load_training_data(folder_config(many_videos, tmp_path / "cache"), tmp_path / "run")
    videos = data.samples.video
    _assert_disjoint_and_complete(videos, data.train_indices, data.val_indices)
    assert len(set(videos[data.val_indices])) == round(23 * 0.2)
    # Every frame and expression of a validation video is in validation.
    for video in set(videos[data.val_indices]):
        assert set(np.flatnonzero(videos == video)) <= set(data.val_indices)

    written = json.loads((tmp_path / "run" / "split.json").read_text())
    assert written["val_videos"] == sorted(set(videos[data.val_indices]))
    assert written["train_videos"] == sorted(set(videos[data.train_indices]))
    assert (written["train_samples"], written["val_samples"]) == (len(data.train_indices), len(data.val_indices))


def test_split_is_deterministic_for_a_seed_and_changes_with_it(many_videos: Path, tmp_path: Path) -> None:
    first = load_training_data(folder_config(many_videos, tmp_path / "cache"), None)
    again = load_training_data(folder_config(many_videos, tmp_path / "cache"), None)
    other = load_training_data(folder_config(many_videos, tmp_path / "cache", split_seed=1), None)
    np.testing.assert_array_equal(first.val_indices, again.val_indices)
    assert set(first.samples.video[first.val_indices]) != set(other.samples.video[other.val_indices])


def test_split_does_not_depend_on_sample_order() -> None:
    videos = np.array([f"v{i % 17}" for i in range(170)])
    shuffled = videos[np.random.default_rng(5).permutation(len(videos))]
    assert holdout_split(videos, 0.2, seed=3).val_videos == holdout_split(shuffled, 0.2, seed=3).val_videos


def test_every_fold_keeps_videos_apart_and_folds_cover_each_video_once(many_videos: Path, tmp_path: Path) -> None:
    val_videos: list[str] = []
    for fold in range(5):
        data = load_training_data(folder_config(many_videos, tmp_path / "cache", folds=5, fold=fold), tmp_path / f"fold{fold}")
        _assert_disjoint_and_complete(data.samples.video, data.train_indices, data.val_indices)
        fold_videos = sorted(set(data.samples.video[data.val_indices]))
        assert len(fold_videos) in (4, 5)  # 23 videos in 5 near-equal folds
        assert json.loads((tmp_path / f"fold{fold}" / "split.json").read_text())["val_videos"] == fold_videos
        val_videos += fold_videos
    assert sorted(val_videos) == sorted(set(data.samples.video))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"folds": 1}, "at least 2 folds"),
        ({"folds": 5, "fold": 5}, r"data.fold=5 must lie in 0..4"),
        ({"folds": 30}, "more than the 23 videos"),
        ({"val_fraction": 1.0}, "between 0 and 1"),
    ],
)
def test_impossible_split_settings_are_one_line_errors(kwargs: dict, message: str) -> None:
    videos = np.array([f"v{i}" for i in range(23)])
    with pytest.raises(DataError, match=message):
        if kwargs.get("folds"):
            kfold_split(videos, kwargs["folds"], kwargs.get("fold", 0), seed=0)
        else:
            holdout_split(videos, kwargs["val_fraction"], seed=0)


def test_a_single_video_cannot_be_split() -> None:
    with pytest.raises(DataError, match="needs at least 2"):
        holdout_split(np.array(["v1", "v1", "v1"]), 0.2, seed=0)
