"""facedyn.blendshapes.load(): find the model, convert it once, hand out independent torch copies."""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

from facedyn.assets import blendshapes_tflite, sha256_of

if TYPE_CHECKING:
    from facedyn.blendshapes.torch_model import BlendshapeModel


def load(path: str | os.PathLike | None = None, graph: str | os.PathLike | None = None) -> BlendshapeModel:
    """A fresh, trainable copy of MediaPipe's blendshape model: (N, 146, 2) landmark pixels -> (N, 52) scores.

    `path` (config: model.blendshapes.path) is a face_blendshapes.tflite or a face_landmarker.task;
    without it the model is found as facedyn.assets.blendshapes_tflite() describes. `graph` instead names
    a converted graph (graph_for's output, as a run folder keeps it): the model is built from it as it is.
    Every call returns an independent module (its own parameters), e.g. one for expression and one for
    baseline landmarks.
    """
    onnx_path = Path(graph) if graph is not None else graph_for(path)
    return copy.deepcopy(_converted(str(onnx_path), sha256_of(onnx_path)))


def graph_for(path: str | os.PathLike | None = None) -> Path:
    """The validated, batch-native ONNX graph of the model `path` names (see load), converted once and cached.

    A run keeps a copy: tf2onnx does not always emit the same graph structure (about one conversion in four
    has a Reshape more), and a checkpoint's parameters only fit the graph they were trained in."""
    # onnx, onnx2torch (and torchvision through it) load here, not in every process that imports facedyn
    from facedyn.blendshapes.onnx_cache import onnx_model_for

    return onnx_model_for(blendshapes_tflite(path))


@functools.lru_cache(maxsize=4)
def _converted(onnx_path: str, onnx_sha256: str) -> BlendshapeModel:
    # Keyed by content as well as path, so a rebuilt cache entry is converted again.
    from facedyn.blendshapes.torch_model import convert

    return convert(Path(onnx_path))
