"""MediaPipe's face_blendshapes model as a trainable torch module.

    model = facedyn.blendshapes.load()            # (N, 146, 2) landmark pixels -> (N, 52) scores
    names = facedyn.blendshapes.BLENDSHAPE_NAMES  # MediaPipe's output order
    graph = facedyn.blendshapes.graph_for()       # the converted ONNX graph it is built from
"""

from facedyn.blendshapes.loading import graph_for, load
from facedyn.landmarks import BLENDSHAPE_NAMES

__all__ = ["BLENDSHAPE_NAMES", "graph_for", "load"]
