"""The two-branch model (network) and its config schema and vocabulary (config).

Light on import (no torch): the schema and the names stages are checked against load without the network.
"""

from __future__ import annotations

from facedyn.utils.lazy import lazy_attributes

_LAZY = {name: "facedyn.model.network" for name in (
    "FaceDynModel", "FlowWeightsReport", "PairedFeatures", "WeightsUnavailable", "build_model", "NUM_SCORES")}

__all__ = [*_LAZY]

__getattr__ = lazy_attributes(__name__, _LAZY)
