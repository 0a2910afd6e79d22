"""How a stage's epochs get their data: two runners behind one interface.

LoaderStage feeds the model raw inputs (flow images, landmarks) from two loaders kept for the stage,
loaded ahead in a background thread (facedyn.data.prefetch), augmented when the stage says so.
PrecomputedStage (`precompute_frozen: true`) runs the frozen branches once over both splits and trains the
heads on their outputs: an epoch costs milliseconds instead of a pass through ResNet and blendshapes.
The stage loop (facedyn.training.loop) only sees `train_pass` and `validate`; both runners optimise the
loop's objective through its `step`.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Iterable, Iterator, Optional, Protocol

import numpy as np
import torch
from omegaconf import DictConfig

from facedyn.training.stages import stage_stream
from facedyn.data import loader_workers, make_loader
from facedyn.data.prefetch import Prefetcher
from facedyn.data.loading import TrainingData
from facedyn.data.resident import ResidentData, ResidentLoader, use_resident
from facedyn.training.epochs import precompute_branch_outputs, predict_all, tensor_batches, timed, train_epoch
from facedyn.model import FaceDynModel
from facedyn.runtime import Batch, Runtime

if TYPE_CHECKING:
    from facedyn.training.loop import StageLoop


@dataclass
class StageContext:
    """What one stage works with."""

    cfg: DictConfig  # the whole run's config (data loading, trainer, seed)
    stage: str
    spec: DictConfig  # cfg.stages.s<stage>
    model: FaceDynModel
    data: TrainingData
    runtime: Runtime

    @property
    def batch_size(self) -> int:
        return int(self.spec.batch_size or self.cfg.data.batch_size)

    @property
    def train_rows(self) -> np.ndarray:
        return np.asarray(self.data.train_indices)

    @property
    def val_rows(self) -> np.ndarray:
        return np.asarray(self.data.val_indices)

    def train_batches(self) -> int:
        return math.ceil(len(self.train_rows) / self.batch_size)

    def eval_batches(self, count: int) -> int:
        return math.ceil(count / self.cfg.trainer.eval_batch_size)

    @property
    def workers(self) -> int:
        return loader_workers(self.cfg.data.num_workers, self.runtime.device.type == "cuda")

    @property
    def resident(self) -> Optional[ResidentData]:
        """The samples in the device's memory when the data settings keep them there (data.on_device)."""
        if not use_resident(self.data.cfg, self.runtime.device):
            return None
        return self.data.resident(self.runtime.device, self.runtime.channels_last)

    def train_loader(self, augment: bool) -> Iterable[Batch]:
        """The stage's training batches, kept for all its epochs: `sampler.set_epoch(e)` picks the epoch."""
        resident = self.resident
        if resident is not None:
            return ResidentLoader(resident, self.train_rows, self.batch_size, shuffle=True, seed=self.cfg.seed,
                                  augment=augment and self.data.cfg.augment.enabled, num_workers=self.workers)
        return self._loader(self.data.make_dataset(self.train_rows, augment=augment), shuffle=True,
                            batch_size=self.batch_size, persistent=True)

    def eval_loader(self, rows: np.ndarray, persistent: bool = False) -> Iterable[Batch]:
        """Un-augmented batches of `rows`, in order (validation, prediction, precomputed branch outputs)."""
        resident = self.resident
        if resident is not None:
            return ResidentLoader(resident, rows, self.cfg.trainer.eval_batch_size, shuffle=False, seed=self.cfg.seed,
                                  augment=False, num_workers=0)
        return self._loader(self.data.make_dataset(rows, augment=False), shuffle=False, persistent=persistent)

    def _loader(self, dataset, shuffle: bool, batch_size: int | None = None, persistent: bool = False):
        return make_loader(dataset, batch_size=batch_size or self.cfg.trainer.eval_batch_size, shuffle=shuffle,
                           seed=self.cfg.seed, num_workers=self.workers, pin_memory=self.runtime.device.type == "cuda",
                           persistent=persistent)

    def shuffle_epoch(self, epoch: int) -> int:
        """The number the training order and augmentation draws of (stage, epoch) come from: keyed by the
        stage's name, so adding a stage changes no other stage's draws."""
        return stage_stream(self.stage) * 1000 + epoch


class StageRunner(Protocol):
    precompute_seconds: float  # one-time cost before the first epoch

    def train_pass(self, epoch: int, loop: "StageLoop", wait: list[float]) -> float:
        """One training pass of `epoch` through loop.step; its mean loss. Adds the time spent waiting for data
        to wait[0]."""

    def validate(self, epoch: int, wait: list[float]) -> tuple[np.ndarray, np.ndarray]:
        """Normalised predictions of the validation split after `epoch` (0: before the first), and their rows."""


