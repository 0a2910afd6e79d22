"""The task function: train the configured stage(s) into a run folder and return the final metrics.

`train.py` (Hydra), `sweep.py` (Optuna trials), `facedyn.crossval` and the tests all call `run()`; nothing
here depends on how the config was composed. The run folder's layout is described in facedyn.runs. A
stage is fully described by its conf/stage/<s>.yaml: facedyn.training.pipeline runs the stages, each
through a stage loop (facedyn.training.loop) and its hooks (facedyn.training.hooks).
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Optional, Sequence

from omegaconf import DictConfig, OmegaConf

from facedyn.config import validate
from facedyn.runs import CONFIG_FILE, OVERRIDES_FILE, now_iso, owned, write_status
from facedyn.training import tracking
from facedyn.training.hooks.base import Hook
from facedyn.training.pipeline import train_stages
from facedyn.training.resume import refuse_finished, resume_point
from facedyn.utils.config import ConfigError
from facedyn.utils.io import atomic_write_text

log = logging.getLogger(__name__)


def run(cfg: DictConfig, run_dir: str | os.PathLike, overrides: Sequence[str] = (), hooks: Sequence[Hook] = ()) -> dict:
    """Train cfg's stages into run_dir; return the final validation metrics (flat `val_*` keys).

    The process holds run_dir while it trains (a second one is refused: facedyn.runs.RunFolderInUse).
    `hooks` join every stage's own (facedyn.training.hooks.base); one that raises in epoch_end stops the
    run, which is marked failed, or with the exception's `run_status` when it has one (the sweep prunes
    trials this way: status "pruned", which the experiment tracker then records too).
    """
    run_dir = Path(run_dir).resolve()
    with owned(run_dir):
        handler = _attach_log_file(run_dir)
        tracker = tracking.start(cfg, run_dir)
        try:
            return _run(cfg, run_dir, overrides, [tracker, *hooks])
        finally:
            tracker.close(run_dir)
            if handler is not None:
                logging.getLogger().removeHandler(handler)
                handler.close()


def _run(cfg: DictConfig, run_dir: Path, overrides: Sequence[str], hooks: Sequence[Hook]) -> dict:
    stages = validate(cfg)  # before any data or model loads
    resuming = bool(cfg.resume)
    point = None
    if resuming:
        if Path(cfg.resume).resolve() != run_dir:
            raise ConfigError(f"resume={cfg.resume} must be the run folder being continued ({run_dir})")
        refuse_finished(run_dir)
        point = resume_point(run_dir, stages)  # a damaged last.pt stops here, the status untouched
    else:
        atomic_write_text(run_dir / CONFIG_FILE, OmegaConf.to_yaml(cfg, resolve=True))
        atomic_write_text(run_dir / OVERRIDES_FILE, OmegaConf.to_yaml(OmegaConf.create(list(overrides))))
    write_status(run_dir, status="running", stages=stages, pid=os.getpid(), host=socket.gethostname(),
                 error=None, **({"resumed": now_iso()} if resuming else {"started": now_iso()}))
    try:
        result = train_stages(cfg, run_dir, stages, point, hooks)
    except KeyboardInterrupt:  # Ctrl-C, and SIGTERM in train.py: the run can go on with resume=
        write_status(run_dir, status="interrupted", ended=now_iso())
        raise
    except BaseException as exc:
        # A hook may stop a run on purpose: its exception names the status (the sweep's pruning).
        stopped = getattr(exc, "run_status", None)
        write_status(run_dir, status=stopped or "failed", ended=now_iso(),
                     error=None if stopped else f"{type(exc).__name__}: {exc}")
        raise
    write_status(run_dir, status="finished", ended=now_iso())
    return result


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
