"""Going on with an interrupted run: what last.pt and the stage checkpoints hold, and what `resume=` may change.

last.pt holds the model's weights, the run's Progress (history, per-stage metrics) and the stage loop's
state (epoch, optimizer, lr schedule and every hook's state: facedyn.training.loop.StageLoop.state_dict):
with it a resumed run continues exactly where it stopped. It exists while a stage is in progress; without
it (a run stopped before its first checkpoint of a stage, or a stage that checkpoints only at its end),
the run goes on after the newest finished stage: each stage checkpoint carries the Progress too.
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
from facedyn.config import TrainConfig
from facedyn.training.stages import stage_key
from facedyn.utils.config import ConfigError
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
    """Where a run goes on: weights, progress and, mid-stage, the stage loop's state."""

    model: dict[str, torch.Tensor]
    progress: Progress
    stage: str
    loop: Optional[dict] = None  # StageLoop.state_dict() of a stage in progress; None after a finished stage
    source: Path = Path()

    @property
    def mid_stage(self) -> bool:
        return self.loop is not None


def plain(obj: Any) -> Any:
    """JSON-plain copy (python floats, lists): safe for weights_only checkpoints and JSON files."""
    return json.loads(json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def write_history(run_dir: Path, progress: Progress) -> None:
    atomic_write_json(run_dir / HISTORY_FILE, {"epochs": progress.history,
                                               "kept_epochs": {s: r.get("kept_epoch") for s, r in progress.per_stage.items()}})


def save_last(run_dir: Path, model: torch.nn.Module, progress: Progress, stage: str, loop: dict) -> None:
    """last.pt of a stage in progress: the weights, the run's progress and `loop` (StageLoop.state_dict())."""
    checkpoints.save(last_checkpoint(run_dir), {"model": model.state_dict(), "stage": stage,
                                                "progress": plain(progress.__dict__), "loop": loop})


def save_stage(run_dir: Path, model: torch.nn.Module, stage: str, progress: Progress) -> None:
    """The finished stage's checkpoint (the weights it hands on); last.pt, of the stage in progress, goes."""
    checkpoints.save(stage_checkpoint(run_dir, stage), {"model": model.state_dict(), "stage": stage,
                                                       "progress": plain(progress.__dict__)})
    last_checkpoint(run_dir).unlink(missing_ok=True)


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
        return ResumePoint(state["model"], Progress(**state["progress"]), str(state["stage"]), _loop_state(state), path)
    for stage in reversed(stages):
        candidate = stage_checkpoint(run_dir, stage)
        if candidate.is_file():
            state = checkpoints.load(candidate)
            progress = Progress(**state["progress"]) if "progress" in state else _progress_from_history(run_dir, stages, stage)
            return ResumePoint(state["model"], progress, stage, source=candidate)
    return None


def _loop_state(state: dict[str, Any]) -> Optional[dict]:
    """The stage loop's state in last.pt; that of older versions (optimizer, scheduler and best epoch at the
    top level; none after a finished stage) in today's shape."""
    if "loop" in state:
        return state["loop"]
    if not state.get("optimizer"):
        return None
    return {"epoch": int(state["epoch"]), "optimizer": state["optimizer"], "scheduler": state["scheduler"],
            "hooks": {"selection": state["best"]} if state.get("best") else {}}


def refuse_finished(run_dir: Path) -> None:
    """ConfigError when the run at run_dir finished: resuming it would rewrite its results."""
    status = read_json(run_dir / STATUS_FILE) or {}
    if status.get("status") == "finished":
        raise ConfigError(f"resume={run_dir}: that run finished ({status.get('ended', 'time unknown')}); its results "
                          f"stay as they are. To train on from it, start a new run with init_from={run_dir}")


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
    refuse_finished(run_dir)
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
