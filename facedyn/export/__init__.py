"""A trained run as one ONNX graph, and the ONNX Runtime predictor that runs it.

    python -m facedyn.export run=<run folder or checkpoint> out=facedyn.onnx      # facedyn.export.graph
    predictor = facedyn.export.load_onnx("facedyn.onnx")                          # a facedyn.inference.Predictor
    python -m facedyn.export run=<cross-validation folder> out=folds/             # one graph per finished fold
    ensemble = facedyn.export.load_onnx_ensemble(["folds/fold_0.onnx", ...])      # their calibrated ensemble

This package's own import needs no torch (onnx_predictor.py); exporting does (graph.py).
"""

from facedyn.export.onnx_predictor import ONNX_INPUTS, OnnxPredictor, load_onnx, load_onnx_ensemble

__all__ = ["ONNX_INPUTS", "OnnxPredictor", "load_onnx", "load_onnx_ensemble"]
