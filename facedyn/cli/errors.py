"""The errors every entry point reports as one line without a traceback: the user's data, files or config."""

from __future__ import annotations

import sys
from typing import Optional, TypeVar

T = TypeVar("T")


def user_errors() -> tuple[type[Exception], ...]:
    """Exception types that mean bad input, not a bug. A function so that `--help` need not import torch."""
    from facedyn.assets import AssetError
    from facedyn.checkpoints import CheckpointError
    from facedyn.config import ConfigError
    from facedyn.data import DataError
    from facedyn.model import WeightsUnavailable
    from facedyn.runs import RunFolderInUse

    return AssetError, CheckpointError, ConfigError, DataError, RunFolderInUse, WeightsUnavailable


def dotlist_settings(schema: type[T], argv: list[str]) -> Optional[T]:
    """`key=value` arguments as an instance of the dataclass `schema` (OmegaConf's dot-list); None after
    printing one line that names the problem and the known settings (an unknown key, a wrong type)."""
    from omegaconf import OmegaConf

    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.from_dotlist(argv)))
    except Exception as exc:  # unknown key, wrong type, not key=value
        print(f"error: {str(exc).splitlines()[0]} (settings: {', '.join(schema.__dataclass_fields__)})", file=sys.stderr)
        return None
