"""Experiment tracking (`logger=tensorboard|mlflow|none`): one tracker per run, a hook of every stage.

- tensorboard (default): every epoch's history row (train/val loss, val metrics, lr, seconds) as scalars
  `stage_<s>/<key>` at step = epoch, in event files under <run folder>/tensorboard/ (written with
  tensorboardX, which needs no TensorFlow: importing TensorFlow beside torchvision crashes). View them with
  `tensorboard --logdir outputs`.
- mlflow: one MLflow run per training run: the resolved config as params, the same per-epoch metrics, the
  final metrics (`final/<key>`), the result files as artifacts, tags (run folder, status, and the sweep's
  study and stage for sweep trials). Store: `sqlite:///<paths.output_dir>/mlflow/mlflow.db` unless
  `logger.tracking_uri` names another (an MLflow server: http://...).
- none: nothing.

Tracking never stops or changes training: the first failure (a server gone, a full disk) is one warning,
and the tracker is off for the rest of the run.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from omegaconf import DictConfig, OmegaConf

from facedyn.training.config import LOGGERS, LoggerConfig
from facedyn.utils.config import ConfigError
from facedyn.training.hooks.base import EpochEnd, Hook
from facedyn.runs import CONFIG_FILE, HISTORY_FILE, METRICS_FILE, OVERRIDES_FILE, STATUS_FILE, read_json

if TYPE_CHECKING:
    from facedyn.training.loop import StageLoop

log = logging.getLogger(__name__)

TENSORBOARD_DIR = "tensorboard"
MLFLOW_DIR = "mlflow"
# History keys that are not metrics of the epoch.
NOT_SCALARS = ("stage", "epoch")
ARTIFACT_PATTERNS = (CONFIG_FILE, OVERRIDES_FILE, STATUS_FILE, HISTORY_FILE, METRICS_FILE, "split.json",
                     "predictions*.csv", "*.png")
MLFLOW_PARAMS_PER_CALL = 100  # MLflow's batch limit


class Tracker(Hook):
    """No tracking; the interface the trainer calls. Subclasses implement _epoch and _close."""

    def epoch_end(self, loop: StageLoop, epoch: EpochEnd) -> None:
        self._guarded(self._epoch, loop.stage, epoch.epoch, epoch.row)

    def close(self, run_dir: Path) -> None:
        self._guarded(self._close, Path(run_dir))

    def _epoch(self, stage: str, epoch: int, row: dict) -> None:
        pass

    def _close(self, run_dir: Path) -> None:
        pass

    def _guarded(self, call: Callable, *args: Any) -> None:
        if getattr(self, "_off", False):
            return
        try:
            call(*args)
        except Exception as exc:  # any failure of the tracking backend: training goes on without it
            self._off = True
            log.warning("experiment tracking (%s) failed, training goes on without it: %s: %s",
                        type(self).__name__, type(exc).__name__, str(exc).strip().splitlines()[0] if str(exc).strip() else "")


def start(cfg: DictConfig, run_dir: Path) -> Tracker:
    """The tracker `cfg.logger` asks for; a backend that cannot start warns and tracks nothing."""
    settings = cfg.get("logger") or OmegaConf.structured(LoggerConfig(name="none"))  # runs of older versions
    if settings.name not in LOGGERS:
        raise ConfigError(f"logger.name={settings.name!r}: must be one of {', '.join(LOGGERS)}")
    kinds = {"tensorboard": TensorBoardTracker, "mlflow": MlflowTracker, "none": Tracker}
    try:
        return kinds[settings.name](cfg, settings, Path(run_dir)) if settings.name != "none" else Tracker()
    except Exception as exc:  # unreachable store, missing package: warn, never stop training
        log.warning("experiment tracking (logger=%s) could not start, training goes on without it: %s: %s",
                    settings.name, type(exc).__name__, exc)
        return Tracker()


def scalars(row: dict) -> dict[str, float]:
    """An epoch's numbers, keyed as they are logged: stage_<s>/<key>."""
    return {f"stage_{row['stage']}/{key}": float(value) for key, value in row.items()
            if key not in NOT_SCALARS and isinstance(value, (int, float)) and not isinstance(value, bool)}


class TensorBoardTracker(Tracker):
    def __init__(self, cfg: DictConfig, settings: DictConfig, run_dir: Path) -> None:
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(str(run_dir / TENSORBOARD_DIR), flush_secs=10)

    def _epoch(self, stage: str, epoch: int, row: dict) -> None:
        for key, value in scalars(row).items():
            self.writer.add_scalar(key, value, epoch)
        self.writer.flush()

    def _close(self, run_dir: Path) -> None:
        self.writer.close()


class MlflowTracker(Tracker):
    def __init__(self, cfg: DictConfig, settings: DictConfig, run_dir: Path) -> None:
        import mlflow

        # A dead server must cost seconds, not MLflow's default of 7 retries with growing waits.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        store = Path(cfg.paths.output_dir).resolve() / MLFLOW_DIR
        uri = settings.tracking_uri
        if not uri:
            store.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{store / 'mlflow.db'}"
        self.client = mlflow.MlflowClient(tracking_uri=uri)
        experiment = self.client.get_experiment_by_name(settings.experiment)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(
            settings.experiment, artifact_location=settings.artifact_location or (store / "artifacts").as_uri())
        tags = {"run_dir": str(run_dir), "mlflow.runName": run_dir.name, **dict(settings.tags)}
        self.run_id = self.client.create_run(experiment_id, tags=tags).info.run_id
        params = _flat(OmegaConf.to_container(cfg, resolve=True))
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), MLFLOW_PARAMS_PER_CALL):
            self.client.log_batch(self.run_id, params=items[i:i + MLFLOW_PARAMS_PER_CALL])

    def _epoch(self, stage: str, epoch: int, row: dict) -> None:
        from mlflow.entities import Metric

        now = _millis()
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, epoch) for k, v in scalars(row).items()])

    def _close(self, run_dir: Path) -> None:
        from mlflow.entities import Metric

        final = (read_json(run_dir / METRICS_FILE) or {}).get("final") or {}
        now = _millis()
        metrics = [Metric(f"final/{k}", float(v), now, 0) for k, v in final.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)
        for pattern in ARTIFACT_PATTERNS:
            for path in sorted(run_dir.glob(pattern)):
                self.client.log_artifact(self.run_id, str(path))
        status = str((read_json(run_dir / STATUS_FILE) or {}).get("status", "unknown"))
        self.client.set_tag(self.run_id, "status", status)
        ended = {"finished": "FINISHED", "interrupted": "KILLED", "pruned": "KILLED"}.get(status, "FAILED")
        self.client.set_terminated(self.run_id, status=ended)


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): tree}


def _millis() -> int:
    return int(time.time() * 1000)
