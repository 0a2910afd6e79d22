"""Runs a sweep: fills each study up to its budget, stage by stage, sharing the work with other processes.

Everything a process decides comes from the shared storage, so any number of `sweep.py` processes on any
number of machines (one database URL, one study name) cooperate:
- a study is filled until it holds `budget` COMPLETE + PRUNED trials; trials already there count, so
  rerunning the command after a crash resumes instead of starting over;
- a process that finds nothing left to start in a stage (the last trials run elsewhere) waits for them,
  failing and taking over trials whose process died;
- staged mode: the next stage starts from the checkpoint of the best trial of the stage before, read from
  that trial's user attributes; each stage's study records that start checkpoint, so all its trials share it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import optuna
import sqlalchemy.exc
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from facedyn.config import override_key
from facedyn.sweep.config import SweepConfigError
from facedyn.sweep.recover import recover, set_aside_damaged
from facedyn.sweep.report import write_report
from facedyn.sweep.search import lr_key, make_pruner, make_sampler, searched_keys
from facedyn.sweep.storage import fail_dead_trials, open_storage, shown_url, storage_url
from facedyn.training.stages import FINAL_STAGE
from facedyn.sweep.trial import (
    CHECKPOINT_ATTR, DIVERGED_ATTR, INIT_FROM_ATTR, SurplusTrial, SweepError, TrialPlan, objective,
)

log = logging.getLogger(__name__)

JOINT = "all"
BASE_OVERRIDES_ATTR = "base_overrides"
SWEEP_ATTR = "sweep"


@dataclass(frozen=True)
class Sweep:
    """A sweep ready to run: its config, the user's training overrides, where it writes."""

    cfg: DictConfig
    base_overrides: tuple[str, ...]
    init_from: str | None
    sweep_dir: Path
    storage_url: str
    storage: optuna.storages.RDBStorage

    def study_name(self, stage: str) -> str:
        return f"{self.cfg.study_name}.{'joint' if stage == JOINT else 'stage_' + stage}"

    def study_stages(self) -> list[str]:
        return _study_stages(self.cfg)

    def budget(self) -> int:
        return int(self.cfg.trials if self.cfg.mode == "joint" else self.cfg.trials_per_stage)

    def open_study(self, stage: str) -> optuna.Study:
        study = optuna.create_study(
            storage=self.storage, study_name=self.study_name(stage), direction=self.cfg.direction,
            sampler=make_sampler(self.cfg), pruner=make_pruner(self.cfg), load_if_exists=True,
        )
        self._check_same_experiment(study)
        return study

    def _check_same_experiment(self, study: optuna.Study) -> None:
        stored = study.user_attrs.get(BASE_OVERRIDES_ATTR)
        if stored is None:
            study.set_user_attr(BASE_OVERRIDES_ATTR, list(self.base_overrides))
            study.set_user_attr(SWEEP_ATTR, OmegaConf.to_container(self.cfg))
        elif list(stored) != list(self.base_overrides):
            raise SweepConfigError(
                f"study {study.study_name} in {self.storage_url} "
                f"was started with the training overrides {stored}, this command gives {list(self.base_overrides)}:"
                " rerun with the same overrides, or start another sweep with sweep.study_name=<new name>"
            )


def prepare(cfg: DictConfig, train_overrides: Sequence[str]) -> Sweep:
    """Check the command against the training config (composing each study's trial config once) before
    any training, then open the storage."""
    base, init_from = _split_overrides(cfg, train_overrides)
    sweep_dir = _sweeps_root(cfg, base) / cfg.study_name
    _check_composes(cfg, tuple(base), init_from, sweep_dir)
    url = storage_url(cfg, sweep_dir)
    if cfg.recover:
        set_aside_damaged(url)
    sweep = Sweep(cfg, tuple(base), init_from, sweep_dir, url, open_storage(cfg, url))
    if cfg.recover:
        recover(sweep)
    else:
        _check_trials_known(sweep)
    return sweep


