"""Apply a trained run to new data: a predictor usable from Python, whatever runs the model.

    from facedyn.inference import load_run
    predictor = load_run("outputs/runs/2026-12-02_07-00-00")      # or a checkpoint file
    grades = predictor.predict(flow_images, expression_landmarks, baseline_landmarks, expressions)

`Predictor` is the interface every backend implements: torch here (load_run), ONNX Runtime in
`facedyn.export.load_onnx(path, batch_size=…) -> Predictor` (info.backend "onnx", the ModelInfo fields
kept in the .onnx file's metadata). `predict.py` and the report only talk to it.

Light on import (no torch), like facedyn.data: the ONNX backend uses the interface without torch; the torch
backend loads on first use.
"""

from __future__ import annotations

from facedyn.data.samples import flow_input  # every backend's flow-image input
from facedyn.inference.predictor import ModelInfo, Predictor, RunError
from facedyn.utils.lazy import lazy_attributes

_LAZY = {
    "PredictConfig": "facedyn.inference.config",  # importing it registers predict_schema for Hydra
    "find_newest_finished_run": "facedyn.inference.run_loader",
    "load_run": "facedyn.inference.run_loader",
    "resolve_checkpoint": "facedyn.inference.run_loader",
    "TorchPredictor": "facedyn.inference.torch_predictor",
}

__all__ = ["ModelInfo", "Predictor", "RunError", "flow_input", *_LAZY]

__getattr__ = lazy_attributes(__name__, _LAZY)
