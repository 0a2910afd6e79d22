"""A run's stages, one after the other, on one model and one dataset; then the final validation, the
prediction tables, figures and metrics.json. The hooks every stage gets are listed here (stage_hooks)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Optional, Sequence

import torch
from omegaconf import DictConfig

from facedyn.data import load_training_data
from facedyn.metrics import scalar_items
from facedyn.runs import METRICS_FILE, plots
from facedyn.runs.results import summary_text, write_predictions
from facedyn.runtime import make_runtime, seed_everything
from facedyn.training.hooks.base import Hook
from facedyn.training.hooks.checkpointing import Checkpointing
from facedyn.training.hooks.ema import WeightAverage
from facedyn.training.hooks.grad_clip import GradientClipping
from facedyn.training.hooks.history import History
from facedyn.training.hooks.selection import Selection
from facedyn.training.loop import StageLoop
from facedyn.training.objective import Objective, baseline_metrics, check_labels
from facedyn.training.resume import Progress, ResumePoint, plain
from facedyn.training.runners import StageContext, predict_split
from facedyn.training.stages import stage_key
from facedyn.training.start import starting_model
from facedyn.utils.io import atomic_write_json

log = logging.getLogger(__name__)


def stage_hooks(cfg: DictConfig, spec: DictConfig, run_dir: Path) -> list[Hook]:
    """A stage's own hooks, in the order they act (see facedyn.training.hooks.base)."""
    hooks: list[Hook] = []
    if cfg.trainer.get("grad_clip") is not None:
        hooks.append(GradientClipping(cfg.trainer.grad_clip))
    if cfg.trainer.get("ema") is not None:
        hooks.append(WeightAverage(cfg.trainer.ema))
    return hooks + [Selection(spec), History(run_dir), Checkpointing(run_dir, spec.checkpoint)]


def train_stages(cfg: DictConfig, run_dir: Path, stages: list[str], point: Optional[ResumePoint],
                 run_hooks: Sequence[Hook]) -> dict:
    """Train `stages` (going on from `point`), write the run's results; the final validation metrics.
    `run_hooks` (the tracker, the sweep's pruning) join every stage's own hooks."""
    started = time.perf_counter()
    runtime = make_runtime(cfg.trainer)
    log.info("Precision: %s on %s", runtime.precision, runtime.device)
    seed_everything(cfg.seed, cfg.trainer.deterministic)
    data = load_training_data(cfg.data, run_dir, log, expressions=cfg.model.expressions)
    check_labels(data, log)
    torch.manual_seed(cfg.seed)  # the model's initialisation does not depend on what loading drew
    model, weights_report = starting_model(cfg, run_dir, stages[0], point)
    model.to(runtime.device)
    progress = point.progress if point is not None else Progress()

    for stage in stages:
        if stage in progress.stages_done:
            continue
        spec = cfg.stages[stage_key(stage)]
        loop = StageLoop(StageContext(cfg, stage, spec, model, data, runtime), progress,
                         stage_hooks(cfg, spec, run_dir) + list(run_hooks))
        if point is not None and point.mid_stage and point.stage == stage:
            loop.load_state_dict(point.loop)
        result = loop.run()
        write_predictions(run_dir, f"predictions_stage_{stage}", data.samples, result.evaluation.rows,
                          result.evaluation.pred)

    final_ctx = StageContext(cfg, stages[-1], cfg.stages[stage_key(stages[-1])], model, data, runtime)
    pred_norm, rows = predict_split(final_ctx, final_ctx.val_rows)
    final = Objective(final_ctx.spec).metrics(pred_norm, rows, data.samples)
    baseline = baseline_metrics(data.samples, final_ctx.train_rows, final_ctx.val_rows, final_ctx.spec)
    write_predictions(run_dir, "predictions", data.samples, rows, pred_norm)
    kept_epochs = {s: progress.per_stage[s]["kept_epoch"] for s in stages}
    metrics = plain({
        "final": final, "per_stage": progress.per_stage, "kept_epochs": kept_epochs,
        "baseline": scalar_items(baseline),
        "flow_pretrained": weights_report.pretrained, "flow_weights": weights_report.source,
        "precision": runtime.precision, "device": str(runtime.device),
        "stages": stages, "predict": final_ctx.spec.predict,
        "train_samples": int(len(final_ctx.train_rows)), "val_samples": int(len(rows)),
        "seconds": time.perf_counter() - started,
    })
    atomic_write_json(run_dir / METRICS_FILE, metrics)
    plots.training_curves(progress.history, run_dir / "training_curves.png", kept_epochs)
    plots.stage_losses(progress.history, run_dir / "stage_losses.png", kept_epochs)
    for score in ("dynamics", "synkinesis"):
        if f"val_confusion_{score}" in final:
            plots.confusion(final[f"val_confusion_{score}"], score, run_dir / f"confusion_{score}.png")
    log.info("\n%s", summary_text(run_dir, progress.stage_rows, final, baseline, weights_report.pretrained))
    return {**scalar_items(metrics["final"]), "flow_pretrained": weights_report.pretrained}
