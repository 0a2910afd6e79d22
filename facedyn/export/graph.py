"""Export a trained run as one ONNX graph, checked with ONNX Runtime against the torch model before it is written.

The graph takes the model's batch (FaceDynModel.required_inputs of the stage's output: the flow image as
flow_input makes it, the landmark pixels, the expression index when the model reads it) with a free batch
axis and gives the (N, 2) outputs in normalised units. It is compared with the torch model on the run's
validation samples, fed in batches of 1, 7 and 256; a graph that differs by more than `tolerance` grades
is refused and nothing is written. A cross-validation fold's graph also carries the fold's out-of-fold
residuals (facedyn.export.calibration); `run=<cross-validation folder> out=<folder>` exports every finished
fold as <folder>/fold_<k>.onnx.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import onnx
import torch
import torch.onnx.symbolic_helper
from filelock import FileLock, Timeout
from omegaconf import OmegaConf
from torch import nn

from facedyn.crossval.layout import CrossvalFolderError, variant_folder
from facedyn.data.samples import Samples
from facedyn.export.calibration import CALIBRATION_KEY, fold_record
from facedyn.export.onnx_predictor import INFO_KEY, ONNX_INPUTS, VOCABULARY_KEY, OnnxPredictor
from facedyn.inference.predictor import RunError
from facedyn.inference.data import prediction_data
from facedyn.inference.run_loader import find_newest_finished_run, load_run
from facedyn.inference.torch_predictor import TorchPredictor
from facedyn.utils.io import atomic_write_bytes
from facedyn.model import FaceDynModel
from facedyn.training.stages import FINAL_STAGE

log = logging.getLogger(__name__)
ONNX_OPSET = 17


@dataclass
class ExportConfig:
    run: Optional[str] = None  # run folder or checkpoint; null: the newest finished run under paths.output_dir
    stage: Optional[str] = None  # null: stage 4 of a run folder, or the checkpoint's own stage
    out: str = "facedyn.onnx"  # the ONNX file written (atomically; a second export to it is refused)
    output_dir: str = "outputs"  # where run=null looks for runs (train.py's paths.output_dir)
    tolerance: float = 1e-4  # largest |ONNX Runtime - torch| accepted, in grades
    batch_sizes: list[int] = field(default_factory=lambda: [1, 7, 256])  # batch sizes the check runs


@dataclass
class ExportReport:
    out: Path
    megabytes: float
    samples: int
    max_abs_difference: dict[int, float]  # per batch size, in grades
    seconds: float


class _Batch(nn.Module):
    """The model with its batch dict spelled out as the graph's inputs (the names of ONNX_INPUTS it reads)."""

    def __init__(self, model: FaceDynModel, predict: str) -> None:
        super().__init__()
        self.model, self.predict, self.keys = model, predict, model.required_inputs(predict)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(dict(zip(self.keys, inputs)), self.predict).float()


