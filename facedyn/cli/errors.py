"""The errors every entry point reports as one line without a traceback: the user's data, files or config."""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path
from typing import Optional, TypeVar

T = TypeVar("T")


def user_errors() -> tuple[type[Exception], ...]:
    """Exception types that mean bad input, not a bug. A function so that `--help` need not import torch."""
    from facedyn.assets import AssetError
    from facedyn.runs.checkpoints import CheckpointError
    from facedyn.utils.config import ConfigError
    from facedyn.data import DataError
    from facedyn.model import WeightsUnavailable
    from facedyn.runs import RunFolderInUse

    return AssetError, CheckpointError, ConfigError, DataError, RunFolderInUse, WeightsUnavailable


def _file_handlers(folder: Path) -> list[logging.FileHandler]:
    return [h for h in logging.getLogger().handlers
            if isinstance(h, logging.FileHandler) and Path(h.baseFilename).parent == folder.resolve()]


def record_in_log_files(folder: Path, message: str) -> None:
    """Write an error into the log files in `folder` only: the console shows it once, as SystemExit's line."""
    record = logging.getLogger("facedyn").makeRecord("facedyn", logging.ERROR, __file__, 0, message, None, None)
    for handler in _file_handlers(folder):
        handler.handle(record)


def discard_refused_folder(folder: Path, stop: Path) -> None:
    """Remove the output folder Hydra made for a run that was refused before writing anything but its log
    (and lock), and the parents up to `stop` that it leaves empty: a refusal leaves nothing behind."""
    folder = folder.resolve()
    if not folder.is_dir() or any(p.name not in {"predict.log", ".lock"} for p in folder.iterdir()):
        return
    for handler in _file_handlers(folder):
        logging.getLogger().removeHandler(handler)
        handler.close()
    shutil.rmtree(folder, ignore_errors=True)
    stop = stop.resolve()
    for parent in folder.parents:
        if parent == stop.parent or not parent.is_relative_to(stop):
            break
        try:
            parent.rmdir()  # only when empty
        except OSError:
            break


def dotlist_settings(schema: type[T], argv: list[str]) -> Optional[T]:
    """`key=value` arguments as an instance of the dataclass `schema` (OmegaConf's dot-list); None after
    printing one line that names the problem and the known settings (an unknown key, a wrong type)."""
    from omegaconf import OmegaConf

    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.from_dotlist(argv)))
    except Exception as exc:  # unknown key, wrong type, not key=value
        print(f"error: {str(exc).splitlines()[0]} (settings: {', '.join(schema.__dataclass_fields__)})", file=sys.stderr)
        return None
