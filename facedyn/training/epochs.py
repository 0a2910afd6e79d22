"""Passes over batches: one training pass, predictions of a split, the frozen branches' outputs of a split."""

from __future__ import annotations

import sys
from typing import Callable, Iterator

import numpy as np
import torch
from tqdm import tqdm

from facedyn.model import FaceDynModel
from facedyn.runtime import Batch, Runtime


def _progress(iterable, total: int, description: str, enabled: bool):
    """A progress bar on a terminal only: a log file gets the trainer's one line per epoch, not every redraw."""
    return tqdm(iterable, total=total, desc=description, leave=False, dynamic_ncols=True,
                disable=not (enabled and sys.stderr.isatty()))


def train_epoch(model: FaceDynModel, batches: Iterator[Batch], total: int, predict: str,
                loss: Callable[[torch.Tensor, Batch], torch.Tensor], step: Callable[[torch.Tensor], None],
                runtime: Runtime, description: str, heads_only: bool = False) -> float:
    """One pass; `step(loss)` optimises on each batch's loss; the mean loss. With heads_only the batches carry
    precomputed branch outputs (branch_outputs()) instead of inputs."""
    total_loss, count = 0.0, 0
    for batch in _progress(batches, total, description, runtime.progress):
        batch = runtime.to_device(batch)
        with runtime.autocast():
            pred = model.heads(batch, predict) if heads_only else model(batch, predict)
        batch_loss = loss(pred, batch)
        step(batch_loss)
        size = len(batch["target"])
        total_loss += float(batch_loss.detach()) * size
        count += size
    return total_loss / max(count, 1)


@torch.no_grad()
def predict_all(model: FaceDynModel, batches: Iterator[Batch], total: int, predict: str, runtime: Runtime,
                heads_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Normalised predictions and the sample rows they belong to, in loader order."""
    model.eval()
    outputs, rows = [], []
    for batch in _progress(batches, total, "validating", runtime.progress):
        batch = runtime.to_device(batch)
        with runtime.autocast():
            pred = model.heads(batch, predict) if heads_only else model(batch, predict)
        outputs.append(pred.float().cpu())
        rows.append(batch["index"].cpu())
    return torch.cat(outputs).numpy(), torch.cat(rows).numpy()


@torch.no_grad()
def precompute_branch_outputs(model: FaceDynModel, batches: Iterator[Batch], total: int, predict: str,
                              runtime: Runtime) -> Batch:
    """The frozen branches' outputs for a whole split, once, on un-augmented data (kept on the CPU)."""
    model.eval()
    parts: dict[str, list[torch.Tensor]] = {}
    for batch in _progress(batches, total, "precomputing frozen branches", runtime.progress):
        on_device = runtime.to_device(batch)
        with runtime.autocast():
            outputs = model.branch_outputs(on_device, predict)
        for key, value in outputs.items():  # outputs in float32; an expression index stays an integer
            parts.setdefault(key, []).append((value.float() if value.is_floating_point() else value).cpu())
        for key in ("target", "target_valid", "index"):  # on the device when the data live there
            parts.setdefault(key, []).append(batch[key].cpu())
    return {key: torch.cat(values) for key, values in parts.items()}


def tensor_batches(tensors: Batch, batch_size: int, order: torch.Tensor | None = None) -> Iterator[Batch]:
    rows = order if order is not None else torch.arange(len(tensors["index"]))
    for start in range(0, len(rows), batch_size):
        chosen = rows[start:start + batch_size]
        yield {key: value[chosen] for key, value in tensors.items()}


def timed(iterable, clock: Callable[[], float], sink: list[float]) -> Iterator:
    """Yield from iterable, adding to sink[0] the time spent waiting for each item (data-loading stalls)."""
    iterator = iter(iterable)
    while True:
        start = clock()
        try:
            item = next(iterator)
        except StopIteration:
            return
        sink[0] += clock() - start
        yield item
