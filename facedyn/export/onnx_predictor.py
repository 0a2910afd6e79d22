"""The ONNX Runtime backend of the predictor interface (facedyn.inference.Predictor): an exported graph.

The graph holds the whole model, from the flow image the reader decodes to the two outputs in normalised
units; around it is the batching the torch backend uses too (facedyn.inference.predictor.grade_in_batches),
so both read and grade samples by one code path. What the graph was made from travels in its metadata, and
for a cross-validation fold its out-of-fold residuals (facedyn.export.calibration): several fold graphs make
a calibrated ensemble (load_onnx_ensemble), as the cross-validation folder does for torch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import onnxruntime

from facedyn.export.calibration import CALIBRATION_KEY, residuals_of
from facedyn.inference.ensemble import Calibration, EnsemblePredictor
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
        # A cross-validation fold's out-of-fold residuals (facedyn.export.calibration); None: not a fold.
        self.calibration: Optional[dict] = json.loads(metadata[CALIBRATION_KEY]) if CALIBRATION_KEY in metadata else None
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


def load_onnx_ensemble(paths: Sequence[str | os.PathLike], batch_size: int = 128, threads: Optional[int] = None,
                       calibrate: bool = True) -> EnsemblePredictor:
    """The ensemble of exported fold graphs of one cross-validation, calibrated by the out-of-fold residuals
    they carry (calibrate=False: any graphs of one config, without intervals); RunError (one line) otherwise."""
    paths = [Path(p).expanduser() for p in paths]
    members = [load_onnx(path, batch_size, threads) for path in paths]
    records = [m.calibration for m in members]
    source = Path(os.path.commonpath([str(p.resolve().parent) for p in paths]))
    if not calibrate and any(r is None for r in records):
        return EnsemblePredictor(members, list(range(len(members))), source)
    missing = [str(p) for p, r in zip(paths, records) if r is None]
    if missing:
        raise RunError(f"onnx={missing[0]}: exported without calibration residuals (not a cross-validation fold, or "
                       "exported before they were kept); export the folds of a cross-validation with python -m "
                       "facedyn.export run=<crossval folder> out=<folder>, or predict without intervals: interval=null")
    first = records[0]
    seen: dict[int, Path] = {}
    for path, record in zip(paths, records):
        origin = (record["crossval"], record["variant"], record["stage"])
        if origin != (first["crossval"], first["variant"], first["stage"]):
            raise RunError(f"onnx: {paths[0]} and {path} come from different cross-validations or stages "
                           f"({'/'.join(map(str, (first['crossval'], first['variant'])))} stage {first['stage']} vs "
                           f"{'/'.join(map(str, origin[:2]))} stage {origin[2]}); an ensemble is one cross-validation's folds")
        if record["fold"] in seen:
            raise RunError(f"onnx: {seen[record['fold']]} and {path} are both fold {record['fold']}; give each fold once")
        seen[record["fold"]] = path
    order = sorted(range(len(members)), key=lambda i: records[i]["fold"])
    folds = [records[i]["fold"] for i in order]
    left_out = {k: "no graph given" for k in range(int(first["folds"])) if k not in folds}
    ensemble = EnsemblePredictor([members[i] for i in order], folds, Path(first["crossval"]) / first["variant"],
                                 left_out=left_out)
    ensemble.calibration = Calibration.of(
        residuals_of([records[i] for i in order]), folds,
        f"{first['source']} (carried in the graphs): the stage {first['stage']} fold models' grades of their own "
        "validation videos, which each never trained on")
    return ensemble


def _model_info(record: dict) -> ModelInfo:
    run_dir = Path(record["run_dir"]) if record.get("run_dir") else None
    return ModelInfo(
        run_dir=run_dir if run_dir is not None and run_dir.is_dir() else None,  # the run may be elsewhere
        checkpoint=Path(record["checkpoint"]), stage=str(record["stage"]), predict=str(record["predict"]),
        expressions=tuple(record["expressions"]) if record.get("expressions") else None,
        image_size=int(record["image_size"]), backend="onnx", data_settings=record.get("data_settings"),
        model_settings=record.get("model_settings"))
