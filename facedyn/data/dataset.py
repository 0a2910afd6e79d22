"""The torch Dataset over decoded samples: numpy indexing only, no file IO."""

from __future__ import annotations

import os
from typing import Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from facedyn.data.augment import Augmenter
from facedyn.data.samples import Samples


class FaceDynDataset(Dataset):
    """Items are dicts of tensors:

    flow float32 (3, H, W) in [0, 1] (RGB, not normalised: the model does that),
    expression_landmarks / baseline_landmarks float32 (146, 2), target float32 (2,) = [dynamics, synkinesis],
    target_valid float32 (2,) (0 where the label is an ignored value), index int64 (the row in Samples).
    """

    def __init__(self, samples: Samples, indices: np.ndarray, augmenter: Optional[Augmenter] = None):
        self.samples = samples
        self.indices = np.asarray(indices, dtype=np.int64)
        self.augmenter = augmenter
        self.epoch = 0
        self._targets = np.stack([samples.dynamics, samples.synkinesis], axis=1).astype(np.float32)
        self._valid = np.stack([samples.dynamics_valid, samples.synkinesis_valid], axis=1).astype(np.float32)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's augmentation draws; call before iterating (DataLoader workers copy it then)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        row = int(self.indices[item])
        flow = self.samples.flow[row]
        expression = self.samples.expression_landmarks[row]
        baseline = self.samples.baseline_landmarks[row]
        # numpy, not torch, for the per-item work: torch would spread these small ops over its threads.
        if self.augmenter is not None:
            image, expression, baseline = self.augmenter(flow, expression, baseline, self.epoch, row)
            chw = np.ascontiguousarray(image.transpose(2, 0, 1))
        else:
            chw = np.ascontiguousarray(flow.transpose(2, 0, 1), dtype=np.float32)
            chw /= 255
        return {
            "flow": torch.from_numpy(chw),
            "expression_landmarks": torch.from_numpy(np.array(expression, dtype=np.float32)),
            "baseline_landmarks": torch.from_numpy(np.array(baseline, dtype=np.float32)),
            "target": torch.from_numpy(self._targets[row].copy()),
            "target_valid": torch.from_numpy(self._valid[row].copy()),
            "index": torch.tensor(row, dtype=torch.int64),
        }


MAX_AUTO_WORKERS = 8


def loader_workers(configured: Optional[int], on_cuda: bool) -> int:
    """DataLoader worker processes: data.num_workers, or when it is null (auto) none on CPU and up to 8 on CUDA.

    On CPU the training step outweighs loading a batch ~15x and the prefetch thread hides it; worker
    processes would only compete with torch's threads for the cores. A GPU step is faster than one core can
    decode and augment a batch, so there the workers load in parallel (leaving cores for the main process).
    """
    if configured is not None:
        if configured < 0:
            raise ValueError(f"data.num_workers={configured} must not be negative")
        return int(configured)
    return min(MAX_AUTO_WORKERS, max((os.cpu_count() or 1) - 2, 0)) if on_cuda else 0


def make_loader(
    dataset: FaceDynDataset,
    batch_size: int,
    shuffle: bool,
    epoch: int = 0,
    seed: int = 0,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader for one epoch: sets the dataset's epoch and draws the order from (seed, epoch).

    Build a new loader every epoch; a resumed run then sees the same order and augmentations as an
    uninterrupted one.
    """
    dataset.set_epoch(epoch)
    generator = torch.Generator().manual_seed(int(np.random.default_rng([seed, epoch]).integers(2**62)))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator if shuffle else None,
        num_workers=num_workers,
        pin_memory=pin_memory,  # page-locked batches copy to a GPU asynchronously
        persistent_workers=False,
    )
