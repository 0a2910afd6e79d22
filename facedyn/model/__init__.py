"""The two-branch model (network: the flow branch, the landmark features, the heads and fusion) and its config
schema and vocabulary (config).

Light on import (no torch): the schema and the names stages are checked against load without the network.
"""

from __future__ import annotations

from facedyn.utils.lazy import lazy_attributes

_LAZY = {
    "FaceDynModel": "facedyn.model.network",
    "build_model": "facedyn.model.network",
    "FlowWeightsReport": "facedyn.model.flow_branch",
    "WeightsUnavailable": "facedyn.model.flow_branch",
    "NUM_SCORES": "facedyn.model.flow_branch",
    "PairedFeatures": "facedyn.model.features",
}

__all__ = [*_LAZY]

__getattr__ = lazy_attributes(__name__, _LAZY)
