"""A run's training data: from data settings to ready datasets — find, check, decode (or load the cache),
report, split. (Clinic videos become such a dataset through facedyn.videos, `prepare.py`.)"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from facedyn.assets import cache_dir
from facedyn.data import cache, layout
from facedyn.data.augment import Augmenter
from facedyn.data.config import DataConfig
from facedyn.data.dataset import FaceDynDataset
from facedyn.data.errors import DataError
from facedyn.data.expressions import SUNNYBROOK_EXPRESSIONS
from facedyn.data.resident import HEAD_MOTION_ON_DEVICE, ResidentData, head_motion_augmented
from facedyn.data.reader import BadSample, ReadResult, read_samples
from facedyn.data.settings import ReaderSettings, flow_max_magnitude, landmark_frame
from facedyn.data.samples import Samples
from facedyn.data.split import Split, split_by_video
from facedyn.utils.io import atomic_write_json, atomic_write_text

BAD_SAMPLES_FILE = "bad_samples.csv"
HEAD_MOTION_FILE = "head_motion.json"
SPLIT_FILE = "split.json"
SUBJECTS_PER_WORKER = 20  # the synthetic generator starts a process per core, and per 20 subjects at most


@dataclass
class TrainingData:
    cfg: DataConfig
    root: Path
    samples: Samples
    train_indices: np.ndarray
    val_indices: np.ndarray
    bad_samples: list[BadSample]
    landmark_frame: Optional[tuple[float, float]]  # (width, height) of the landmarks' video frame, if known
    flow_max_magnitude: Optional[float]  # flow pixels at full brightness in the flow images, if known
    expressions: tuple[str, ...] = SUNNYBROOK_EXPRESSIONS  # vocabulary of the items' expression_index
    _resident: dict = field(default_factory=dict, repr=False)  # ResidentData per (device, channels_last)

    def augmenter(self) -> Augmenter:
        return Augmenter(self.cfg.augment, self.landmark_frame, self.flow_max_magnitude)

    def make_dataset(self, indices: np.ndarray, augment: bool) -> FaceDynDataset:
        """Dataset over rows `indices`; augmented (when data.augment.enabled) for training only."""
        augmenter = self.augmenter() if augment and self.cfg.augment.enabled else None
        return FaceDynDataset(self.samples, indices, augmenter, self.expressions)

    def resident(self, device: torch.device, channels_last: bool = False) -> ResidentData:
        """All samples in `device`'s memory (copied there once per run and device)."""
        key = (str(device), channels_last)
        if key not in self._resident:
            self._resident[key] = ResidentData(self.samples, self.expressions, device, self.augmenter(), channels_last)
        return self._resident[key]


def as_data_config(cfg: Any) -> DataConfig:
    """A DataConfig from a DataConfig (its values checked too), a Hydra/OmegaConf node or a dict, checked
    against the schema."""
    if OmegaConf.is_config(cfg) and OmegaConf.is_missing(cfg, "root"):  # conf/data/folder.yaml's `root: ???`
        raise DataError(layout.ROOT_NOT_SET)
    try:
        values = dataclasses.asdict(cfg) if isinstance(cfg, DataConfig) else cfg
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(DataConfig), values))
    except (OmegaConfBaseException, ValueError) as exc:  # ValueError: a schema's own checks (__post_init__)
        key = getattr(exc, "full_key", None)
        raise DataError(f"invalid data settings: {f'data.{key}: ' if key else ''}{str(exc).splitlines()[0]}") from None


