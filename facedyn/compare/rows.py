"""A run folder as one row of the comparison table (facedyn.runs' contract, read whatever state it is in).

Half-written folders and folders of older versions become rows with a note, never skipped silently.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from facedyn.config import override_key
from facedyn.training.stages import STAGE_ORDER
from facedyn.metrics import HEADLINE_METRICS
from facedyn.runs import owner_alive, read_run_files

# One name per column: the table's header, the CSV's, and what --columns and --sort take.
COLUMNS = ("when", "run", "kind", "sweep", "stage", "overrides", "epochs", "best_val_loss", "best_epoch",
           *HEADLINE_METRICS, "duration_s", "status", "note")
RUN_NAME_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})_(\d{2}-\d{2}-\d{2})")


@dataclass
class Run:
    """One run folder as read from disk; `row` is its line of the table."""

    path: Path
    row: dict[str, Any]
    overrides: list[str] = field(default_factory=list)
    curve: list[dict] = field(default_factory=list)


def read_run(run_dir: Path, root: Path, defaults: DictConfig | None) -> Run:
    """A run folder's table row; whatever is missing or broken becomes an empty cell and a note."""
    files = read_run_files(run_dir)
    notes = list(files.problems)
    epochs = files.history
    final = (files.metrics or {}).get("final") if isinstance((files.metrics or {}).get("final"), dict) else None
    final = final or (epochs[-1] if epochs else {})
    best = min((e for e in epochs if number(e.get("val_loss")) is not None),
               key=lambda e: e["val_loss"], default=None)
    kind, sweep = _kind(run_dir)
    row = {
        "when": _when(run_dir, files.status),
        "run": _relative(run_dir, root),
        "kind": kind,
        "sweep": sweep,
        "stage": _stage(files.config, files.status, epochs),
        "overrides": " ".join(_differing(files.overrides, files.config, defaults)),
        "epochs": len(epochs),
        "best_val_loss": number(best["val_loss"]) if best else None,
        "best_epoch": f"{best.get('stage', '?')}:{best.get('epoch', '?')}" if best else None,
        **{key: number(final.get(key)) for key in HEADLINE_METRICS},
        "duration_s": _duration(files.status, epochs),
        "status": _status(files.status, notes),
        "note": "; ".join(notes),
    }
    return Run(run_dir, row, files.overrides, epochs)


def _differing(overrides: list[str], config: DictConfig | None, defaults: DictConfig | None) -> list[str]:
    """The overrides that changed something: a value equal to the default is left out; the stage has its column."""
    kept = []
    for override in overrides:
        key = override_key(override)
        if key == "stage":
            continue
        if config is not None and defaults is not None and _same(config, defaults, key):
            continue
        kept.append(override)
    return kept


def _same(config: DictConfig, defaults: DictConfig, key: str) -> bool:
    try:
        ran_with = OmegaConf.select(config, key, default=None)
        default = OmegaConf.select(defaults, key, default=None)
    except Exception:  # a key OmegaConf cannot select (another version's config): keep the override
        return False
    return ran_with is not None and _plain(ran_with) == _plain(default)


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value) if isinstance(value, DictConfig) else value


def _kind(run_dir: Path) -> tuple[str, str]:
    parts = run_dir.resolve().parts
    if "trials" in parts[:-1]:
        at = len(parts) - 1 - parts[::-1].index("trials")
        if at >= 1 and at + 1 < len(parts):
            return "sweep trial", parts[at - 1]
    if "multirun" in parts[:-1]:
        return "multirun", ""
    return "run", ""


def _stage(config: DictConfig | None, status: dict | None, epochs: list[dict]) -> str:
    names: list[str] = []
    if config is not None and isinstance(config.get("stages"), DictConfig):
        names = [str(s.get("name", k)) for k, s in config.stages.items() if isinstance(s, DictConfig)]
    if not names:
        names = list(dict.fromkeys(str(e["stage"]) for e in epochs if "stage" in e))
    if not names and status and status.get("stage"):
        names = [str(status["stage"])]
    if tuple(sorted(names, key=_stage_order)) == STAGE_ORDER:
        return "all"
    return "+".join(sorted(names, key=_stage_order))


def _stage_order(name: str) -> int:
    return STAGE_ORDER.index(name) if name in STAGE_ORDER else len(STAGE_ORDER)


def _when(run_dir: Path, status: dict | None) -> str:
    started = _time(status.get("started")) if status else None
    if started is None:
        match = RUN_NAME_TIME.match(run_dir.name) or RUN_NAME_TIME.match(run_dir.parent.name)
        started = dt.datetime.strptime(" ".join(match.groups()), "%Y-%m-%d %H-%M-%S") if match else None
    if started is None:
        started = dt.datetime.fromtimestamp(run_dir.stat().st_mtime)
    return started.strftime("%Y-%m-%d %H:%M:%S")


def _time(text: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(text)) if text else None
    except ValueError:
        return None


def _duration(status: dict | None, epochs: list[dict]) -> float | None:
    if status:
        started, ended = _time(status.get("started")), _time(status.get("ended"))
        if started and ended and (started.tzinfo is None) == (ended.tzinfo is None):
            return round((ended - started).total_seconds(), 1)
    seconds = [number(e.get("seconds")) for e in epochs]
    return round(sum(s for s in seconds if s is not None), 1) if any(s is not None for s in seconds) else None


def _status(status: dict | None, notes: list[str]) -> str:
    if status is None:
        return "incomplete"
    state = str(status.get("status", "unknown"))
    if state == "running" and not _still_running(status):
        notes.append(f"process {status.get('pid')} is gone")
        return "interrupted"
    return state


def _still_running(status: dict) -> bool:
    return owner_alive(status.get("pid"), status.get("host"))


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve())) or "."
    except ValueError:
        return str(path)


def default_config() -> DictConfig | None:
    """train.py's defaults, to tell which overrides changed something; None when conf/ cannot compose."""
    try:
        from facedyn.config import compose

        return compose([])
    except Exception:  # an older or broken conf/: overrides are then shown as given
        return None

