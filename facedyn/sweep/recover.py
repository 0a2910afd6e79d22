"""Rebuild a sweep's studies from its trial folders (`sweep.recover=true`), when the database was deleted or
damaged: every trial folder holds the trial's config (so its searched values), its history (the values it
reported) and its final metrics.

Trials keep their numbers (a folder that finished nothing becomes a FAIL trial in its place), so the
folders of new trials never collide with old ones; a damaged SQLite file is moved aside, not deleted.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState, create_trial

from facedyn.config import override_key
from facedyn.training.stages import FINAL_STAGE
from facedyn.runs import METRICS_FILE, read_run_files, stage_checkpoint
from facedyn.sweep.config import SweepConfigError
from facedyn.sweep.search import distributions
from facedyn.sweep.storage import HOST_ATTR, PID_ATTR, RUN_DIR_ATTR, check_database, shown_url
from facedyn.sweep.trial import CHECKPOINT_ATTR, INIT_FROM_ATTR, METRICS_ATTR

log = logging.getLogger(__name__)


def set_aside_damaged(url: str) -> Path | None:
    """Move a damaged SQLite study file aside (…damaged-<time>); returns where it went, None if it was fine."""
    try:
        check_database(url)
        return None
    except SweepConfigError:
        path = Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None
        if path is None or not path.is_file():
            raise
        aside = path.with_name(f"{path.name}.damaged-{dt.datetime.now():%Y%m%d-%H%M%S}")
        path.rename(aside)
        log.warning("%s is damaged: moved to %s", path, aside)
        return aside


def recover(sweep) -> dict[str, int]:
    """Add each study's trials from <sweep>/trials/<stage>/<n>/; {stage: trials rebuilt}. Refuses a study that
    already holds trials (recovery only rebuilds what is missing)."""
    rebuilt = {}
    for stage in sweep.study_stages():
        folders = _trial_folders(sweep.sweep_dir / "trials" / stage)
        study = sweep.open_study(stage)
        if study.get_trials(deepcopy=False):
            raise SweepConfigError(f"sweep.recover=true: study {study.study_name} in {shown_url(sweep.storage_url)} "
                                   "already holds trials; recovery only rebuilds a deleted or damaged database")
        plan_stages = [str(s) for s in sweep.cfg.stages] if stage == "all" else [stage]
        spaces = distributions(sweep.cfg, plan_stages)
        starts = set()
        for number in range(max(folders, default=-1) + 1):
            trial, start = _trial(folders.get(number), spaces, sweep.cfg, FINAL_STAGE if stage == "all" else stage)
            study.add_trial(trial)
            if start is not None:
                starts.add(start)
        if len(starts) == 1:
            study.set_user_attr(INIT_FROM_ATTR, starts.pop())
        rebuilt[stage] = len(folders)
        log.info("study %s rebuilt from %d trial folders", study.study_name, len(folders))
    return rebuilt


def _trial_folders(trials_dir: Path) -> dict[int, Path]:
    if not trials_dir.is_dir():
        return {}
    return {int(p.name): p for p in trials_dir.iterdir() if p.is_dir() and p.name.isdigit()}


def _trial(run_dir: Path | None, spaces: dict, cfg: DictConfig, last_stage: str):
    """The FrozenTrial a trial folder describes, and the checkpoint it started from."""
    if run_dir is None:
        return create_trial(state=TrialState.FAIL), None
    files = read_run_files(run_dir)
    status = (files.status or {}).get("status")
    start = _init_from(files.overrides)
    params = {}
    if files.config is not None:
        for key in spaces:
            value = OmegaConf.select(files.config, key, default=None)
            if value is not None:
                params[key] = value
    attrs = {RUN_DIR_ATTR: str(run_dir), INIT_FROM_ATTR: start, HOST_ATTR: (files.status or {}).get("host"),
             PID_ATTR: (files.status or {}).get("pid")}
    reported = {i: float(row[cfg.metric]) for i, row in enumerate(files.history) if cfg.metric in row}
    final = (files.metrics or {}).get("final") or {}
    distributions = {k: spaces[k] for k in params}
    if status == "finished" and cfg.metric in final and len(params) == len(spaces):
        metrics = {k: float(v) for k, v in final.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        attrs.update({METRICS_ATTR: metrics, CHECKPOINT_ATTR: str(stage_checkpoint(run_dir, last_stage))})
        return create_trial(state=TrialState.COMPLETE, value=float(final[cfg.metric]), params=params,
                            distributions=distributions, intermediate_values=reported, user_attrs=attrs), start
    if status == "pruned" and len(params) == len(spaces):
        last = reported[max(reported)] if reported else None  # optuna's value of a pruned trial
        return create_trial(state=TrialState.PRUNED, value=last, params=params, distributions=distributions,
                            intermediate_values=reported, user_attrs=attrs), start
    if status == "finished" and not (run_dir / METRICS_FILE).is_file():
        log.warning("%s: finished but no %s; recovered as a failed trial", run_dir, METRICS_FILE)
    return create_trial(state=TrialState.FAIL, params=params, distributions=distributions, user_attrs=attrs), start


def _init_from(overrides: list[str]) -> str | None:
    return next((o.partition("=")[2] for o in overrides if override_key(o) == "init_from"), None)
