"""The ONNX Runtime backend of the predictor interface (facedyn.inference.Predictor): an exported graph.

The graph holds the whole model, from the flow image the reader decodes to the two outputs in normalised
units; around it is the batching the torch backend uses too (facedyn.inference.predictor.grade_in_batches),
so both read and grade samples by one code path. What the graph was made from travels in its metadata.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import onnxruntime

from facedyn.inference.predictor import BATCH_KEYS, ModelInfo, RunError, check_inputs, grade_in_batches

# Graph input names: the model's batch keys; an export has those its output reads.
ONNX_INPUTS = BATCH_KEYS
INFO_KEY, VOCABULARY_KEY = "facedyn.model_info", "facedyn.expression_vocabulary"


class OnnxPredictor:
    def __init__(self, model: bytes | str | os.PathLike, batch_size: int = 128, threads: Optional[int] = None) -> None:
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        source = model if isinstance(model, bytes) else str(model)
        self.session = onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        metadata = self.session.get_modelmeta().custom_metadata_map
        if INFO_KEY not in metadata:
            raise RunError(f"{'the graph' if isinstance(model, bytes) else model}: not a facedyn export "
                           f"(no {INFO_KEY} in its metadata); make one with python -m facedyn.export")
        self.info = _model_info(json.loads(metadata[INFO_KEY]))
        self.vocabulary = tuple(json.loads(metadata[VOCABULARY_KEY]))
        self.inputs = tuple(i.name for i in self.session.get_inputs())
        self.batch_size = batch_size

    def predict(self, flow_images: np.ndarray, expression_landmarks: np.ndarray, baseline_landmarks: np.ndarray,
                expressions: Sequence[str]) -> np.ndarray:
        check_inputs(self.info, flow_images, expression_landmarks, baseline_landmarks, expressions)
        return grade_in_batches(lambda feed: self.session.run(None, feed)[0], self.inputs, self.vocabulary,
                                self.batch_size, flow_images, expression_landmarks, baseline_landmarks, expressions)


def load_onnx(path: str | os.PathLike, batch_size: int = 128, threads: Optional[int] = None) -> OnnxPredictor:
    """An OnnxPredictor for a file written by `python -m facedyn.export`; RunError (one line) for anything else."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise RunError(f"onnx={path}: no such file; export a run with python -m facedyn.export run=<run> out={path}")
    try:
        return OnnxPredictor(path, batch_size, threads)
    except (onnxruntime.capi.onnxruntime_pybind11_state.Fail,
            onnxruntime.capi.onnxruntime_pybind11_state.InvalidProtobuf,
            onnxruntime.capi.onnxruntime_pybind11_state.InvalidGraph) as exc:
        raise RunError(f"onnx={path}: not a readable ONNX model ({str(exc).splitlines()[0][:200]})") from None


def _model_info(record: dict) -> ModelInfo:
    run_dir = Path(record["run_dir"]) if record.get("run_dir") else None
    return ModelInfo(
        run_dir=run_dir if run_dir is not None and run_dir.is_dir() else None,  # the run may be elsewhere
        checkpoint=Path(record["checkpoint"]), stage=str(record["stage"]), predict=str(record["predict"]),
        expressions=tuple(record["expressions"]) if record.get("expressions") else None,
        image_size=int(record["image_size"]), backend="onnx", data_settings=record.get("data_settings"))
