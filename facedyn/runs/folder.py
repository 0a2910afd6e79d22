"""The run folder: the contract between training, the sweep and `facedyn.compare`.

Every run (a `train.py` run, one job of a Hydra multirun, one sweep trial) writes into its own folder:

  config.yaml            the fully resolved config the run used
  overrides.yaml         the command-line overrides (a list of strings), to say what differed
  run_status.json        {"status": running|finished|failed|interrupted, "started", "ended", "stages_done",
                          "stage", "error", "format": RUN_FORMAT}; rewritten atomically at every change
  training_history.json  {"epochs": [ {stage, epoch, train_loss, val_loss, lr, seconds, <val metrics>} ]}
  metrics.json           final metrics of the run (validation split), written when it finishes
  blendshapes.onnx       the converted blendshape graph the run trains and is rebuilt with (its checkpoints'
                         blendshape parameters fit this graph; a later conversion may be shaped differently)
  checkpoints/stage_<s>.pt  one checkpoint per finished stage ({"model": state dict, "stage", "progress"}),
                         the weights the stage handed on (its kept epoch); last.pt while a stage is in
                         progress, for resuming it mid-stage
  predictions*.csv, *.png  results for people
  .lock                  locked (a POSIX record lock) by the one live process writing the folder; holds its
                         pid and host

Who may write a folder, and how that is enforced: facedyn.runs.lock.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from facedyn.utils.io import atomic_write_json

RUN_FORMAT = 1
CONFIG_FILE = "config.yaml"
BLENDSHAPES_GRAPH_FILE = "blendshapes.onnx"
OVERRIDES_FILE = "overrides.yaml"
STATUS_FILE = "run_status.json"
HISTORY_FILE = "training_history.json"
METRICS_FILE = "metrics.json"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.pt"
RUN_MARKERS = (STATUS_FILE, CONFIG_FILE, HISTORY_FILE)  # any of them makes a folder a run folder


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).astimezone().isoformat(timespec="milliseconds")  # durations of short runs


def stage_checkpoint(run_dir: Path, stage: str) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"stage_{stage}.pt"


def last_checkpoint(run_dir: Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / LAST_CHECKPOINT


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


def find_run_dirs(paths: Sequence[Path]) -> Iterator[Path]:
    """Every run folder under the paths (a run folder's subfolders are not searched; hidden folders such as
    Hydra's .hydra/ or submitit's .submitit/ and checkpoints/ hold no runs)."""
    for root in paths:
        for folder, subdirs, files in os.walk(root):
            if any(marker in files for marker in RUN_MARKERS):
                subdirs.clear()
                yield Path(folder)
            else:
                subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and d != CHECKPOINT_DIR)


@dataclass
class RunFiles:
    """A run folder's files as read, whatever state they are in: what is missing or unreadable is None (or
    empty) and named in `problems`."""

    status: dict | None
    history: list[dict]
    metrics: dict | None
    config: Any | None  # a DictConfig
    overrides: list[str]
    problems: list[str] = field(default_factory=list)


def read_run_files(run_dir: Path) -> RunFiles:
    """Read a run folder through this contract (a folder of another version or half-written included)."""
    problems: list[str] = []
    status = _json_dict(run_dir / STATUS_FILE, problems)
    history = _json_dict(run_dir / HISTORY_FILE, problems)
    metrics = _json_dict(run_dir / METRICS_FILE, problems, expected=False)
    if status and status.get("format", 0) != RUN_FORMAT:
        problems.append(f"run format {status.get('format', 'none')} (this version writes {RUN_FORMAT})")
    epochs = [e for e in (history or {}).get("epochs", []) if isinstance(e, dict)]
    return RunFiles(status, epochs, metrics, _config(run_dir / CONFIG_FILE, problems), _overrides(run_dir), problems)


def _json_dict(path: Path, problems: list[str], expected: bool = True) -> dict | None:
    if not path.is_file():
        if expected:
            problems.append(f"no {path.name}")
        return None
    content = read_json(path)
    if not isinstance(content, dict):
        problems.append(f"{path.name} unreadable (half-written?)")
        return None
    return content


def _config(path: Path, problems: list[str]):
    from omegaconf import DictConfig, OmegaConf

    if not path.is_file():
        problems.append(f"no {path.name}")
        return None
    try:
        config = OmegaConf.load(path)
    except Exception:  # any YAML or OmegaConf error: a half-written file
        problems.append(f"{path.name} unreadable")
        return None
    return config if isinstance(config, DictConfig) else None


def _overrides(run_dir: Path) -> list[str]:
    """The run's overrides: overrides.yaml, else Hydra's own copy (runs of older versions)."""
    from omegaconf import OmegaConf

    for path in (run_dir / OVERRIDES_FILE, run_dir / ".hydra" / "overrides.yaml"):
        try:
            content = OmegaConf.to_container(OmegaConf.load(path))
        except Exception:  # missing or unreadable: try the next, else no overrides known
            continue
        if isinstance(content, list):
            return [str(o) for o in content]
    return []
