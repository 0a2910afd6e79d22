"""The torch backend of the predictor interface: the trained FaceDynModel in eval mode, in batches."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from facedyn.inference.predictor import BATCH_KEYS, ModelInfo, check_inputs, grade_in_batches
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
        return grade_in_batches(self._run_batch, BATCH_KEYS, self.model.expressions, self.batch_size,
                                flow_images, expression_landmarks, baseline_landmarks, expressions)

    def _run_batch(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        batch = {key: torch.from_numpy(array) for key, array in feed.items()}
        with self.runtime.autocast():
            return self.model(self.runtime.to_device(batch), self.info.predict).float().cpu().numpy()
