"""The torch Dataset over decoded samples: numpy indexing only, no file IO."""

from __future__ import annotations

import os
from typing import Iterator, Optional, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from facedyn.data.augment import Augmenter
from facedyn.data.expressions import SUNNYBROOK_EXPRESSIONS, expression_indices
from facedyn.data.samples import Samples, flow_input


class FaceDynDataset(Dataset):
    """Items are dicts of tensors:

    flow_image float32 (3, H, W) in [0, 1] (RGB, not normalised: the model does that),
    expression_landmarks / baseline_landmarks float32 (146, 2), target float32 (2,) = [dynamics, synkinesis],
    target_valid float32 (2,) (0 where the label is an ignored value), index int64 (the row in Samples),
    expression_index int64 (the sample's expression in `expressions`, len(expressions) for any other one;
    facedyn.data.expressions).
    """

    def __init__(self, samples: Samples, indices: np.ndarray, augmenter: Optional[Augmenter] = None,
                 expressions: Sequence[str] = SUNNYBROOK_EXPRESSIONS):
        self.samples = samples
        self.indices = np.asarray(indices, dtype=np.int64)
        self.augmenter = augmenter
        targets, valid = samples.targets()
        self._targets, self._valid = targets.astype(np.float32), valid.astype(np.float32)
        self._expression_index = expression_indices(samples.expression, expressions)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        """Item `key` (epoch 0's draws), or for an (epoch, item) pair (what EpochSampler yields) that item as drawn in that epoch."""
        epoch, item = key if isinstance(key, tuple) else (0, key)
        row = int(self.indices[item])
        flow = self.samples.flow[row]
        expression = self.samples.expression_landmarks[row]
        baseline = self.samples.baseline_landmarks[row]
        # numpy, not torch, for the per-item work: torch would spread these small ops over its threads.
        if self.augmenter is not None:
            image, expression, baseline = self.augmenter(flow, expression, baseline, epoch, row)
            chw = np.ascontiguousarray(image.transpose(2, 0, 1))
        else:
            chw = flow_input(flow[None])[0]
        return {
            "flow_image": torch.from_numpy(chw),
            "expression_landmarks": torch.from_numpy(np.array(expression, dtype=np.float32)),
            "baseline_landmarks": torch.from_numpy(np.array(baseline, dtype=np.float32)),
            "target": torch.from_numpy(self._targets[row].copy()),
            "target_valid": torch.from_numpy(self._valid[row].copy()),
            "index": torch.tensor(row, dtype=torch.int64),
            "expression_index": torch.tensor(self._expression_index[row], dtype=torch.int64),
        }


MAX_AUTO_WORKERS = 8


def loader_workers(configured: Optional[int], on_cuda: bool) -> int:
    """DataLoader worker processes: data.num_workers, or when it is null (auto) 1 on CPU and up to 8 on CUDA.

    On CPU loading a batch takes ~4 % of a training step: one worker process keeps up, away from the
    training process's GIL (a loader thread stalled torch's Python side and cost 5 % of a stage-1 epoch on
    2 cores; one worker process cost nothing after its start). A GPU step is faster than one core can
    decode and augment a batch, so there several workers load in parallel, leaving cores for the main
    process. A single-core machine loads in the training process.
    """
    if configured is not None:
        if configured < 0:
            raise ValueError(f"data.num_workers={configured} must not be negative")
        return int(configured)
    cores = os.cpu_count() or 1
    if on_cuda:
        return min(MAX_AUTO_WORKERS, max(cores - 2, 0))
    return 1 if cores >= 2 else 0


class EpochSampler(Sampler[tuple[int, int]]):
    """The items of one epoch as (epoch, item) pairs, in an order drawn from (seed, epoch) when shuffling.

    The epoch travels with each index, so one DataLoader, and its worker processes, can serve every epoch
    of a stage: set_epoch() before iterating picks the epoch. The order is what a RandomSampler seeded
    the same way gives.
    """

    def __init__(self, size: int, shuffle: bool, seed: int = 0, epoch: int = 0):
        self.size, self.shuffle, self.seed, self.epoch = size, shuffle, seed, int(epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if not self.shuffle:
            return ((self.epoch, item) for item in range(self.size))
        generator = torch.Generator().manual_seed(int(np.random.default_rng([self.seed, self.epoch]).integers(2**62)))
        return ((self.epoch, item) for item in torch.randperm(self.size, generator=generator).tolist())


def make_loader(
    dataset: FaceDynDataset,
    batch_size: int,
    shuffle: bool,
    epoch: int = 0,
    seed: int = 0,
    num_workers: int = 0,
    pin_memory: bool = False,
    persistent: bool = False,
) -> DataLoader:
    """A DataLoader over `dataset` for `epoch`: its order and augmentation draws depend on (seed, epoch) only.

    A resumed run therefore sees what an uninterrupted one would. With `persistent`, keep the loader for
    later epochs (`loader.sampler.set_epoch(e)` before iterating): its worker processes start once.
    """
    if num_workers > 0:
        # OpenCV's thread pool does not survive fork: once this process had used it (decoding, colour
        # conversion, compensation), a forked worker's cv2.warpAffine (augmentation) could wait forever on
        # it (seen in CI). With no OpenCV threads the workers' calls run inline; the images are 112x112.
        cv2.setNumThreads(0)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=EpochSampler(len(dataset), shuffle, seed, epoch),
        num_workers=num_workers,
        pin_memory=pin_memory,  # page-locked batches copy to a GPU asynchronously
        persistent_workers=persistent and num_workers > 0,
    )