def export(cfg: ExportConfig) -> ExportReport:
    """Export per cfg; RunError (one line) when the run cannot be used or the graph does not match."""
    start = time.perf_counter()
    run = cfg.run or find_newest_finished_run(Path(cfg.output_dir), cfg.stage or FINAL_STAGE)
    torch_predictor = load_run(run, stage=cfg.stage, batch_size=max(cfg.batch_sizes))
    out = Path(cfg.out).expanduser().resolve()
    lock = FileLock(str(out) + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise RunError(f"out={out}: another export is writing it (lock {lock.lock_file})") from None
    try:
        graph = _graph(torch_predictor)
        samples = validation_samples(torch_predictor, max(cfg.batch_sizes))
        differences = _differences(graph, torch_predictor, samples, cfg.batch_sizes)
        worst = max(differences.values())
        if not worst <= cfg.tolerance:
            raise RunError(f"the ONNX graph of {torch_predictor.info.checkpoint} differs from the torch model by "
                           f"{worst:.2e} grades (allowed {cfg.tolerance:.0e}; per batch size {differences}); not written")
        atomic_write_bytes(out, graph)
    finally:
        lock.release()
        Path(lock.lock_file).unlink(missing_ok=True)
    return ExportReport(out, len(graph) / 1e6, len(samples), differences, time.perf_counter() - start)


def export_all(cfg: ExportConfig) -> list[ExportReport]:
    """export(cfg), or for a cross-validation folder (or variant) every finished fold into the folder out=."""
    try:
        variant = variant_folder(Path(cfg.run)) if cfg.run else None
    except CrossvalFolderError as exc:
        raise RunError(f"run={cfg.run}: {exc}") from None
    if variant is None:
        return [export(cfg)]
    from facedyn.inference.crossval_loader import fold_model

    out = Path(cfg.out).expanduser()
    if out.suffix == ".onnx":
        raise RunError(f"out={cfg.out}: a cross-validation exports one graph per fold; name a folder: out=<folder>")
    models = {k: fold_model(variant, k, cfg.stage) for k in range(variant.folds)}
    if not any(run_dir for run_dir, _, _ in models.values()):
        raise RunError(f"run={cfg.run}: no finished fold to export ("
                       + "; ".join(f"fold {k}: {why}" for k, (_, _, why) in models.items()) + ")")
    reports = []
    for fold, (run_dir, stage, why) in models.items():
        if run_dir is None:
            log.warning("fold %d not exported: %s", fold, why)
            continue
        reports.append(export(replace(cfg, run=str(run_dir), stage=stage, out=str(out / f"fold_{fold}.onnx"))))
    return reports


def _graph(predictor: TorchPredictor) -> bytes:
    """The serialised ONNX graph of the predictor's model, with its ModelInfo in the metadata."""
    model, info = predictor.model.cpu().eval(), predictor.info
    wrapper = _Batch(model, info.predict).eval()
    unknown = [key for key in wrapper.keys if key not in ONNX_INPUTS]
    if unknown:  # the model reads a batch key the ONNX predictor does not feed
        raise RunError(f"the model of {info.checkpoint} reads {unknown}, which facedyn.export's predictor cannot "
                       f"feed (it feeds {list(ONNX_INPUTS)})")
    example = _example_inputs(wrapper.keys, info.image_size)
    buffer = io.BytesIO()
    with torch.no_grad(), _onnx2torch_export_opset(ONNX_OPSET), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(wrapper, example, buffer, dynamo=False, opset_version=ONNX_OPSET,
                          input_names=list(wrapper.keys), output_names=["scores"],
                          dynamic_axes={name: {0: "batch"} for name in [*wrapper.keys, "scores"]})
    graph = onnx.load_from_string(buffer.getvalue())
    record = {**info.as_dict(), "backend": "onnx"}
    calibration = fold_record(info.run_dir, info.stage)
    for key, value in ((INFO_KEY, record), (VOCABULARY_KEY, list(model.expressions)), (CALIBRATION_KEY, calibration)):
        if value is not None:
            graph.metadata_props.add(key=key, value=json.dumps(value))
    return graph.SerializeToString()


def _example_inputs(keys: tuple[str, ...], image_size: int) -> tuple[torch.Tensor, ...]:
    example = {"flow_image": torch.rand(2, 3, image_size, image_size),
               "expression_landmarks": 300 + 100 * torch.rand(2, 146, 2),
               "baseline_landmarks": 300 + 100 * torch.rand(2, 146, 2),
               "expression_index": torch.zeros(2, dtype=torch.int64)}
    return tuple(example[key] for key in keys)


@contextlib.contextmanager
def _onnx2torch_export_opset(opset: int) -> Iterator[None]:
    """onnx2torch (1.5.15) reads the export's opset from a private torch attribute that torch 2.14 no longer
    sets; its blendshape modules export through it. Set for the export only."""
    helper = torch.onnx.symbolic_helper
    had = hasattr(helper, "_export_onnx_opset_version")
    previous = getattr(helper, "_export_onnx_opset_version", None)
    helper._export_onnx_opset_version = opset
    try:
        yield
    finally:
        if had:
            helper._export_onnx_opset_version = previous
        else:
            del helper._export_onnx_opset_version


def validation_samples(predictor: TorchPredictor, count: int) -> Samples:
    """The run's validation samples (as predict.py reads them), repeated up to `count` when there are fewer."""
    with tempfile.TemporaryDirectory(prefix="facedyn-export-") as scratch:
        data = prediction_data(OmegaConf.create({"videos": None, "data": {}}), predictor, Path(scratch))
    arrays = data.samples.arrays()
    rows = np.resize(np.arange(len(data.samples)), max(count, len(data.samples)))
    return Samples.from_arrays({key: value[rows] for key, value in arrays.items()})


def _differences(graph: bytes, predictor: TorchPredictor, samples: Samples, batch_sizes: list[int]) -> dict[int, float]:
    """Largest |ONNX Runtime - torch| in grades, per batch size, over the validation samples."""
    inputs = (samples.flow, samples.expression_landmarks, samples.baseline_landmarks, samples.expression)
    expected = predictor.predict(*inputs)
    differences = {}
    for batch_size in batch_sizes:
        onnx_predictor = OnnxPredictor(graph, batch_size=batch_size)
        rows = slice(0, max(batch_size, min(len(samples), 8 * batch_size)))  # batch 1: a few calls are enough
        got = onnx_predictor.predict(*(array[rows] for array in inputs))
        differences[batch_size] = float(np.abs(got - expected[rows]).max())
    return differences
