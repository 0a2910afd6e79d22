"""Going on with an interrupted run: what last.pt and the stage checkpoints hold, and what `resume=` may change.

last.pt holds the model, the optimizer and scheduler of the stage in progress, its best epoch so far and
the run's Progress (history, per-stage metrics): with it a resumed run continues exactly where it stopped.
Without it (a run stopped before its first checkpoint of a stage, or a stage that checkpoints only at its
end), the run goes on after the newest finished stage: each stage checkpoint carries the Progress too.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from facedyn.runs import checkpoints
from facedyn.config import ConfigError, TrainConfig, stage_key
from facedyn.utils.io import atomic_write_json
from facedyn.runs import CONFIG_FILE, HISTORY_FILE, STATUS_FILE, last_checkpoint, read_json, stage_checkpoint

log = logging.getLogger(__name__)
# What `resume=` may change: how the run computes and loads, never what it learns.
RESUMABLE_SETTINGS = ("trainer.progress", "trainer.threads", "trainer.device", "data.num_workers",
                      "data.prefetch_batches", "data.cache_dir")


@dataclass
class Progress:
    """Everything a resumed run needs besides weights; saved in last.pt and every stage checkpoint."""

    history: list[dict] = field(default_factory=list)
    stages_done: list[str] = field(default_factory=list)
    per_stage: dict[str, dict] = field(default_factory=dict)
    stage_rows: list[dict] = field(default_factory=list)


@dataclass
class ResumePoint:
    """Where a run goes on: weights, progress and, mid-stage, the stage's own state (epoch, optimizer, best)."""

    model: dict[str, torch.Tensor]
    progress: Progress
    stage: str
    epoch: int
    optimizer: dict = field(default_factory=dict)
    scheduler: dict = field(default_factory=dict)
    best: Optional[dict] = None
    source: Path = Path()

    @property
    def mid_stage(self) -> bool:
        return bool(self.optimizer)


def plain(obj: Any) -> Any:
    """JSON-plain copy (python floats, lists): safe for weights_only checkpoints and JSON files."""
    return json.loads(json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def write_history(run_dir: Path, progress: Progress) -> None:
    atomic_write_json(run_dir / HISTORY_FILE, {"epochs": progress.history,
                                               "kept_epochs": {s: r.get("kept_epoch") for s, r in progress.per_stage.items()}})


def save_last(run_dir: Path, model: torch.nn.Module, progress: Progress, stage: str, epoch: int,
              optimizer: Optional[torch.optim.Optimizer] = None, scheduler: Any = None, best: Optional[dict] = None) -> None:
    checkpoints.save(last_checkpoint(run_dir), {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else {},
        "scheduler": scheduler.state_dict() if scheduler is not None else {},
        "best": best, "stage": stage, "epoch": epoch, "progress": plain(progress.__dict__),
    })
    write_history(run_dir, progress)


def save_stage(run_dir: Path, model: torch.nn.Module, stage: str, progress: Progress) -> None:
    checkpoints.save(stage_checkpoint(run_dir, stage), {"model": model.state_dict(), "stage": stage,
                                                       "progress": plain(progress.__dict__)})


def resume_point(run_dir: Path, stages: Sequence[str]) -> Optional[ResumePoint]:
    """The state to go on from: last.pt, else the newest stage checkpoint of `stages`; None: start afresh.

    A damaged last.pt is a CheckpointError saying how to go on; the run's status is left as it was.
    """
    path = last_checkpoint(run_dir)
    if path.is_file():
        try:
            state = checkpoints.load(path)
        except checkpoints.CheckpointError as exc:
            finished = [s for s in stages if stage_checkpoint(run_dir, s).is_file()]
            after = f"after stage {finished[-1]} (its checkpoint is intact)" if finished else "from the start"
            raise checkpoints.CheckpointError(
                f"{exc}. To go on {after}, move it aside (mv {path} {path}.damaged) and run resume={run_dir} again") from None
        return ResumePoint(state["model"], Progress(**state["progress"]), str(state["stage"]), int(state["epoch"]),
                           state["optimizer"], state["scheduler"], state.get("best"), path)
    for stage in reversed(stages):
        candidate = stage_checkpoint(run_dir, stage)
        if candidate.is_file():
            state = checkpoints.load(candidate)
            progress = Progress(**state["progress"]) if "progress" in state else _progress_from_history(run_dir, stages, stage)
            return ResumePoint(state["model"], progress, stage, 0, source=candidate)
    return None


def _progress_from_history(run_dir: Path, stages: Sequence[str], last_done: str) -> Progress:
    """Progress of a stage checkpoint written before checkpoints carried it: the history file's rows."""
    done = list(stages[:list(stages).index(last_done) + 1])
    history = (read_json(run_dir / HISTORY_FILE) or {}).get("epochs", [])
    return Progress(history=[r for r in history if r.get("stage") in done], stages_done=done)


def resume_config(run_dir: Path, overrides: Sequence[str]) -> DictConfig:
    """The saved config of the run at run_dir, with the few `overrides` a resume may make; ConfigError otherwise.

    Allowed: RESUMABLE_SETTINGS, and more epochs (`stages.s<x>.epochs`) for a stage not yet finished.
    A finished run is refused: resuming it would rewrite its results.
    """
    saved = run_dir / CONFIG_FILE
    if not saved.is_file():
        raise ConfigError(f"resume={run_dir}: no {CONFIG_FILE} there; is it a facedyn run folder?")
    status = read_json(run_dir / STATUS_FILE) or {}
    if status.get("status") == "finished":
        raise ConfigError(f"resume={run_dir}: that run finished ({status.get('ended', 'time unknown')}); its results stay "
                          f"as they are. To train on from it, start a new run with init_from={run_dir}")
    try:  # onto today's schema: keys added since the run started get their defaults
        cfg = OmegaConf.merge(OmegaConf.structured(TrainConfig), OmegaConf.load(saved))
    except OmegaConfBaseException as exc:
        raise ConfigError(f"resume={run_dir}: its {CONFIG_FILE} does not fit this facedyn version "
                          f"({str(exc).splitlines()[0]}); start a new run with init_from={run_dir}") from None
    done = [s for s in cfg.stages.values() if stage_checkpoint(run_dir, str(s.name)).is_file()]
    refused = []
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if key == "resume" or key.startswith("hydra."):
            continue
        epochs_of = [s for s in cfg.stages.values() if key == f"stages.{stage_key(str(s.name))}.epochs"]
        if key in RESUMABLE_SETTINGS or (epochs_of and epochs_of[0] not in done):
            OmegaConf.update(cfg, key, override.value(), merge=False)
        else:
            refused.append(override.input_line)
    if refused:
        raise ConfigError(f"resume={run_dir} continues the run as it was configured; it cannot change "
                          f"{', '.join(refused)}. Allowed: more epochs of a stage not finished yet "
                          f"(stages.s<stage>.epochs), {', '.join(RESUMABLE_SETTINGS)}; "
                          f"or start a new run with init_from={run_dir}")
    cfg.resume = str(run_dir)
    return cfg
