"""The errors every entry point reports as one line without a traceback: the user's data, files or config."""

from __future__ import annotations


def user_errors() -> tuple[type[Exception], ...]:
    """Exception types that mean bad input, not a bug. A function so that `--help` need not import torch."""
    from facedyn.assets import AssetError
    from facedyn.runs.checkpoints import CheckpointError
    from facedyn.utils.config import ConfigError
    from facedyn.data import DataError
    from facedyn.model import WeightsUnavailable
    from facedyn.runs import RunFolderInUse

    return AssetError, CheckpointError, ConfigError, DataError, RunFolderInUse, WeightsUnavailable
