"""The torch backend of the predictor interface: the trained FaceDynModel in eval mode, in batches."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from facedyn.data.expressions import expression_indices
from facedyn.data.samples import flow_input
from facedyn.inference.predictor import ModelInfo, check_inputs
from facedyn.metrics import to_grades
from facedyn.model import FaceDynModel
from facedyn.runtime import Runtime

PRECISIONS = ("fp32", "bf16")


class TorchPredictor:
    """precision fp32 (the default: exact, the same on every machine) or bf16 (autocast, as training validates
    on CUDA and on CPUs with native bf16)."""

    def __init__(self, model: FaceDynModel, info: ModelInfo, device: str = "cpu", batch_size: int = 128,
                 precision: str = "fp32") -> None:
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if precision not in PRECISIONS:
            raise ValueError(f"precision={precision!r} is not one of: {', '.join(PRECISIONS)}")
        self.runtime = Runtime(device=torch.device(device), autocast_dtype=torch.bfloat16 if precision == "bf16" else None,
                               channels_last=False, progress=False)
        self.model = model.to(self.runtime.device).eval()
        self.info = info
        self.batch_size = batch_size

    @torch.no_grad()
    def predict(self, flow_images: np.ndarray, expression_landmarks: np.ndarray, baseline_landmarks: np.ndarray,
                expressions: Sequence[str]) -> np.ndarray:
        check_inputs(self.info, flow_images, expression_landmarks, baseline_landmarks, expressions)
        outputs = [np.zeros((0, 2))]
        for start in range(0, len(flow_images), self.batch_size):
            part = slice(start, start + self.batch_size)
            batch = {
                "flow_image": torch.from_numpy(flow_input(flow_images[part])),
                "expression_landmarks": torch.from_numpy(np.asarray(expression_landmarks[part], np.float32)),
                "baseline_landmarks": torch.from_numpy(np.asarray(baseline_landmarks[part], np.float32)),
                "expression_index": torch.from_numpy(expression_indices(expressions[part], self.model.expressions)),
            }
            with self.runtime.autocast():
                outputs.append(self.model(self.runtime.to_device(batch), self.info.predict).float().cpu().numpy())
        return to_grades(np.concatenate(outputs))
