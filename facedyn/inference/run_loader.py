"""Find a run's weights and rebuild its model from the run's own config.yaml, as training built it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig, OmegaConf

from facedyn.runs import checkpoints
from facedyn.data.loading import SPLIT_FILE
from facedyn.conf import CONF_DIR
from facedyn.crossval.layout import CrossvalFolderError, variant_folder
from facedyn.model.config import ModelConfig
from facedyn.training.stages import FINAL_STAGE, STAGE_ORDER, stage_key
from facedyn.inference.predictor import ModelInfo, RunError
from facedyn.model import FaceDynModel, build_model
from facedyn.runs import (BLENDSHAPES_GRAPH_FILE, CHECKPOINT_DIR, CONFIG_FILE, METRICS_FILE, STATUS_FILE,
                          find_run_dirs, read_json, stage_checkpoint)

log = logging.getLogger(__name__)


def finished_stages(run_dir: Path) -> list[str]:
    return [stage for stage in STAGE_ORDER if stage_checkpoint(run_dir, stage).is_file()]


def find_newest_finished_run(output_dir: Path, stage: str = FINAL_STAGE) -> Path:
    """The run under output_dir that finished (status `finished`, a checkpoint of `stage`) most recently."""
    candidates = []
    for run_dir in find_run_dirs([Path(output_dir)]):
        status = read_json(run_dir / STATUS_FILE)
        checkpoint = stage_checkpoint(run_dir, stage)
        if isinstance(status, dict) and status.get("status") == "finished" and checkpoint.is_file():
            candidates.append((checkpoint.stat().st_mtime, run_dir))
    if not candidates:
        raise RunError(f"no finished run with a stage {stage} checkpoint under {output_dir} (paths.output_dir); "
                       f"train one with `python train.py`, or pass run=<run folder or checkpoint>")
    return max(candidates)[1]


def resolve_checkpoint(path: str | Path, stage: Optional[str] = None) -> tuple[Path, Path, str]:
    """(run folder, checkpoint file, stage) for `run=<run folder or checkpoint>` and `stage=`."""
    path = Path(path).expanduser()
    if path.is_file():
        run_dir = path.parent.parent if path.parent.name == CHECKPOINT_DIR else path.parent
        if not (run_dir / CONFIG_FILE).is_file():
            raise RunError(f"run={path}: no {CONFIG_FILE} in {run_dir}; a checkpoint must stay inside its run folder")
        saved_stage = _checkpoint_payload(path).get("stage")
        if stage is not None and saved_stage is not None and str(saved_stage) != stage:
            raise RunError(f"run={path} holds stage {saved_stage}, not stage={stage}; drop stage= or pass the run folder")
        return run_dir, path, str(saved_stage or stage or FINAL_STAGE)
    if not path.is_dir():
        raise RunError(f"run={path}: no such run folder or checkpoint file")
    if not (path / CONFIG_FILE).is_file():
        raise RunError(f"run={path}: not a facedyn run folder (no {CONFIG_FILE})")
    stage = stage or FINAL_STAGE
    if stage not in STAGE_ORDER:
        raise RunError(f"stage={stage}: unknown stage; stages are {', '.join(STAGE_ORDER)}")
    checkpoint = stage_checkpoint(path, stage)
    if not checkpoint.is_file():
        done = finished_stages(path)
        offer = f"pass stage={done[-1]} to predict with its weights" if done else "it has no weights to predict with"
        raise RunError(f"run={path} has not finished stage {stage} (finished: {', '.join(done) or 'none'}); {offer}")
    return path, checkpoint, stage


def _checkpoint_payload(path: Path) -> dict:
    try:
        payload = checkpoints.load(path)
    except checkpoints.CheckpointError as exc:
        raise RunError(str(exc)) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), dict):
        raise RunError(f"{path}: not a facedyn checkpoint (no model weights in it)")
    return payload


def run_config(run_dir: Path) -> DictConfig:
    try:
        return OmegaConf.load(run_dir / CONFIG_FILE)
    except Exception as exc:  # any YAML/OmegaConf error: say which file
        raise RunError(f"{run_dir / CONFIG_FILE}: unreadable ({str(exc).splitlines()[0]})") from None


def model_config(cfg: DictConfig, run_dir: Path) -> ModelConfig:
    """The run's model settings, checked against today's schema; its weights come from the checkpoint."""
    try:
        model_cfg = OmegaConf.merge(OmegaConf.structured(ModelConfig), cfg.model)
    except Exception as exc:
        raise RunError(f"{run_dir / CONFIG_FILE}: model settings this version cannot build "
                       f"({str(exc).splitlines()[0]})") from None
    model_cfg.flow.weights = "none"  # no ImageNet download: the checkpoint holds every weight
    return model_cfg


def stage_predicts(cfg: DictConfig, stage: str) -> str:
    """Which output a stage trained (flow | landmarks | fused): the run's stage settings, else the default's."""
    key = stage_key(stage)
    if "stages" in cfg and key in cfg.stages:
        return str(cfg.stages[key].predict)
    return str(OmegaConf.load(CONF_DIR / "stage" / f"{stage}.yaml").predict)


def trained_expressions(run_dir: Path, cfg: DictConfig) -> Optional[tuple[str, ...]]:
    """The expression folders the run trained on: recorded in split.json, else the run's data.expressions."""
    split = read_json(run_dir / SPLIT_FILE)
    if isinstance(split, dict) and split.get("expressions"):
        return tuple(split["expressions"])
    listed = cfg.get("data", {}).get("expressions")
    return tuple(listed) if listed else None


