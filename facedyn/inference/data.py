"""The samples a prediction reads: a dataset (data.*), clinic clips prepared first (videos=), or the run's
own validation videos — read with the run's data settings and checked against what the model knows."""

from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
from omegaconf import DictConfig, OmegaConf

from facedyn.assets import cache_dir
from facedyn.data import DataError
from facedyn.data.config import DataConfig
from facedyn.data.loading import SPLIT_FILE, read_checked
from facedyn.data.samples import Samples
from facedyn.inference import tables
from facedyn.inference.ensemble import EnsemblePredictor
from facedyn.inference.predictor import ModelInfo, Predictor
from facedyn.runs import read_json

log = logging.getLogger(__name__)


@dataclass
class PredictionData:
    samples: Samples
    root: Path
    bad: int
    source: str  # what was predicted, in words
    not_graded: list[tables.NotGraded]  # with videos=: the clips prepare.py skipped, and why


def _changed_settings(given: Any) -> dict:
    """The data.* settings that differ from the schema's defaults: what the user asked for."""
    defaults = OmegaConf.to_container(OmegaConf.structured(DataConfig))
    given = OmegaConf.to_container(given) if OmegaConf.is_config(given) else dict(given)

    def diff(default: Any, value: Any) -> Any:
        if isinstance(default, dict) and isinstance(value, dict):
            out = {k: diff(default.get(k), v) for k, v in value.items() if v != default.get(k)}
            return {k: v for k, v in out.items() if v != {}}
        return value

    return diff(defaults, given)


def _data_settings(cfg: Any, info: ModelInfo, root: Optional[str]) -> tuple[DictConfig, bool]:
    """(data settings, whether they are the run's own dataset): the run's settings, then the user's."""
    base = OmegaConf.structured(DataConfig)
    if info.data_settings:
        base = OmegaConf.merge(base, info.data_settings)
    changed = _changed_settings(cfg.data)
    if root is not None:
        changed["root"] = root
    if "root" in changed:
        changed["kind"] = "folder"
        changed.setdefault("expressions", None)  # every expression folder of the new dataset
    elif base.kind == "synthetic" and set(changed.get("synthetic", {})) - {"root"}:
        changed["synthetic"].setdefault("root", None)  # other generator settings: not the run's dataset folder
    try:
        merged = OmegaConf.merge(base, changed)
    except Exception as exc:
        raise DataError(f"invalid data settings: {str(exc).splitlines()[0]}") from None
    synthetic = [OmegaConf.to_container(c.synthetic) for c in (base, merged)]
    return merged, "root" not in changed and (base.kind != "synthetic" or synthetic[0] == synthetic[1])


def _prepared_videos(cfg: Any, out_dir: Path) -> tuple[str, list[tables.NotGraded]]:
    """videos=<folder>: prepare the clips (facedyn.videos) into a cache folder; returns the dataset root and
    the clips that were skipped, with prepare.py's reasons."""
    from facedyn.videos import PrepareConfig, prepare

    videos = Path(cfg.videos).expanduser().resolve()
    if not videos.is_dir():
        raise DataError(f"videos={cfg.videos}: no such folder")
    key = hashlib.sha256(str(videos).encode()).hexdigest()[:12]
    target = cache_dir() / "prepared" / f"{videos.name}-{key}"
    settings = OmegaConf.merge(OmegaConf.structured(PrepareConfig), cfg.prepare)
    settings.videos = str(videos)
    if OmegaConf.is_missing(settings, "out"):
        settings.out = str(target)
    log.info("preparing the clips under %s into %s", videos, settings.out)
    summary = prepare(settings)
    if Path(summary.report).is_file():
        shutil.copyfile(summary.report, out_dir / "prepare_report.csv")
    if not summary.samples:
        raise DataError(f"videos={cfg.videos}: no usable clip (see {out_dir / 'prepare_report.csv'})")
    return str(summary.out), [tables.NotGraded(o.patient, o.expression, o.relative, o.reason) for o in summary.skipped]


def prediction_data(cfg: Any, predictor: Predictor, out_dir: Path) -> PredictionData:
    """The samples `cfg` names (data.*, videos=), read with the predictor's data settings; DataError (one line)
    when they cannot be predicted."""
    info = predictor.info
    root, not_graded = _prepared_videos(cfg, out_dir) if cfg.videos else (None, [])
    settings, own = _data_settings(cfg, info, root)
    if own and isinstance(predictor, EnsemblePredictor):
        raise DataError(f"run={info.checkpoint}: each video of the cross-validation's dataset trained some of its "
                        "fold models; predict other data: data.root=<dataset>, videos=<clips>, or another synthetic "
                        "set (e.g. data.synthetic.seed=1)")
    if own and info.run_dir is None:
        raise DataError("data.root is not set; point it at the dataset folder: data.root=/path/to/dataset")
    # Labels are optional for prediction; the run's own (labelled) dataset keeps training's setting, so its
    # decoded cache is reused.
    read_cfg, data_root, result = read_checked(settings, out_dir, log, require_labels=own)
    samples = result.samples
    source = f"dataset {data_root}"
    if own:  # the run's own data: only the videos it validated on, never the ones it trained on
        split = read_json(info.run_dir / SPLIT_FILE)
        if not isinstance(split, dict) or "val_videos" not in split:
            raise DataError(f"{info.run_dir / SPLIT_FILE} missing: pass data.root=<dataset> to predict")
        rows = np.flatnonzero(np.isin(samples.video, [str(v) for v in split["val_videos"]]))
        if not len(rows):
            raise DataError(f"none of the run's validation videos ({info.run_dir / SPLIT_FILE}) is in {data_root}; "
                            f"pass data.root=<dataset> to predict")
        samples = Samples.from_arrays({k: v[rows] for k, v in samples.arrays().items()})
        source = f"the run's validation videos of {data_root}"
    if read_cfg.image_size != info.image_size:
        raise DataError(f"data.image_size={read_cfg.image_size}, but the model takes {info.image_size}×{info.image_size} flow images")
    if info.expressions is not None:
        unknown = sorted(set(samples.expression.tolist()) - set(info.expressions))
        if unknown:
            raise DataError(
                f"{data_root} holds expression(s) {', '.join(unknown)} that the run ({info.run_dir}) was not trained "
                f"on (it knows {', '.join(info.expressions)}); pick known ones with data.expressions=[…]")
    return PredictionData(samples, data_root, len(result.bad), source, not_graded)
