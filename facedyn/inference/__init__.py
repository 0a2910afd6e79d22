"""Apply a trained run to new data: a predictor usable from Python, whatever runs the model.

    from facedyn.inference import load_run
    predictor = load_run("outputs/runs/2026-12-02_07-00-00")      # or a checkpoint file
    grades = predictor.predict(flow_images, expression_landmarks, baseline_landmarks, expressions)

`Predictor` is the interface every backend implements: torch here (load_run), ONNX Runtime in
`facedyn.export.load_onnx(path, batch_size=…) -> Predictor` (info.backend "onnx", the ModelInfo fields
kept in the .onnx file's metadata). `predict.py` and the report only talk to it.
"""

from facedyn.data.samples import flow_input  # every backend's flow-image input
from facedyn.inference.config import PredictConfig  # registers predict_schema for Hydra
from facedyn.inference.predictor import ModelInfo, Predictor, RunError
from facedyn.inference.run_loader import find_newest_finished_run, load_run, resolve_checkpoint
from facedyn.inference.torch_predictor import TorchPredictor

__all__ = ["ModelInfo", "PredictConfig", "Predictor", "RunError", "TorchPredictor", "find_newest_finished_run", "flow_input",
           "load_run", "resolve_checkpoint"]
