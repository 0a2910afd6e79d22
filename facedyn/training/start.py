"""The weights a run starts from: a resume point, the previous stage's checkpoint (its `init: previous`), or a
fresh model (ImageNet in the flow backbone, fetched only when it would be used); and the run's own copy of
the blendshape graph those weights fit."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig, OmegaConf

from facedyn import blendshapes
from facedyn.model import FaceDynModel, FlowWeightsReport, build_model
from facedyn.runs import BLENDSHAPES_GRAPH_FILE, CHECKPOINT_DIR, checkpoints
from facedyn.training.config import StageInit
from facedyn.training.resume import ResumePoint
from facedyn.training.stages import stage_key
from facedyn.utils.io import atomic_write_bytes

log = logging.getLogger(__name__)


def starting_model(cfg: DictConfig, run_dir: Path, first_stage: str,
                   point: Optional[ResumePoint]) -> tuple[FaceDynModel, FlowWeightsReport]:
    """The model with the weights the run starts from, and where its flow weights came from."""
    start = None if point is not None else _starting_checkpoint(cfg, first_stage)
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
                 f" epoch {point.loop['epoch']}" if point.mid_stage else "", point.source.name)
        report = FlowWeightsReport(True, f"resumed from {point.source}")
    elif start is not None:
        setting = f"init_from={cfg.init_from}" if cfg.init_from else f"stage {first_stage}'s starting weights"
        checkpoints.load_weights(model, start, setting)
        log.info("Initial weights: %s", start)
        report = FlowWeightsReport(True, f"checkpoint {start}")
    return model, report


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
