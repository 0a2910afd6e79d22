"""The run folder: the contract between training, the sweep and `facedyn.compare`.

Every run (a `train.py` run, one job of a Hydra multirun, one sweep trial) writes into its own folder:

  config.yaml            the fully resolved config the run used
  overrides.yaml         the command-line overrides (a list of strings), to say what differed
  run_status.json        {"status": running|finished|failed|interrupted, "started", "ended", "stages_done",
                          "stage", "error", "format": RUN_FORMAT}; rewritten atomically at every change
  training_history.json  {"epochs": [ {stage, epoch, train_loss, val_loss, lr, seconds, <val metrics>} ]}
  metrics.json           final metrics of the run (validation split), written when it finishes
  checkpoints/stage_<s>.pt  one checkpoint per finished stage; last.pt for resuming mid-stage
  predictions*.csv, *.png  results for people

A run that is still "running" in run_status.json but whose process is gone was interrupted.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from facedyn.io import atomic_write_json

RUN_FORMAT = 1
CONFIG_FILE = "config.yaml"
OVERRIDES_FILE = "overrides.yaml"
STATUS_FILE = "run_status.json"
HISTORY_FILE = "training_history.json"
METRICS_FILE = "metrics.json"
CHECKPOINT_DIR = "checkpoints"


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).astimezone().isoformat(timespec="milliseconds")  # durations of short runs


def stage_checkpoint(run_dir: Path, stage: str) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"stage_{stage}.pt"


def read_json(path: Path) -> Any | None:
    """A JSON file's content, or None when it is missing or half-written."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def write_status(run_dir: Path, **fields: Any) -> dict:
    """Merge `fields` into run_status.json (atomically) and return the new status."""
    path = Path(run_dir) / STATUS_FILE
    status = read_json(path) or {"format": RUN_FORMAT, "started": now_iso(), "pid": os.getpid()}
    status.update(fields)
    atomic_write_json(path, status)
    return status


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (signal 0 probes without touching it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True