def check_settings(cfg: DataConfig) -> None:
    """Values the schema's types let through but that cannot work (kinds and policies are enums there)."""
    if not 0.0 <= cfg.bad_samples.max_fraction <= 1.0:
        raise DataError(f"data.bad_samples.max_fraction={cfg.bad_samples.max_fraction} must lie in 0..1")
    if cfg.image_size < 16:
        raise DataError(f"data.image_size={cfg.image_size} is too small")
    for name in ("num_workers", "prefetch_batches"):
        value = getattr(cfg, name)
        if value is not None and value < 0:
            raise DataError(f"data.{name}={value} must not be negative")
    augment = cfg.augment
    for name in ("shift", "scale", "brightness", "noise_std", "landmark_jitter", "head_motion_deg",
                 "head_motion_shift", "head_motion_scale"):
        if getattr(augment, name) < 0:
            raise DataError(f"data.augment.{name}={getattr(augment, name)} must not be negative")
    if not 0.0 <= augment.hflip_p <= 1.0 or augment.scale >= 1.0:
        raise DataError("data.augment.hflip_p must lie in 0..1 and data.augment.scale below 1")
    if head_motion_augmented(cfg) and flow_max_magnitude(cfg) is None:
        raise DataError("data.augment.head_motion_* need data.flow.max_magnitude: the flow (pixels at image_size) "
                        "that the flow images show at full brightness")
    if head_motion_augmented(cfg) and cfg.on_device:
        raise DataError(HEAD_MOTION_ON_DEVICE)


