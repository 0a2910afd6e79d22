"""Run a cross-validation plan: one ordinary training run (facedyn.training.run) per fold and variant, into
the folder facedyn.crossval.layout describes; at the end the table (summary) and the out-of-fold residuals
(residuals) are written.

Rerunning the same command continues: finished fold runs are kept (when their config still matches),
interrupted ones resume where they stopped. A second process writing the same folder is refused.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from facedyn import training
from facedyn.runs import checkpoints
from facedyn.config import compose
from facedyn.training.stages import stage_key
from facedyn.crossval.layout import PLAN_FILE, SHARED_DIR, fold_dir
from facedyn.crossval.residuals import write_residuals
from facedyn.crossval.summary import write_summary
from facedyn.crossval.plan import CrossvalError, CrossvalPlan, Variant, check_shareable
from facedyn.utils.io import atomic_write_json
from facedyn.model import FaceDynModel
from facedyn.runs import CONFIG_FILE, METRICS_FILE, STATUS_FILE, owned, read_json, stage_checkpoint

log = logging.getLogger(__name__)


def default_out(cfg: DictConfig) -> Path:
    return Path(cfg.paths.output_dir) / "crossval" / dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")


def _check_plan(root: Path, plan: CrossvalPlan) -> None:
    """A folder holds one plan's folds: new variants may join it, changed settings may not."""
    saved = read_json(root / PLAN_FILE)
    if saved is None:
        atomic_write_json(root / PLAN_FILE, plan.as_dict())
        return
    mine = plan.as_dict()
    for key in ("folds", "shared_stages", "common"):
        if saved.get(key) != mine[key]:
            raise CrossvalError(f"{root}: it holds a cross-validation with {key}={saved.get(key)}, not {mine[key]}; "
                                "choose another out=")
    atomic_write_json(root / PLAN_FILE, {**mine, "variants": {**saved.get("variants", {}), **mine["variants"]}})


def _flat(cfg: DictConfig | dict, prefix: str = "") -> dict:
    container = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    flat = {}
    for key, value in container.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _run_fold(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> None:
    """Train one fold run, or keep / resume what the folder already holds."""
    status = read_json(run_dir / STATUS_FILE)
    if status is not None:
        saved = OmegaConf.load(run_dir / CONFIG_FILE)
        # Keys only one side has (a newer schema) do not count, nor where the folder was (resume, the
        # variant's own init checkpoint); a different value of anything else does.
        differing = sorted(k for k, v in _flat(cfg).items()
                           if _flat(saved).get(k, v) != v and k not in ("resume", "init_from"))
        if differing:
            raise CrossvalError(f"{run_dir}: made with other settings ({', '.join(differing[:5])}); "
                                "choose another out= or remove that folder")
        if status.get("status") == "finished" and (run_dir / METRICS_FILE).is_file():
            log.info("kept (finished): %s", run_dir)
            return
        log.info("resuming %s (%s)", run_dir, status.get("status"))
        saved.resume = str(run_dir)
        training.run(saved, run_dir, overrides)
        return
    log.info("training %s: %s", run_dir, " ".join(overrides))
    training.run(cfg, run_dir, overrides)


def _variant_init(shared_checkpoint: Path, variant_cfg: DictConfig, groups: set[str], target: Path) -> None:
    """Starting weights of a variant: its own fresh model (seeded as a run seeds it) with the groups the
    shared stages trained taken from their checkpoint; the rest (blendshapes, heads) is what a full run
    of this variant would have at that point."""
    if target.is_file():
        return
    torch.manual_seed(variant_cfg.seed)
    model = FaceDynModel(variant_cfg.model)
    shared = checkpoints.load(shared_checkpoint)
    state = model.state_dict()
    for name in state:
        if name.split(".", 1)[0] in groups:
            state[name] = shared["model"][name]
    checkpoints.save(target, {"model": state, "stage": shared["stage"]})


def run(plan: CrossvalPlan) -> Path:
    """Train every fold of every variant; return the cross-validation folder (the summary is written there)."""
    base_cfg = compose(list(plan.common))
    root = (plan.out or default_out(base_cfg)).resolve()
    with owned(root, what="cross-validation folder",
               advice="another cross-validation is writing it: wait for it to end, or choose another out="):
        log.info("cross-validation folder: %s (rerun with out=<it> to continue)", root)
        _check_plan(root, plan)
        stages_of = {v.label: plan.variant_stages(v) for v in plan.variants}
        for fold in range(plan.folds):
            shared_run = fold_dir(root, SHARED_DIR, fold)
            shared_cfg = None
            if plan.shared_stages:
                overrides = plan.shared_overrides(fold)
                shared_cfg = compose(overrides)
                for variant in plan.variants:  # before training anything: refuse a variant that cannot share
                    full = compose([*plan.common, *variant.overrides, *plan.fold_overrides(fold)])
                    check_shareable(shared_cfg, full, plan, variant)
                _run_fold(shared_cfg, shared_run, overrides)
            for variant in plan.variants:
                _run_variant_fold(plan, variant, fold, root, stages_of[variant.label], shared_run if shared_cfg else None,
                                  shared_cfg)
        write_summary(root)
        write_residuals(root)
    return root


def _run_variant_fold(plan: CrossvalPlan, variant: Variant, fold: int, root: Path, stages: list[str],
                      shared_run: Path | None, shared_cfg: DictConfig | None) -> None:
    stages = [s for s in stages if s not in plan.shared_stages]
    if not stages:
        return
    init_from = None
    if shared_run is not None:
        init_path = root / variant.label / "init" / f"fold_{fold}.pt"
        full = compose([*plan.common, *variant.overrides, *plan.fold_overrides(fold)])
        groups = {g for s in plan.shared_stages for g in shared_cfg.stages[stage_key(s)].trainable}
        _variant_init(stage_checkpoint(shared_run, plan.shared_stages[-1]), full, groups, init_path)
        init_from = str(init_path)
    overrides = plan.variant_overrides(variant, fold, stages, init_from)
    _run_fold(compose(overrides), fold_dir(root, variant.label, fold), overrides)
