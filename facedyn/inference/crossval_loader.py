"""A cross-validation folder as a torch ensemble: every finished fold's final model, and the out-of-fold
residuals of that stage (facedyn.crossval.residuals) to calibrate its intervals.

A fold counts when its run finished (run_status.json `finished`, metrics.json written); its model is the
weights of the last stage it trained, or of `stage=` when given (then any fold with that stage's checkpoint
counts). Folds that do not count are named in the log and in model.json and left out, or refused with
folds=all.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from facedyn.crossval.layout import RESIDUALS_FILE, VariantFolder
from facedyn.crossval.residuals import ResidualsError, read_residuals
from facedyn.data.loading import SPLIT_FILE
from facedyn.inference.ensemble import Calibration, EnsemblePredictor
from facedyn.inference.predictor import RunError
from facedyn.runs import METRICS_FILE, STATUS_FILE, read_json, stage_checkpoint

log = logging.getLogger(__name__)
FOLD_POLICIES = ("finished", "all")  # folds=: leave unfinished folds out, or refuse them


def fold_model(variant: VariantFolder, fold: int, stage: Optional[str]) -> tuple[Optional[Path], Optional[str], str]:
    """(run folder, stage, '') of a fold's model, or (None, None, why it has none)."""
    run_dirs = variant.run_dirs(fold)
    if stage is not None:
        for run_dir in reversed(run_dirs):
            if stage_checkpoint(run_dir, stage).is_file():
                return run_dir, stage, ""
        return None, None, f"no stage {stage} checkpoint"
    if not run_dirs:
        return None, None, "not started"
    final = run_dirs[-1]
    status = read_json(final / STATUS_FILE) or {}
    metrics = read_json(final / METRICS_FILE)
    if status.get("status") != "finished" or not isinstance(metrics, dict) or not metrics.get("stages"):
        state = status.get("status", "not started")
        return None, None, f"{state}" + (f" in stage {status['stage']}" if status.get("stage") else "")
    return final, str(metrics["stages"][-1]), ""


def _dataset(run_dir: Path) -> str:
    split = read_json(run_dir / SPLIT_FILE) or {}
    return str(split.get("root", "the cross-validation's dataset"))


def load_crossval(variant: VariantFolder, stage: Optional[str] = None, folds: str = "finished", device: str = "cpu",
                  batch_size: int = 128, precision: str = "fp32", calibrate: bool = True) -> EnsemblePredictor:
    """The torch ensemble of a cross-validation variant; RunError (one line) when it cannot be made."""
    from facedyn.inference.run_loader import load_run

    if folds not in FOLD_POLICIES:
        raise RunError(f"folds={folds}: one of {', '.join(FOLD_POLICIES)}")
    chosen: dict[int, tuple[Path, str]] = {}
    left_out: dict[int, str] = {}
    for fold in range(variant.folds):
        run_dir, fold_stage, why = fold_model(variant, fold, stage)
        if run_dir is None:
            left_out[fold] = why
        else:
            chosen[fold] = (run_dir, fold_stage)
    named = "; ".join(f"fold {k}: {why}" for k, why in left_out.items())
    advice = f"rerun the cross-validation with out={variant.root} to finish it"
    if not chosen:
        raise RunError(f"run={variant.path}: no finished fold to predict with ({named}); {advice}")
    if left_out and folds == "all":
        raise RunError(f"run={variant.path}: folds=all, but not every fold has finished ({named}); {advice}, "
                       "or leave folds=all out to predict with the finished ones")
    if left_out:
        log.warning("ensemble of %s: left out %s", variant.path, named)
    stages = sorted({fold_stage for _, fold_stage in chosen.values()})
    if len(stages) > 1:
        raise RunError(f"run={variant.path}: its folds ended in different stages ({', '.join(stages)}); "
                       "choose one: stage=<stage>")
    residuals = None
    if calibrate:  # before the models load: a missing file is found at once
        try:
            residuals = read_residuals(variant, stages[0], list(chosen))
        except ResidualsError as exc:
            raise RunError(str(exc)) from None
    members = [load_run(run_dir, stage=fold_stage, device=device, batch_size=batch_size, precision=precision)
               for run_dir, fold_stage in chosen.values()]
    ensemble = EnsemblePredictor(members, list(chosen), variant.path, left_out=left_out)
    if residuals is not None:
        first_run = next(iter(chosen.values()))[0]
        ensemble.calibration = Calibration.of(
            residuals, ensemble.folds,
            f"{variant.path / RESIDUALS_FILE}: the stage {stages[0]} fold models' grades of their own validation "
            f"videos of {_dataset(first_run)}, which each never trained on")
    log.info("ensemble of %d fold models of %s (stage %s)", len(members), variant.path, stages[0])
    return ensemble
