"""One stage's epochs: train, validate, and let the hooks (facedyn.training.hooks) do everything else.

The loop owns what every stage has — its trainable groups, optimizer, lr schedule, objective and the
runner that feeds it (facedyn.training.runners) — and calls its hooks for selection, checkpoints, the
history, tracking, pruning, weight averaging and gradient clipping. Its `state_dict` (epoch, optimizer,
schedule, every hook's state) is what last.pt keeps of a stage in progress.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any, Optional, Sequence

import torch

from facedyn.metrics import scalar_items
from facedyn.training.freezing import apply_trainable, set_train_mode
from facedyn.training.hooks.base import EpochEnd, Evaluation, Hook, Hooks, StageResult
from facedyn.training.objective import Objective
from facedyn.training.optim import make_optimizer, make_scheduler
from facedyn.training.resume import Progress, plain
from facedyn.training.runners import StageContext, StageRunner, make_runner

log = logging.getLogger(__name__)


class StageLoop:
    def __init__(self, ctx: StageContext, progress: Progress, hooks: Sequence[Hook]) -> None:
        self.ctx, self.progress = ctx, progress
        self.stage, self.spec, self.model = ctx.stage, ctx.spec, ctx.model
        self.trainable = list(self.spec.trainable)
        self.lr = ctx.cfg.optimizer.lr if ctx.cfg.optimizer.lr is not None else self.spec.lr
        self.parameters = apply_trainable(self.model, self.trainable)
        self.optimizer = make_optimizer(ctx.cfg.optimizer, self.parameters, self.lr)
        self.scheduler = make_scheduler(ctx.cfg.scheduler, self.optimizer, self.spec.epochs * ctx.train_batches(),
                                        self.spec.warmup_fraction)
        self.objective = Objective(self.spec)
        self.hooks = Hooks(hooks)
        self.epoch = 0  # the last finished epoch
        self.resumed = False  # the stage goes on from last.pt
        self.runner: Optional[StageRunner] = None
        self._wait = [0.0]  # seconds spent waiting for data in the current epoch

    def state_dict(self) -> dict[str, Any]:
        """What last.pt keeps of the stage in progress (weights are saved beside it)."""
        return {"epoch": self.epoch, "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "hooks": self.hooks.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.hooks.load_state_dict(state.get("hooks") or {})
        self.resumed = True

    def step(self, loss: torch.Tensor) -> None:
        """One optimisation step on a batch's loss (the runner's train_pass calls it)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.hooks.call("before_step", self)
        self.optimizer.step()
        self.scheduler.step()
        self.hooks.call("after_step", self)

    def validate(self, epoch: int) -> Evaluation:
        """Validate the weights the hooks choose to evaluate and tell the hooks; epoch 0: the starting weights."""
        assert self.runner is not None, "validate() runs inside run()"
        with self.hooks.evaluating(self):
            pred, rows = self.runner.validate(epoch, self._wait)
            evaluation = Evaluation(epoch, pred, rows, scalar_items(self.objective.metrics(pred, rows, self.ctx.data.samples)))
            self.hooks.call("validated", self, evaluation)
        return evaluation

    def run(self) -> StageResult:
        """Train the stage's remaining epochs; the model is left at the weights the stage hands on."""
        spec, stage = self.spec, self.stage
        log.info("stage %s starts: %s trainable, lr %g, %d epochs%s", stage, "+".join(self.trainable), self.lr,
                 spec.epochs, f" (resumed after epoch {self.epoch})" if self.resumed else "")
        started = time.perf_counter()
        last: Optional[Evaluation] = None
        stop = None
        with contextlib.ExitStack() as stack:
            self.runner = make_runner(self.ctx, self.epoch + 1, stack)
            self.hooks.call("stage_start", self)
            for epoch in range(self.epoch + 1, spec.epochs + 1):
                stop = self.hooks.stop_reason(self)
                if stop:
                    log.info("stage %s: %s; stopping after epoch %d", stage, stop, self.epoch)
                    break
                last = self._epoch(epoch)
        kept = self.hooks.hand_on(self) or last
        if kept is None:  # resumed after the stage's last epoch: its weights are those to hand on
            kept = self.validate(self.epoch)
        if not kept.metrics:  # kept by a run of an older version, which saved no metrics with it
            kept.metrics = scalar_items(self.objective.metrics(kept.pred, kept.rows, self.ctx.data.samples))
        result = StageResult(stage, kept.epoch, kept, len(self._history()), stop)
        self._record(result, time.perf_counter() - started)
        self.hooks.call("stage_end", self, result)
        return result

    def _epoch(self, epoch: int) -> Evaluation:
        self._wait[0] = 0.0
        epoch_start = time.perf_counter()
        set_train_mode(self.model, self.trainable)
        lr_now = self.optimizer.param_groups[0]["lr"]
        train_loss = self.runner.train_pass(epoch, self, self._wait)
        val_start = time.perf_counter()
        evaluation = self.validate(epoch)
        self.epoch = epoch
        row = plain({"stage": self.stage, "epoch": epoch, "train_loss": train_loss, **evaluation.metrics, "lr": lr_now,
                     "seconds": time.perf_counter() - epoch_start, "data_wait_seconds": self._wait[0],
                     "val_seconds": time.perf_counter() - val_start})
        log.info("stage %s epoch %d/%d: train loss %.4f, val loss %.4f, val MAE dyn %.3f syn %.3f (%.1f s)%s",
                 self.stage, epoch, self.spec.epochs, row["train_loss"], row["val_loss"],
                 row.get("val_mae_dynamics", float("nan")), row.get("val_mae_synkinesis", float("nan")),
                 row["seconds"], "".join(f" {note}" for note in evaluation.notes))
        self.hooks.call("epoch_end", self, EpochEnd(row, evaluation))
        return evaluation

    def _history(self) -> list[dict]:
        return [r for r in self.progress.history if r["stage"] == self.stage]

    def _record(self, result: StageResult, seconds: float) -> None:
        """The stage's line in the run's progress (metrics.json, the summary) and its place in stages_done."""
        history = self._history()
        kept_row = next((r for r in history if r["epoch"] == result.kept_epoch), {})
        self.progress.per_stage[self.stage] = plain({
            **result.evaluation.metrics, "kept_epoch": result.kept_epoch, "select": str(self.spec.select),
            "epochs_run": result.epochs_run, "stopped_early": bool(result.stop_reason)})
        self.progress.stage_rows.append({
            "stage": self.stage, "predict": str(self.spec.predict), "epochs": result.epochs_run,
            "kept_epoch": result.kept_epoch, "seconds": sum(r["seconds"] for r in history),
            "precompute_seconds": self.runner.precompute_seconds if self.runner is not None else 0.0,
            "train_loss": kept_row.get("train_loss"), "val_loss": result.evaluation.metrics["val_loss"]})
        self.progress.stages_done.append(self.stage)
        log.info("stage %s done in %.1f s; hands on %s (select: %s)", self.stage, seconds,
                 f"epoch {result.kept_epoch}" if result.kept_epoch else "the weights it started from",
                 self.spec.select)