def _dataset_root(cfg: DataConfig, log: logging.Logger) -> Path:
    if cfg.kind == "folder":
        return layout.check_root(cfg.root)
    from facedyn.data.synthetic import ensure_dataset  # imported here: only synthetic runs need the generator

    # Generated once, in a process per core (the same bytes as in one process). On 2 cores: the default 80
    # subjects 34.3 s → 18.0 s, 20 subjects 9.5 s → 5.2 s; the tests' tiny sets stay in one process.
    workers = max(1, min(os.cpu_count() or 1, cfg.synthetic.videos // SUBJECTS_PER_WORKER))
    try:
        root = Path(ensure_dataset(cfg.synthetic, workers=workers))
    except (ValueError, FileExistsError) as exc:  # a damaged or foreign folder where the dataset should be
        raise DataError(f"synthetic dataset: {exc}") from None
    log.info("data: synthetic dataset at %s", root)
    return root


def _read(cfg: DataConfig, root: Path, log: logging.Logger, require_labels: bool = True) -> ReadResult:
    folders = layout.scan(root, cfg.expressions)
    settings = ReaderSettings.from_config(cfg, require_labels)

    def decode() -> ReadResult:
        log.info("data: decoding %d sample folders under %s", len(folders), root)
        return read_samples(folders, settings)

    if not cfg.cache:
        return decode()
    cache_root = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else cache_dir() / "datasets"
    return cache.load_or_build(cache.cache_location(cache_root, root, folders, settings), decode, log)


def _bad_samples_csv(root: Path, bad: list[BadSample]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["path", "reason"])
    writer.writerows([str(root / b.path), b.reason] for b in bad)
    return out.getvalue()


def _apply_bad_sample_policy(cfg: DataConfig, root: Path, result: ReadResult, report: Optional[Path]) -> None:
    n_bad, n_total = len(result.bad), len(result.bad) + len(result.samples)
    if not n_bad:
        return
    first = f"first: {root / result.bad[0].path}: {result.bad[0].reason}"
    where = f"all listed in {report}" if report else "run with a run folder to get bad_samples.csv"
    if not len(result.samples):
        raise DataError(f"no usable samples: all {n_total} under {root} are bad; {first}; {where}")
    if cfg.bad_samples.policy == "fail":
        raise DataError(f"{n_bad} of {n_total} samples are bad (data.bad_samples.policy=fail); {first}; {where}")
    if n_bad > cfg.bad_samples.max_fraction * n_total:
        raise DataError(
            f"{n_bad} of {n_total} samples ({n_bad / n_total:.1%}) are bad, more than "
            f"data.bad_samples.max_fraction={cfg.bad_samples.max_fraction:g}; {first}; {where}"
        )


def _report_head_motion(report: dict, run_dir: Optional[Path], log: logging.Logger) -> None:
    box = report["crop_box"]
    crop = "the whole frame" if box is None else "a face box {:g} x the landmarks' box, offset ({:+g}, {:+g})".format(*box)
    log.info(
        "data: head motion compensated (%s) in %d flow images: median %.2f deg, %.2f px; flow at the stable "
        "landmarks %.2f -> %.2f px (landmark fit) -> %.2f px (median); crop %s reproduces %.0f%% of the landmarks' "
        "motion", report["model"], report["samples"], report["rotation_deg_median"], report["shift_px_median"],
        report["global_motion_before_px"], report["global_motion_landmark_fit_px"], report["global_motion_after_px"],
        crop, 100 * report["crop_fit_r2"])
    if run_dir is not None:
        atomic_write_json(Path(run_dir) / HEAD_MOTION_FILE, report)


def read_checked(cfg: Any, run_dir: Optional[Path], log: logging.Logger, require_labels: bool = True
                 ) -> tuple[DataConfig, Path, ReadResult]:
    """Read (or load from cache) and check the dataset and apply the bad-sample policy: the part training
    and prediction share. Writes bad_samples.csv into `run_dir` when given; DataError (one line) when the
    data cannot be used. require_labels=False (prediction only) accepts samples without a label file.
    """
    cfg = as_data_config(cfg)
    check_settings(cfg)
    root = _dataset_root(cfg, log)
    result = _read(cfg, root, log, require_labels)

    report = Path(run_dir) / BAD_SAMPLES_FILE if run_dir is not None else None
    if report is not None:
        atomic_write_text(report, _bad_samples_csv(root, result.bad))
    if result.head_motion is not None:
        _report_head_motion(result.head_motion, run_dir, log)
    if result.resized:
        log.warning("data: %d flow images were not %dx%d and were resized", result.resized, cfg.image_size, cfg.image_size)
    log.info(
        "data: %d usable samples, %d bad%s",
        len(result.samples),
        len(result.bad),
        f" (skipped, listed in {report})" if result.bad and report else "",
    )
    _apply_bad_sample_policy(cfg, root, result, report)
    return cfg, root, result


def load_training_data(cfg: Any, run_dir: Optional[Path] = None, log: Optional[logging.Logger] = None,
                 expressions: Sequence[str] = SUNNYBROOK_EXPRESSIONS) -> TrainingData:
    """Read and check the dataset (read_checked, labels required), split it by video.

    `expressions` is the model's vocabulary for the items' expression_index (model.expressions).
    Writes bad_samples.csv and split.json into `run_dir` when given. Raises DataError (one line) when
    the data cannot be used.
    """
    log = log or logging.getLogger("facedyn.data")
    cfg, root, result = read_checked(cfg, run_dir, log)
    samples = result.samples
    others = sorted(set(samples.expression.tolist()) - set(expressions))
    if others:
        log.info("data: expression folder(s) %s are not in model.expressions %s: a model conditioned on the "
                 "expression sees them as one 'other expression'", ", ".join(others), list(expressions))
    split: Split = split_by_video(samples.video, cfg.val_fraction, cfg.split_seed, cfg.folds, cfg.fold)
    if run_dir is not None:
        atomic_write_json(
            Path(run_dir) / SPLIT_FILE,
            split.as_dict(root=str(root), val_fraction=cfg.val_fraction, seed=cfg.split_seed, folds=cfg.folds, fold=cfg.fold,
                          expressions=sorted(set(samples.expression.tolist()))),  # what prediction may be asked
        )
    log.info(
        "data: split by video: %d train samples (%d videos), %d validation samples (%d videos)%s",
        len(split.train_indices),
        len(split.train_videos),
        len(split.val_indices),
        len(split.val_videos),
        f", fold {cfg.fold} of {cfg.folds}" if cfg.folds else "",
    )
    return TrainingData(
        cfg=cfg,
        root=root,
        samples=samples,
        train_indices=split.train_indices,
        val_indices=split.val_indices,
        bad_samples=result.bad,
        landmark_frame=landmark_frame(cfg),
        flow_max_magnitude=flow_max_magnitude(cfg),
        expressions=tuple(expressions),
    )
