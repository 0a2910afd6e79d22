"""The data layer: read the clinic's dataset layout, check it, cache it, split it by video, augment it.

Light on import (no torch) so that the synthetic generator and TensorFlow child processes can use its
submodules; load_training_data and friends load on first use.
"""

from __future__ import annotations

from facedyn.data.errors import DataError
from facedyn.utils.lazy import lazy_attributes

_LAZY = {
    "load_training_data": "facedyn.data.loading",
    "TrainingData": "facedyn.data.loading",
    "DataConfig": "facedyn.data.config",
    "Samples": "facedyn.data.samples",
    "FaceDynDataset": "facedyn.data.dataset",
    "make_loader": "facedyn.data.dataset",
    "loader_workers": "facedyn.data.dataset",
}

__all__ = ["DataError", *_LAZY]

__getattr__ = lazy_attributes(__name__, _LAZY)