def build_for_checkpoint(run_dir: Path, checkpoint: Path, stage: str) -> tuple[FaceDynModel, ModelInfo, DictConfig]:
    """The run's model with the checkpoint's weights, in eval mode, and what it was made from."""
    cfg = run_config(run_dir)
    payload = _checkpoint_payload(checkpoint)
    graph = run_dir / BLENDSHAPES_GRAPH_FILE  # runs before it was kept: the cached conversion
    model, _ = build_model(model_config(cfg, run_dir), graph if graph.is_file() else None)
    problem = checkpoints.state_mismatch(model, payload["model"])
    if problem:
        raise RunError(f"{checkpoint} does not fit the model of {run_dir / CONFIG_FILE} (model.*): {problem}; "
                       f"was it made with another model config, or by another facedyn version?")
    model.load_state_dict(payload["model"])
    model.eval()
    info = ModelInfo(run_dir=run_dir, checkpoint=checkpoint, stage=stage, predict=stage_predicts(cfg, stage),
                     expressions=trained_expressions(run_dir, cfg), image_size=int(cfg.data.image_size),
                     backend="torch", data_settings=OmegaConf.to_container(cfg.data, resolve=True),
                     model_settings=OmegaConf.to_container(cfg.model, resolve=True))
    return model, info, cfg


def run_precision(run_dir: Path) -> str:
    """The precision the run validated its final model in (metrics.json), fp32 when it does not say."""
    metrics = read_json(Path(run_dir) / METRICS_FILE)
    return str(metrics.get("precision", "fp32")) if isinstance(metrics, dict) else "fp32"


def load_run(path: str | Path, stage: Optional[str] = None, device: str = "cpu", batch_size: int = 128,
             precision: str = "fp32", folds: str = "finished", calibrate: bool = True):
    """A TorchPredictor for a run folder (its stage-4 weights, or `stage`'s) or one of its checkpoints; for a
    cross-validation folder (or one of its variant folders) the EnsemblePredictor of its fold models
    (facedyn.inference.crossval_loader: folds=finished|all, calibrate: read the residuals for intervals).

    precision: fp32 | bf16 | run (what the run validated with: its own validation predictions come out again).
    """
    from facedyn.inference.torch_predictor import TorchPredictor

    try:
        variant = variant_folder(Path(path))
    except CrossvalFolderError as exc:
        raise RunError(f"run={path}: {exc}") from None
    if variant is not None:
        from facedyn.inference.crossval_loader import load_crossval

        return load_crossval(variant, stage, folds, device, batch_size, precision, calibrate)
    run_dir, checkpoint, stage = resolve_checkpoint(path, stage)
    model, info, _ = build_for_checkpoint(run_dir, checkpoint, stage)
    precision = run_precision(run_dir) if precision == "run" else precision
    log.info("model: %s (stage %s, predicts %s, %s)", checkpoint, stage, info.predict, precision)
    return TorchPredictor(model, info, device=device, batch_size=batch_size, precision=precision)
