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


def load(path: str | os.PathLike | None = None) -> BlendshapeModel:
    """A fresh, trainable copy of MediaPipe's blendshape model: (N, 146, 2) landmark pixels -> (N, 52) scores.

    `path` (config: model.blendshapes.path) is a face_blendshapes.tflite or a face_landmarker.task;
    without it the model is found as facedyn.assets.blendshapes_tflite() describes. Every call returns
    an independent module (its own parameters), e.g. one for expression and one for baseline landmarks.
    """
    # onnx, onnx2torch (and torchvision through it) load here, not in every process that imports facedyn
    from facedyn.blendshapes.onnx_cache import onnx_model_for

    onnx_path = onnx_model_for(blendshapes_tflite(path))
    return copy.deepcopy(_converted(str(onnx_path), sha256_of(onnx_path)))


@functools.lru_cache(maxsize=4)
def _converted(onnx_path: str, onnx_sha256: str) -> BlendshapeModel:
    # Keyed by content as well as path, so a rebuilt cache entry is converted again.
    from facedyn.blendshapes.torch_model import convert

    return convert(Path(onnx_path))
