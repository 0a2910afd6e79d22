"""The task function: train the configured stage(s) into a run folder and return the final metrics.

`train.py` (Hydra), `sweep.py` (Optuna trials) and the tests all call `run()`; nothing here depends on
how the config was composed. The run folder's layout is described in facedyn/runs.py. A stage is fully
described by its conf/stage/<s>.yaml: the loop below runs it through a stage runner
(facedyn.training.runners), keeps its best or last epoch (facedyn.training.hooks.selection) and checkpoints it as it says
(facedyn.training.resume).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from facedyn import blendshapes
from facedyn.runs import checkpoints, plots
from facedyn.training import tracking
from facedyn.config import CheckpointEvery, ConfigError, StageInit, stage_key, validate
from facedyn.data import prepare_data
from facedyn.training.freezing import apply_trainable, set_train_mode
from facedyn.utils.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from facedyn.metrics import scalar_items
from facedyn.model import FaceDynModel, FlowWeightsReport, build_model
from facedyn.training.objective import baseline_metrics, check_labels, validation_metrics
from facedyn.training.optim import make_optimizer, make_scheduler
from facedyn.runs.results import summary_text, write_predictions
from facedyn.training.resume import Progress, ResumePoint, plain, resume_point, save_last, save_stage, write_history
from facedyn.runs import (BLENDSHAPES_GRAPH_FILE, CHECKPOINT_DIR, CONFIG_FILE, METRICS_FILE, OVERRIDES_FILE,
                          STATUS_FILE, now_iso, owned, read_json, write_status)
from facedyn.runtime import make_runtime, seed_everything
from facedyn.training.hooks.selection import BestEpoch
from facedyn.training.runners import StageContext, make_runner, predict_split

log = logging.getLogger(__name__)
EpochCallback = Callable[[str, int, dict], None]


def _attach_log_file(run_dir: Path) -> Optional[logging.Handler]:
    """Log into run_dir/train.log unless Hydra already does; returns the handler to detach afterwards."""
    target = str(run_dir / "train.log")
    root = logging.getLogger()
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    if any(getattr(h, "baseFilename", None) == target for h in root.handlers):
        return None
    handler = logging.FileHandler(target)
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    root.addHandler(handler)
    return handler


def run(cfg: DictConfig, run_dir: str | os.PathLike, overrides: Sequence[str] = (),
        epoch_callback: Optional[EpochCallback] = None) -> dict:
    """Train cfg's stages into run_dir; return the final validation metrics (flat `val_*` keys).

    The process holds run_dir while it trains (a second one is refused: facedyn.runs.RunFolderInUse).
    epoch_callback(stage, epoch, row) runs after each epoch's validation; if it raises, the run is marked
    failed, or with the exception's `run_status` when it has one, and the exception propagates (the sweep
    prunes trials this way: status "pruned", which the experiment tracker then records too).
    """
    run_dir = Path(run_dir).resolve()
    with owned(run_dir):
        handler = _attach_log_file(run_dir)
        tracker = tracking.start(cfg, run_dir)
        try:
            return _run(cfg, run_dir, overrides, tracking.chain(tracker, epoch_callback))
        finally:
            tracker.close(run_dir)
            if handler is not None:
                logging.getLogger().removeHandler(handler)
                handler.close()


def _run(cfg: DictConfig, run_dir: Path, overrides: Sequence[str], epoch_callback: Optional[EpochCallback]) -> dict:
    stages = validate(cfg)  # before any data or model loads
    resuming = bool(cfg.resume)
    point = None
    if resuming:
        if Path(cfg.resume).resolve() != run_dir:
            raise ConfigError(f"resume={cfg.resume} must be the run folder being continued ({run_dir})")
        status = read_json(run_dir / STATUS_FILE) or {}
        if status.get("status") == "finished":
            raise ConfigError(f"resume={run_dir}: that run finished ({status.get('ended', 'time unknown')}); its results "
                              f"stay as they are. To train on from it, start a new run with init_from={run_dir}")
        point = resume_point(run_dir, stages)  # a damaged last.pt stops here, the status untouched
    else:
        atomic_write_text(run_dir / CONFIG_FILE, OmegaConf.to_yaml(cfg, resolve=True))
        atomic_write_text(run_dir / OVERRIDES_FILE, OmegaConf.to_yaml(OmegaConf.create(list(overrides))))
    write_status(run_dir, status="running", stages=stages, pid=os.getpid(), host=socket.gethostname(),
                 error=None, **({"resumed": now_iso()} if resuming else {"started": now_iso()}))
    try:
        result = _train(cfg, run_dir, stages, point, epoch_callback)
    except KeyboardInterrupt:  # Ctrl-C, and SIGTERM in train.py: the run can go on with resume=
        write_status(run_dir, status="interrupted", ended=now_iso())
        raise
    except BaseException as exc:
        # An epoch_callback may stop a run on purpose: its exception names the status (the sweep's pruning).
        stopped = getattr(exc, "run_status", None)
        write_status(run_dir, status=stopped or "failed", ended=now_iso(),
                     error=None if stopped else f"{type(exc).__name__}: {exc}")
        raise
    write_status(run_dir, status="finished", ended=now_iso())
    return result


def _starting_checkpoint(cfg: DictConfig, first_stage: str) -> Optional[Path]:
    """The checkpoint the first stage starts from (its `init: previous`), or None for a fresh model."""
    spec = cfg.stages[stage_key(first_stage)]
    if spec.init == StageInit.none:
        return None
    return checkpoints.find_init_checkpoint(cfg.init_from, str(spec.after), Path(cfg.paths.output_dir))


def _blendshapes_graph(cfg: DictConfig, run_dir: Path, start: Optional[Path]) -> Path:
    """The run's own copy of the blendshape graph it trains (BLENDSHAPES_GRAPH_FILE), made when it starts:
    the graph of the run it starts from when that run kept one (its checkpoint fits that graph), else the
    cached conversion. A resumed run keeps the copy it has."""
    own = run_dir / BLENDSHAPES_GRAPH_FILE
    if own.is_file():
        return own
    starting_run = start.parent.parent if start is not None and start.parent.name == CHECKPOINT_DIR else None
    kept = starting_run / BLENDSHAPES_GRAPH_FILE if starting_run is not None else None
    source = kept if kept is not None and kept.is_file() else blendshapes.graph_for(cfg.model.blendshapes.path)
    atomic_write_bytes(own, source.read_bytes())
    return own


def _build(cfg: DictConfig, run_dir: Path, stages: list[str],
           point: Optional[ResumePoint]) -> tuple[FaceDynModel, FlowWeightsReport]:
    """The model with the weights the run starts from: a resume point, the previous stage's checkpoint, or
    fresh (ImageNet in the flow backbone). ImageNet weights are only fetched when they would be used."""
    start = None if point is not None else _starting_checkpoint(cfg, stages[0])
    model_cfg = cfg.model
    if point is not None or start is not None:
        model_cfg = OmegaConf.merge(cfg.model, {"flow": {"weights": "none"}})
    model, report = build_model(model_cfg, _blendshapes_graph(cfg, run_dir, start))
    if point is not None:
        problem = checkpoints.state_mismatch(model, point.model)
        if problem:
            raise checkpoints.CheckpointError(f"resume={cfg.resume}: {point.source} does not fit the model this facedyn "
                                              f"version builds from the run's config ({problem})")
        model.load_state_dict(point.model)
        log.info("Resuming %s after stage %s%s (%s)", cfg.resume, point.stage,
                 f" epoch {point.epoch}" if point.mid_stage else "", point.source.name)
        report = FlowWeightsReport(True, f"resumed from {point.source}")
    elif start is not None:
        setting = f"init_from={cfg.init_from}" if cfg.init_from else f"stage {stages[0]}'s starting weights"
        checkpoints.load_weights(model, start, setting)
        log.info("Initial weights: %s", start)
        report = FlowWeightsReport(True, f"checkpoint {start}")
    return model, report


def _train(cfg: DictConfig, run_dir: Path, stages: list[str], point: Optional[ResumePoint],
           epoch_callback: Optional[EpochCallback]) -> dict:
    started = time.perf_counter()
    runtime = make_runtime(cfg.trainer)
    log.info("Precision: %s on %s", runtime.precision, runtime.device)
    seed_everything(cfg.seed, cfg.trainer.deterministic)
    data = prepare_data(cfg.data, run_dir, log, expressions=cfg.model.expressions)
    check_labels(data, log)
    torch.manual_seed(cfg.seed)  # the model's initialisation does not depend on what loading drew
    model, weights_report = _build(cfg, run_dir, stages, point)
    model.to(runtime.device)
    progress = point.progress if point is not None else Progress()

    for stage in stages:
        if stage in progress.stages_done:
            continue
        ctx = StageContext(cfg, stage, cfg.stages[stage_key(stage)], model, data, runtime)
        pred_norm, rows = train_stage(ctx, run_dir, progress, point if point is not None and point.stage == stage
                                      and point.mid_stage else None, epoch_callback)
        progress.stages_done.append(stage)
        write_predictions(run_dir, f"predictions_stage_{stage}", data.samples, rows, pred_norm)
        save_stage(run_dir, model, stage, progress)
        save_last(run_dir, model, progress, stage, int(progress.per_stage[stage]["kept_epoch"]))

    final_ctx = StageContext(cfg, stages[-1], cfg.stages[stage_key(stages[-1])], model, data, runtime)
    pred_norm, rows = predict_split(final_ctx, final_ctx.val_rows)
    final = validation_metrics(pred_norm, rows, data.samples, final_ctx.spec)
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


def train_stage(ctx: StageContext, run_dir: Path, progress: Progress, point: Optional[ResumePoint],
                epoch_callback: Optional[EpochCallback]) -> tuple[np.ndarray, np.ndarray]:
    """Train one stage as its spec says; leave the model at the kept epoch's weights; its validation predictions."""
    cfg, spec, stage, model = ctx.cfg, ctx.spec, ctx.stage, ctx.model
    trainable = list(spec.trainable)
    lr = cfg.optimizer.lr if cfg.optimizer.lr is not None else spec.lr
    log.info("stage %s starts: %s trainable, lr %g, %d epochs", stage, "+".join(trainable), lr, spec.epochs)
    optimizer = make_optimizer(cfg.optimizer, apply_trainable(model, trainable), lr)
    scheduler = make_scheduler(cfg.scheduler, optimizer, spec.epochs * ctx.train_batches(), spec.warmup_fraction)
    best = BestEpoch.for_stage(spec)
    first_epoch = 1
    if point is not None:
        optimizer.load_state_dict(point.optimizer)
        scheduler.load_state_dict(point.scheduler)
        best = BestEpoch.from_state(point.best) if point.best else best
        first_epoch = point.epoch + 1
    pred_norm: Optional[np.ndarray] = None
    rows = ctx.val_rows
    stopped_early = False
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        runner = make_runner(ctx, first_epoch, stack)
        for epoch in range(first_epoch, spec.epochs + 1):
            if spec.get("patience") and best.epochs_without_improvement(epoch - 1) >= spec.patience:
                log.info("stage %s: no better %s for %d epochs; stopping after epoch %d", stage, best.metric,
                         spec.patience, epoch - 1)
                stopped_early = True
                break
            epoch_start = time.perf_counter()
            set_train_mode(model, trainable)
            wait = [0.0]
            lr_now = optimizer.param_groups[0]["lr"]
            train_loss = runner.train_pass(epoch, optimizer, scheduler, wait)
            val_start = time.perf_counter()
            pred_norm, rows = runner.validate(epoch, wait)
            metrics = scalar_items(validation_metrics(pred_norm, rows, ctx.data.samples, spec))
            best.offer(epoch, metrics, model, pred_norm, rows)
            row = plain({"stage": stage, "epoch": epoch, "train_loss": train_loss, **metrics, "lr": lr_now,
                         "seconds": time.perf_counter() - epoch_start, "data_wait_seconds": wait[0],
                         "val_seconds": time.perf_counter() - val_start})
            progress.history.append(row)
            log.info("stage %s epoch %d/%d: train loss %.4f, val loss %.4f, val MAE dyn %.3f syn %.3f (%.1f s)%s",
                     stage, epoch, spec.epochs, row["train_loss"], row["val_loss"],
                     row.get("val_mae_dynamics", float("nan")), row.get("val_mae_synkinesis", float("nan")),
                     row["seconds"], " *" if best.epoch == epoch else "")
            if spec.checkpoint == CheckpointEvery.epoch:
                save_last(run_dir, model, progress, stage, epoch, optimizer, scheduler, best.state())
            else:  # epochs cheaper than a checkpoint: a resumed run redoes the stage
                write_history(run_dir, progress)
            write_status(run_dir, stage=stage, epoch=epoch)
            if epoch_callback is not None:
                epoch_callback(stage, epoch, row)
    history = [r for r in progress.history if r["stage"] == stage]
    if best.keep_weights and best.epoch is not None:
        model.load_state_dict(best.model)
        pred_norm, rows, kept_epoch = best.pred, best.rows, best.epoch
    else:
        kept_epoch = history[-1]["epoch"]
        if pred_norm is None:  # resumed after the stage's last epoch
            pred_norm, rows = predict_split(ctx, ctx.val_rows)
    kept = next(r for r in history if r["epoch"] == kept_epoch)
    progress.per_stage[stage] = plain({**scalar_items(validation_metrics(pred_norm, rows, ctx.data.samples, spec)),
                                       "kept_epoch": kept_epoch, "select": str(spec.select),
                                       "epochs_run": len(history), "stopped_early": stopped_early})
    progress.stage_rows.append({"stage": stage, "predict": str(spec.predict), "epochs": len(history),
                                "kept_epoch": kept_epoch, "seconds": sum(r["seconds"] for r in history),
                                "precompute_seconds": runner.precompute_seconds,
                                "train_loss": kept["train_loss"], "val_loss": kept["val_loss"]})
    log.info("stage %s done in %.1f s; hands on epoch %d (select: %s)", stage, time.perf_counter() - started,
             kept_epoch, spec.select)
    return pred_norm, rows
