"""The task function: train the configured stage(s) into a run folder and return the final metrics.

`train.py` (Hydra), `sweep.py` (Optuna trials) and the tests all call `run()`; nothing here depends on
how the config was composed. The run folder's layout is described in facedyn/runs.py.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import socket
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from facedyn import checkpoints, plots, tracking
from facedyn.config import STAGE_ORDER, ConfigError, stage_key, stages_to_run
from facedyn.data import loader_workers, make_loader, prepare_data
from facedyn.data.prefetch import Prefetcher
from facedyn.epochs import (Runtime, precompute_branch_outputs, predict_all, tensor_batches, timed,
                            train_epoch)
from facedyn.freezing import apply_trainable, set_train_mode
from facedyn.io import atomic_write_json, atomic_write_text
from facedyn.loss import masked_mse
from facedyn.metrics import SCALE, evaluate, scalar_items
from facedyn.model import FaceDynModel, build_model
from facedyn.optim import make_optimizer, make_scheduler
from facedyn.results import summary_text, write_predictions
from facedyn.runs import (CONFIG_FILE, HISTORY_FILE, METRICS_FILE, OVERRIDES_FILE, now_iso, stage_checkpoint,
                          write_status)

log = logging.getLogger(__name__)
EpochCallback = Callable[[str, int, dict], None]
HEAD_GROUPS = {"landmark_head", "fusion"}


@dataclass
class Progress:
    """Everything a resumed run needs besides weights; saved in every epoch checkpoint."""

    history: list[dict] = field(default_factory=list)
    stages_done: list[str] = field(default_factory=list)
    per_stage: dict[str, dict] = field(default_factory=dict)
    stage_rows: list[dict] = field(default_factory=list)


def _plain(obj: Any) -> Any:
    """JSON-plain copy (python floats, lists): safe for weights_only checkpoints and JSON files."""
    return json.loads(json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def make_runtime(cfg: DictConfig) -> Runtime:
    trainer = cfg.trainer
    if trainer.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(trainer.device)
    precision = trainer.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision not in ("fp32", "bf16"):
        raise ConfigError(f"trainer.precision must be auto, fp32 or bf16, not {precision!r}")
    if trainer.threads > 0:
        torch.set_num_threads(trainer.threads)
    return Runtime(device=device, autocast_dtype=torch.bfloat16 if precision == "bf16" else None,
                   channels_last=trainer.channels_last and device.type == "cuda", progress=trainer.progress)


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


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

    epoch_callback(stage, epoch, row) runs after each epoch's validation; if it raises, the run is
    marked failed and the exception propagates (the sweep prunes trials this way).
    """
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
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
    stages = stages_to_run(cfg)
    resuming = bool(cfg.resume)
    if resuming and Path(cfg.resume).resolve() != run_dir:
        raise ConfigError(f"resume={cfg.resume} must be the run folder being continued ({run_dir})")
    if not resuming:
        atomic_write_text(run_dir / CONFIG_FILE, OmegaConf.to_yaml(cfg, resolve=True))
        atomic_write_text(run_dir / OVERRIDES_FILE, OmegaConf.to_yaml(OmegaConf.create(list(overrides))))
    write_status(run_dir, status="running", stages=stages, pid=os.getpid(), host=socket.gethostname(),
                 error=None, **({"resumed": now_iso()} if resuming else {"started": now_iso()}))
    try:
        result = _train(cfg, run_dir, stages, resuming, epoch_callback)
    except KeyboardInterrupt:
        write_status(run_dir, status="interrupted", ended=now_iso())
        raise
    except BaseException as exc:
        write_status(run_dir, status="failed", ended=now_iso(), error=f"{type(exc).__name__}: {exc}")
        raise
    write_status(run_dir, status="finished", ended=now_iso())
    return result


def _initial_weights(cfg: DictConfig, model: FaceDynModel, first_stage: str) -> None:
    spec = cfg.stages[stage_key(first_stage)]
    if spec.init == "none":
        return
    if spec.init != "previous":
        raise ConfigError(f"stages.{stage_key(first_stage)}.init must be previous or none, not {spec.init!r}")
    position = STAGE_ORDER.index(first_stage)
    if position == 0:
        raise ConfigError("stage 1 has no stage before it: set its init to none")
    path = checkpoints.find_init_checkpoint(cfg.init_from, STAGE_ORDER[position - 1], Path(cfg.paths.output_dir))
    log.info("Initial weights: %s", path)
    model.load_state_dict(checkpoints.load(path)["model"])


