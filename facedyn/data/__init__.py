"""The data layer: read the clinic's dataset layout, check it, cache it, split it by video, augment it.

Light on import (no torch) so that the synthetic generator and TensorFlow child processes can use its
submodules; prepare_data and friends load on first use.
"""

from __future__ import annotations

from typing import Any

from facedyn.data.errors import DataError

_LAZY = {
    "prepare_data": "facedyn.data.prepare",
    "PreparedData": "facedyn.data.prepare",
    "DataConfig": "facedyn.data.config",
    "Samples": "facedyn.data.samples",
    "FaceDynDataset": "facedyn.data.dataset",
    "make_loader": "facedyn.data.dataset",
    "loader_workers": "facedyn.data.dataset",
}

__all__ = ["DataError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'facedyn.data' has no attribute {name!r}")