def _check_trials_known(sweep: Sweep) -> None:
    """Trial folders the database does not know mean it was deleted or replaced: say how to rebuild it."""
    for stage in sweep.study_stages():
        folders = [p for p in (sweep.sweep_dir / "trials" / stage).glob("*") if p.name.isdigit()]
        if not folders:
            continue
        try:
            known = len(optuna.load_study(study_name=sweep.study_name(stage), storage=sweep.storage).trials)
        except KeyError:
            known = 0
        if max(int(p.name) for p in folders) >= known:
            raise SweepConfigError(
                f"{sweep.sweep_dir / 'trials' / stage} holds {len(folders)} trial folders that the study database "
                f"{shown_url(sweep.storage_url)} does not know (was it deleted or replaced?): rebuild the study from "
                "them with sweep.recover=true, or use another sweep.study_name")


def run(sweep: Sweep) -> Path:
    """Fill every study of the sweep; write the report; return the sweep's folder."""
    try:
        _run_studies(sweep)
    except (sqlalchemy.exc.SQLAlchemyError, AssertionError) as exc:  # the database went away or broke mid-sweep
        if isinstance(exc, AssertionError) and "Should not reach" not in str(exc):
            raise  # optuna's own assertion on a study that lost its tables; any other is a bug to see
        raise SweepError(f"the study database {shown_url(sweep.storage_url)} failed during the sweep "
                         f"({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}): "
                         "if it was deleted or damaged, rebuild it from the trial folders with sweep.recover=true"
                         ) from None
    write_report(sweep)
    return sweep.sweep_dir


def _run_studies(sweep: Sweep) -> None:
    start = sweep.init_from
    stages = sweep.study_stages()
    for stage in stages:
        study = sweep.open_study(stage)
        start = _agreed_start(study, start) if sweep.cfg.mode == "staged" else None
        plan = _plan(sweep.cfg, sweep.base_overrides, sweep.sweep_dir, stage, start)
        log.info("study %s: %d trials, starting from %s", study.study_name, plan.budget, start or "the default init")
        _fill(study, plan, sweep.cfg)
        if sweep.cfg.mode == "staged":
            start = _best_checkpoint(study)


def _split_overrides(cfg: DictConfig, overrides: Sequence[str]) -> tuple[list[str], str | None]:
    """The user's overrides minus init_from (where the first swept stage starts); refuses those the sweep sets."""
    base, init_from = [], None
    swept = set(searched_keys(cfg, [str(s) for s in cfg.stages])) | {"stage", "optimizer.lr"}
    for override in overrides:
        key = override_key(override)
        if key in swept:
            raise SweepConfigError(f"override {override!r}: the sweep sets {key} itself; drop it")
        if key == "init_from":
            if cfg.mode == "joint":
                raise SweepConfigError("init_from=…: a joint sweep trains the whole pipeline from the start")
            init_from = override.partition("=")[2]
        else:
            base.append(override)
    return base, init_from


def _sweeps_root(cfg: DictConfig, base: list[str]) -> Path:
    """sweep.root, or <paths.output_dir>/sweeps beside train.py's runs."""
    if cfg.root:
        return Path(cfg.root)
    from facedyn.config import compose

    try:
        return Path(compose(base).paths.output_dir) / "sweeps"
    except Exception as exc:  # Hydra's and OmegaConf's errors name the bad override
        raise SweepConfigError(f"the training overrides {base} do not compose: {exc}") from exc


def _check_composes(cfg: DictConfig, base: tuple[str, ...], init_from: str | None, sweep_dir: Path) -> None:
    from facedyn.config import compose

    if init_from and not Path(init_from).exists():
        raise SweepConfigError(f"init_from={init_from}: no such run folder or checkpoint")
    for stage in _study_stages(cfg):
        plan = _plan(cfg, base, sweep_dir, stage, init_from)
        values = {key: _any_value(cfg, key) for key in searched_keys(cfg, plan.searched_stages)}
        try:
            composed = compose(plan.overrides(values))
        except Exception as exc:  # Hydra's and OmegaConf's errors name the bad override
            raise SweepConfigError(f"the trials of stage {stage} cannot compose their config: {exc}") from exc
        for key in values:
            if OmegaConf.select(composed, key, default=None) is None:
                raise SweepConfigError(f"sweep: {key} is not a key of the training config (stage {stage})")