def _train(cfg: DictConfig, run_dir: Path, stages: list[str], resuming: bool,
           epoch_callback: Optional[EpochCallback]) -> dict:
    started = time.perf_counter()
    runtime = make_runtime(cfg)
    seed_everything(cfg.seed, cfg.trainer.deterministic)
    data = prepare_data(cfg.data, run_dir, log, expressions=cfg.model.expressions)
    torch.manual_seed(cfg.seed)
    model, weights_report = build_model(cfg.model)
    model.to(runtime.device)

    state = checkpoints.load(checkpoints.last_checkpoint(run_dir)) if resuming and checkpoints.last_checkpoint(run_dir).is_file() else None
    if state is not None:
        model.load_state_dict(state["model"])
        progress = Progress(**state["progress"])
        log.info("Resuming %s after stage %s epoch %d", run_dir, state["stage"], state["epoch"])
    else:
        progress = Progress()
        _initial_weights(cfg, model, stages[0])

    val_rows = np.asarray(data.val_indices)
    for stage in stages:
        if stage in progress.stages_done:
            continue
        resume_state = state if state is not None and state["stage"] == stage else None
        pred_norm, rows = _train_stage(cfg, stage, model, data, runtime, run_dir, progress, resume_state,
                                       epoch_callback)
        progress.stages_done.append(stage)
        checkpoints.save(stage_checkpoint(run_dir, stage), {"model": model.state_dict(), "stage": stage})
        spec = cfg.stages[stage_key(stage)]
        write_predictions(run_dir, f"predictions_stage_{stage}", data.samples, rows, pred_norm)
        progress.per_stage[stage] = _plain(scalar_items(_metrics(pred_norm, rows, data, spec)))
        _save_last(run_dir, model, None, None, stage, spec.epochs, progress)

    final_stage = stages[-1]
    final_spec = cfg.stages[stage_key(final_stage)]
    val_set = data.make_dataset(val_rows, augment=False)
    pred_norm, rows = predict_all(model, _loader(val_set, cfg, shuffle=False), _batches(len(val_set), cfg.trainer.eval_batch_size),
                                  final_spec.predict, runtime)
    final = _metrics(pred_norm, rows, data, final_spec)
    baseline = _baseline_metrics(data, final_spec)
    write_predictions(run_dir, "predictions", data.samples, rows, pred_norm)
    metrics = _plain({
        "final": final, "per_stage": progress.per_stage, "baseline": scalar_items(baseline),
        "flow_pretrained": weights_report.pretrained, "flow_weights": weights_report.source,
        "stages": stages, "predict": final_spec.predict,
        "train_samples": int(len(data.train_indices)), "val_samples": int(len(val_rows)),
        "seconds": time.perf_counter() - started,
    })
    atomic_write_json(run_dir / METRICS_FILE, metrics)
    plots.training_curves(progress.history, run_dir / "training_curves.png")
    plots.stage_losses(progress.history, run_dir / "stage_losses.png")
    for score in ("dynamics", "synkinesis"):
        if f"val_confusion_{score}" in final:
            plots.confusion(final[f"val_confusion_{score}"], score, run_dir / f"confusion_{score}.png")
    log.info("\n%s", summary_text(run_dir, progress.stage_rows, final, baseline, weights_report.pretrained))
    return {**scalar_items(metrics["final"]), "flow_pretrained": weights_report.pretrained}


def _batches(count: int, batch_size: int) -> int:
    return math.ceil(count / batch_size)


def _loader(dataset, cfg: DictConfig, shuffle: bool, epoch: int = 0, batch_size: int | None = None,
            persistent: bool = False):
    on_cuda = torch.cuda.is_available() and cfg.trainer.device != "cpu"
    return make_loader(dataset, batch_size=batch_size or cfg.trainer.eval_batch_size, shuffle=shuffle,
                       epoch=epoch, seed=cfg.seed, num_workers=loader_workers(cfg.data.num_workers, on_cuda),
                       pin_memory=on_cuda, persistent=persistent)


