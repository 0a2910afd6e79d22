"""Writers of small real datasets in the clinic's layout (real JPEGs, .npy and .json files) for the data tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np
import pytest

from facedyn.data.config import DataConfig
from facedyn.data.layout import BASELINE_LANDMARKS_FILE, EXPRESSION_LANDMARKS_FILE, FLOW_FILE, LABELS_FILE

EXPRESSIONS = ("smile", "eye_close", "brow_raise")


def write_sample(
    root: Path,
    expression: str,
    video: str,
    frame: str,
    rng: np.random.Generator,
    labels: Optional[dict[str, Any]] = None,
    image_size: int = 112,
) -> Path:
    """One sample folder with a smooth colour image, two landmark sets in a 640x480 frame and labels."""
    folder = root / expression / f"{video}_{frame}"
    folder.mkdir(parents=True, exist_ok=True)
    image = cv2.GaussianBlur(rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8), (7, 7), 2)
    assert cv2.imwrite(str(folder / FLOW_FILE), image)
    baseline = rng.uniform([200, 120], [440, 400], size=(146, 2))
    np.save(folder / BASELINE_LANDMARKS_FILE, baseline)
    np.save(folder / EXPRESSION_LANDMARKS_FILE, baseline + rng.normal(0, 2, size=(146, 2)))
    if labels is None:
        labels = {"dynamics": int(rng.integers(0, 6)), "synkinesis": int(rng.integers(0, 4))}
    (folder / LABELS_FILE).write_text(json.dumps(labels))
    return folder


def write_dataset(
    root: Path, videos: int = 10, frames: int = 2, expressions: tuple[str, ...] = EXPRESSIONS, seed: int = 0
) -> list[Path]:
    rng = np.random.default_rng(seed)
    return [
        write_sample(root, expression, f"patient{v:02d}", f"{f:04d}", rng)
        for expression in expressions
        for v in range(videos)
        for f in range(frames)
    ]


def folder_config(root: Path, cache_dir: Path, **overrides: Any) -> DataConfig:
    cfg = DataConfig(kind="folder", root=str(root), cache_dir=str(cache_dir))
    for key, value in overrides.items():
        target = cfg
        *parents, leaf = key.split(".")
        for parent in parents:
            target = getattr(target, parent)
        setattr(target, leaf, value)
    return cfg


@pytest.fixture
def dataset_root(tmp_path: Path) -> Path:
    """10 videos x 3 expressions x 2 frames = 60 good samples."""
    root = tmp_path / "dataset"
    write_dataset(root)
    return root


@pytest.fixture(scope="session")
def tiny_synthetic_config(tmp_path_factory: pytest.TempPathFactory, landmarker_task: Path) -> DataConfig:
    """The synthetic generator's smallest useful dataset (8 asymmetric faces), in a temporary folder.

    The generator builds its faces from the canonical mesh in MediaPipe's bundle (landmarker_task).
    """
    from facedyn.data.synthetic import SyntheticConfig

    folder = tmp_path_factory.mktemp("synthetic")
    cfg = DataConfig(kind="synthetic", cache_dir=str(folder / "cache"), val_fraction=0.25)
    cfg.synthetic = SyntheticConfig(videos=4, frames_per_video=1, expressions=["eye_close", "smile"], root=str(folder / "dataset"))
    return cfg