class LoaderStage:
    def __init__(self, ctx: StageContext, first_epoch: int, stack: contextlib.ExitStack):
        self.ctx, self.first_epoch = ctx, first_epoch
        self.precompute_seconds = 0.0
        train_loader = ctx.train_loader(augment=bool(ctx.spec.augment))
        val_loader = ctx.eval_loader(ctx.val_rows, persistent=True)
        # Every pass of the stage, in order, so the thread loads across pass boundaries.
        passes = [pass_ for epoch in range(first_epoch, ctx.spec.epochs + 1) for pass_ in (
            (("train", epoch), partial(_at_epoch, train_loader, ctx.shuffle_epoch(epoch))),
            (("validate", epoch), partial(_at_epoch, val_loader, 0)))]
        self.ahead = stack.enter_context(Prefetcher(passes, depth=ctx.cfg.data.prefetch_batches))

    def train_pass(self, epoch: int, loop: "StageLoop", wait: list[float]) -> float:
        ctx = self.ctx
        batches = timed(self.ahead.next_pass(("train", epoch)), time.perf_counter, wait)
        return train_epoch(ctx.model, batches, ctx.train_batches(), ctx.spec.predict, loop.objective.batch_loss,
                           loop.step, ctx.runtime, _description(ctx, epoch))

    def validate(self, epoch: int, wait: list[float]) -> tuple[np.ndarray, np.ndarray]:
        ctx = self.ctx
        if epoch < self.first_epoch:  # the weights the stage started from: not one of the planned passes
            return predict_split(ctx, ctx.val_rows)
        batches = timed(self.ahead.next_pass(("validate", epoch)), time.perf_counter, wait)
        return predict_all(ctx.model, batches, ctx.eval_batches(len(ctx.val_rows)), ctx.spec.predict, ctx.runtime)


class PrecomputedStage:
    def __init__(self, ctx: StageContext, first_epoch: int, stack: contextlib.ExitStack):
        self.ctx = ctx
        started = time.perf_counter()
        self.train_outputs = self._outputs(ctx.train_rows)
        self.val_outputs = self._outputs(ctx.val_rows)
        self.precompute_seconds = time.perf_counter() - started

    def _outputs(self, rows: np.ndarray) -> dict[str, torch.Tensor]:
        ctx = self.ctx
        return precompute_branch_outputs(ctx.model, ctx.eval_loader(rows), ctx.eval_batches(len(rows)),
                                         ctx.spec.predict, ctx.runtime)

    def train_pass(self, epoch: int, loop: "StageLoop", wait: list[float]) -> float:
        ctx = self.ctx
        generator = torch.Generator().manual_seed(int(np.random.default_rng(
            [ctx.cfg.seed, stage_stream(ctx.stage), epoch]).integers(2**62)))
        order = torch.randperm(len(ctx.train_rows), generator=generator)
        return train_epoch(ctx.model, tensor_batches(self.train_outputs, ctx.batch_size, order), ctx.train_batches(),
                           ctx.spec.predict, loop.objective.batch_loss, loop.step, ctx.runtime,
                           _description(ctx, epoch), heads_only=True)

    def validate(self, epoch: int, wait: list[float]) -> tuple[np.ndarray, np.ndarray]:
        ctx = self.ctx
        return predict_all(ctx.model, tensor_batches(self.val_outputs, ctx.cfg.trainer.eval_batch_size),
                           ctx.eval_batches(len(ctx.val_rows)), ctx.spec.predict, ctx.runtime, heads_only=True)


def make_runner(ctx: StageContext, first_epoch: int, stack: contextlib.ExitStack) -> StageRunner:
    """The runner the stage's `precompute_frozen` asks for; what it holds open is closed with `stack`."""
    runner = PrecomputedStage if ctx.spec.precompute_frozen else LoaderStage
    return runner(ctx, first_epoch, stack)


def predict_split(ctx: StageContext, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The current model's normalised predictions (the stage's output) of `rows`, un-augmented."""
    return predict_all(ctx.model, ctx.eval_loader(rows), ctx.eval_batches(len(rows)), ctx.spec.predict, ctx.runtime)


def _at_epoch(loader, epoch: int) -> Iterator:
    """`loader` (a persistent one, kept for the stage) set to serve `epoch`."""
    loader.sampler.set_epoch(epoch)
    return loader


def _description(ctx: StageContext, epoch: int) -> str:
    return f"stage {ctx.stage} epoch {epoch}/{ctx.spec.epochs}"