def _epoch_of(loader, epoch: int):
    """`loader` (a persistent one, kept for the stage) set to serve `epoch`."""
    loader.sampler.set_epoch(epoch)
    return loader


def _targets(data, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = data.samples
    return (np.stack([s.dynamics[rows], s.synkinesis[rows]], axis=1),
            np.stack([s.dynamics_valid[rows], s.synkinesis_valid[rows]], axis=1))


def _loss(pred_norm: np.ndarray, rows: np.ndarray, data, spec) -> float:
    true, valid = _targets(data, rows)
    weights = torch.tensor([spec.loss_weights.dynamics, spec.loss_weights.synkinesis])
    return float(masked_mse(torch.from_numpy(pred_norm), torch.from_numpy(true).float(),
                            torch.from_numpy(valid).float(), weights))


def _metrics(pred_norm: np.ndarray, rows: np.ndarray, data, spec) -> dict:
    true, valid = _targets(data, rows)
    metrics = evaluate(pred_norm, true, valid, data.samples.video[rows], data.samples.expression[rows])
    return {"val_loss": _loss(pred_norm, rows, data, spec), **{f"val_{k}": v for k, v in metrics.items()}}


def _baseline_metrics(data, spec) -> dict:
    """Predict the training split's mean grade for every validation frame."""
    train_true, train_valid = _targets(data, np.asarray(data.train_indices))
    means = np.array([train_true[train_valid[:, c], c].mean() if train_valid[:, c].any() else 0.0 for c in range(2)])
    rows = np.asarray(data.val_indices)
    return _metrics(np.tile(means / SCALE, (len(rows), 1)), rows, data, spec)


def _save_last(run_dir: Path, model, optimizer, scheduler, stage: str, epoch: int, progress: Progress) -> None:
    checkpoints.save(checkpoints.last_checkpoint(run_dir), {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else {},
        "scheduler": scheduler.state_dict() if scheduler is not None else {},
        "stage": stage, "epoch": epoch, "progress": _plain(progress.__dict__),
    })
    atomic_write_json(run_dir / HISTORY_FILE, {"epochs": progress.history})


def _train_stage(cfg: DictConfig, stage: str, model: FaceDynModel, data, runtime: Runtime, run_dir: Path,
                 progress: Progress, resume_state: Optional[dict], epoch_callback: Optional[EpochCallback]
                 ) -> tuple[np.ndarray, np.ndarray]:
    spec = cfg.stages[stage_key(stage)]
    trainable = list(spec.trainable)
    if spec.precompute_frozen and not set(trainable) <= HEAD_GROUPS:
        raise ConfigError(f"stages.{stage_key(stage)}.precompute_frozen needs only head groups {sorted(HEAD_GROUPS)} "
                          f"to train, not {trainable}")
    lr = cfg.optimizer.lr if cfg.optimizer.lr is not None else spec.lr
    optimizer = make_optimizer(cfg.optimizer, apply_trainable(model, trainable), lr)
    batch_size = spec.batch_size or cfg.data.batch_size
    train_rows, val_rows = np.asarray(data.train_indices), np.asarray(data.val_indices)
    scheduler = make_scheduler(cfg.scheduler, optimizer, spec.epochs * _batches(len(train_rows), batch_size),
                               spec.warmup_fraction)
    first_epoch = 1
    if resume_state is not None and resume_state["optimizer"]:
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        first_epoch = resume_state["epoch"] + 1
    weights = torch.tensor([spec.loss_weights.dynamics, spec.loss_weights.synkinesis], device=runtime.device)
    stage_index = STAGE_ORDER.index(stage)
    augment = spec.augment and not spec.precompute_frozen
    train_set = data.make_dataset(train_rows, augment=augment)
    val_set = data.make_dataset(val_rows, augment=False)
    eval_batches = _batches(len(val_set), cfg.trainer.eval_batch_size)
    precompute_start = time.perf_counter()
    if spec.precompute_frozen:  # frozen branches: their outputs once per stage, not every epoch
        train_cache = precompute_branch_outputs(model, _loader(train_set, cfg, shuffle=False),
                                                _batches(len(train_set), cfg.trainer.eval_batch_size), spec.predict, runtime)
        val_cache = precompute_branch_outputs(model, _loader(val_set, cfg, shuffle=False), eval_batches, spec.predict, runtime)
    started = time.perf_counter()
    precompute_seconds = started - precompute_start
    pred_norm, rows = np.zeros((0, 2)), val_rows
    # Loader-fed stages: every pass of the stage, loaded ahead in a background thread (facedyn.data.prefetch)
    # from two loaders kept for the stage, so their worker processes start once, not every pass.
    passes = []
    if not spec.precompute_frozen:
        train_loader = _loader(train_set, cfg, shuffle=True, batch_size=batch_size, persistent=True)
        val_loader = _loader(val_set, cfg, shuffle=False, persistent=True)
        passes = [pass_ for epoch in range(first_epoch, spec.epochs + 1) for pass_ in (
            (("train", epoch), partial(_epoch_of, train_loader, stage_index * 1000 + epoch)),
            (("validate", epoch), partial(_epoch_of, val_loader, 0)))]
    with Prefetcher(passes, depth=cfg.data.prefetch_batches if passes else 0) as ahead:
        for epoch in range(first_epoch, spec.epochs + 1):
            epoch_start = time.perf_counter()
            set_train_mode(model, trainable)
            description = f"stage {stage} epoch {epoch}/{spec.epochs}"
            waiting = [0.0]
            lr_now = optimizer.param_groups[0]["lr"]
            if spec.precompute_frozen:
                order = torch.randperm(len(train_rows), generator=torch.Generator().manual_seed(
                    int(np.random.default_rng([cfg.seed, stage_index, epoch]).integers(2**62))))
                result = train_epoch(model, tensor_batches(train_cache, batch_size, order), _batches(len(train_rows), batch_size),
                                     spec.predict, optimizer, scheduler, weights, runtime, description, heads_only=True)
                pred_norm, rows = predict_all(model, tensor_batches(val_cache, cfg.trainer.eval_batch_size), eval_batches,
                                              spec.predict, runtime, heads_only=True)
            else:
                train_batches = timed(ahead.next_pass(("train", epoch)), time.perf_counter, waiting)
                result = train_epoch(model, train_batches, _batches(len(train_set), batch_size), spec.predict,
                                     optimizer, scheduler, weights, runtime, description)
                val_batches = timed(ahead.next_pass(("validate", epoch)), time.perf_counter, waiting)
                pred_norm, rows = predict_all(model, val_batches, eval_batches, spec.predict, runtime)
            metrics = scalar_items(_metrics(pred_norm, rows, data, spec))
            row = _plain({"stage": stage, "epoch": epoch, "train_loss": result.loss, **metrics, "lr": lr_now,
                          "seconds": time.perf_counter() - epoch_start, "data_wait_seconds": waiting[0]})
            progress.history.append(row)
            log.info("stage %s epoch %d/%d: train loss %.4f, val loss %.4f, val MAE dyn %.3f syn %.3f (%.1f s)",
                     stage, epoch, spec.epochs, row["train_loss"], row["val_loss"], row.get("val_mae_dynamics", float("nan")),
                     row.get("val_mae_synkinesis", float("nan")), row["seconds"])
            if spec.precompute_frozen:  # its epochs cost less than a checkpoint: a resumed run redoes the stage
                atomic_write_json(run_dir / HISTORY_FILE, {"epochs": progress.history})
            else:
                _save_last(run_dir, model, optimizer, scheduler, stage, epoch, progress)
            write_status(run_dir, stage=stage, epoch=epoch)
            if epoch_callback is not None:
                epoch_callback(stage, epoch, row)
    stage_history = [r for r in progress.history if r["stage"] == stage]
    progress.stage_rows.append({"stage": stage, "predict": spec.predict, "epochs": spec.epochs,
                                "seconds": sum(r["seconds"] for r in stage_history),
                                "precompute_seconds": precompute_seconds,
                                "train_loss": stage_history[-1]["train_loss"], "val_loss": stage_history[-1]["val_loss"]})
    if len(pred_norm) == 0:  # resumed after the stage's last epoch: predictions are recomputed
        pred_norm, rows = predict_all(model, _loader(val_set, cfg, shuffle=False), eval_batches, spec.predict, runtime)
    log.info("stage %s done in %.1f s", stage, time.perf_counter() - started)
    return pred_norm, rows