def _any_value(cfg: DictConfig, key: str) -> object:
    """A value inside the search space of `key`, to check that the config takes it."""
    for stage in cfg.stages:
        if key == lr_key(str(stage)):
            return float(cfg.lr_range[str(stage)][0])
    for template, spec in cfg.params.items():
        for stage in cfg.stages:
            if template.replace("{stage}", str(stage)) == key:
                if spec.type == "categorical":
                    return spec.choices[0]
                return int(spec.low) if spec.type == "int" else float(spec.low)
    raise KeyError(key)


def _plan(cfg: DictConfig, base: tuple[str, ...], sweep_dir: Path, stage: str, start: str | None) -> TrialPlan:
    searched = tuple(str(s) for s in cfg.stages) if stage == JOINT else (stage,)
    return TrialPlan(
        sweep=cfg, stage=stage, searched_stages=searched,
        last_stage=searched[-1] if stage != JOINT else FINAL_STAGE,
        base_overrides=base, init_from=start,
        trials_dir=(sweep_dir / "trials" / stage).resolve(),
        budget=int(cfg.trials if cfg.mode == "joint" else cfg.trials_per_stage),
    )


def _study_stages(cfg: DictConfig) -> list[str]:
    return [JOINT] if cfg.mode == "joint" else [str(s) for s in cfg.stages]


def _agreed_start(study: optuna.Study, start: str | None) -> str | None:
    """The checkpoint every trial of the stage starts from: the one its study recorded first."""
    if INIT_FROM_ATTR not in study.user_attrs:
        study.set_user_attr(INIT_FROM_ATTR, start)
        return start
    recorded = study.user_attrs[INIT_FROM_ATTR]
    if recorded != start:
        log.warning("study %s started from %s; keeping it (the stage before now says %s)",
                    study.study_name, recorded, start)
    return recorded


def _fill(study: optuna.Study, plan: TrialPlan, cfg: DictConfig) -> None:
    run_trial = objective(plan)
    while True:
        fail_dead_trials(study)
        counts = _counts(study)
        if counts["done"] >= plan.budget:
            return
        if counts["diverged"] > plan.budget:
            raise SweepError(f"study {study.study_name}: {counts['diverged']} trials gave a non-finite "
                             f"{cfg.metric}; see their run folders under {plan.trials_dir}")
        if counts["waiting"] or counts["done"] + counts["running"] < plan.budget:
            study.optimize(run_trial, n_trials=1, catch=(SurplusTrial,), gc_after_trial=True)
        else:
            time.sleep(float(cfg.poll_seconds))  # the last trials run elsewhere: wait for them


def _counts(study: optuna.Study) -> dict[str, int]:
    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    return {
        "done": sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states),
        "running": states.count(TrialState.RUNNING),
        "waiting": states.count(TrialState.WAITING),
        "diverged": sum(bool(t.user_attrs.get(DIVERGED_ATTR)) for t in trials),
    }


def _best_checkpoint(study: optuna.Study) -> str:
    try:
        best = study.best_trial
    except ValueError:
        raise SweepError(f"study {study.study_name}: no trial finished (all pruned or failed), so no "
                         "checkpoint can start the next stage; loosen the pruner or widen the lr range") from None
    checkpoint = best.user_attrs.get(CHECKPOINT_ATTR)
    if not checkpoint or not Path(checkpoint).is_file():
        raise SweepError(f"study {study.study_name}: the best trial {best.number}'s checkpoint {checkpoint} is "
                         "missing (on another machine, the sweep folder must be shared by all of them)")
    return checkpoint
