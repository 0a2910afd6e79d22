"""The predictor interface: decoded samples in, grades in the scores' own units out.

Inputs are what the data reader decodes (facedyn.data.Samples), so a backend needs nothing else:
  flow_images           (N, H, W, 3) uint8 RGB, the HSV-encoded flow image (H = W = the run's image_size)
  expression_landmarks  (N, 146, 2) float32, pixels of the video frame
  baseline_landmarks    (N, 146, 2) float32
  expressions           (N,) expression folder names, each one the model was trained on
Output: (N, 2) float64 [dynamics 0–5, synkinesis 0–3], unrounded (facedyn.metrics.rounded rounds them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Protocol, Sequence, runtime_checkable

import numpy as np

from facedyn.data.expressions import expression_indices
from facedyn.data.samples import flow_input
from facedyn.metrics import to_grades

# The model's batch keys (FaceDynModel.required_inputs) a predictor can build from decoded samples.
BATCH_KEYS = ("flow_image", "expression_landmarks", "baseline_landmarks", "expression_index")


class RunError(RuntimeError):
    """A run folder or checkpoint that cannot be used for prediction; the message names it and what to do."""


@dataclass(frozen=True)
class ModelInfo:
    """What a predictor was made from; written beside every prediction."""

    run_dir: Optional[Path]  # None when the run folder is not at hand (an exported model elsewhere)
    checkpoint: Path
    stage: str  # the training stage whose weights these are
    predict: str  # which output the stage trained: flow | landmarks | fused
    expressions: Optional[tuple[str, ...]]  # expression folders of the training data; None: not recorded
    image_size: int
    backend: str  # torch | onnx
    # The run's data settings (config.yaml's `data`, plain): how its landmarks and labels were read, so new
    # data is read the same way without the run folder. None: unknown (the schema's defaults then).
    data_settings: Optional[dict] = None
    # The run's model settings (config.yaml's `model`, plain): what an ensemble's members must share. None: unknown.
    model_settings: Optional[dict] = None

    def as_dict(self) -> dict:
        return {"run_dir": str(self.run_dir) if self.run_dir else None, "checkpoint": str(self.checkpoint), "stage": self.stage,
                "predict": self.predict, "expressions": list(self.expressions) if self.expressions else None,
                "image_size": self.image_size, "backend": self.backend, "data_settings": self.data_settings,
                "model_settings": self.model_settings}


@runtime_checkable
class Predictor(Protocol):
    info: ModelInfo

    def predict(self, flow_images: np.ndarray, expression_landmarks: np.ndarray, baseline_landmarks: np.ndarray,
                expressions: Sequence[str]) -> np.ndarray:
        """(N, 2) unrounded grades [dynamics, synkinesis] for N samples (see the module docstring)."""
        ...


def check_inputs(info: ModelInfo, flow_images: np.ndarray, expression_landmarks: np.ndarray,
                 baseline_landmarks: np.ndarray, expressions: Sequence[str]) -> None:
    """Shapes and expressions a model can take; a ValueError naming the first mismatch."""
    n = len(flow_images)
    size = info.image_size
    if np.asarray(flow_images).shape[1:] != (size, size, 3):
        raise ValueError(f"flow_images: shape {np.asarray(flow_images).shape}, expected (N, {size}, {size}, 3)")
    for name, array in (("expression_landmarks", expression_landmarks), ("baseline_landmarks", baseline_landmarks)):
        if np.asarray(array).shape[1:] != (146, 2) or len(array) != n:
            raise ValueError(f"{name}: shape {np.asarray(array).shape}, expected ({n}, 146, 2)")
    if len(expressions) != n:
        raise ValueError(f"expressions: {len(expressions)} names for {n} samples")
    if info.expressions is not None:
        unknown = sorted(set(expressions) - set(info.expressions))
        if unknown:
            raise ValueError(f"expression(s) {', '.join(unknown)} were not trained on "
                             f"(the run knows {', '.join(info.expressions)})")


def batch_arrays(keys: Sequence[str], vocabulary: Sequence[str], flow_images: np.ndarray,
                 expression_landmarks: np.ndarray, baseline_landmarks: np.ndarray,
                 expressions: Sequence[str]) -> dict[str, np.ndarray]:
    """The model inputs `keys` of decoded samples, as numpy arrays; expression indices are positions in
    `vocabulary`."""
    build = {
        "flow_image": lambda: flow_input(flow_images),
        "expression_landmarks": lambda: np.asarray(expression_landmarks, np.float32),
        "baseline_landmarks": lambda: np.asarray(baseline_landmarks, np.float32),
        "expression_index": lambda: expression_indices(expressions, vocabulary),
    }
    return {key: build[key]() for key in keys}


def grade_in_batches(run_batch: Callable[[dict[str, np.ndarray]], np.ndarray], keys: Sequence[str],
                     vocabulary: Sequence[str], batch_size: int, flow_images: np.ndarray,
                     expression_landmarks: np.ndarray, baseline_landmarks: np.ndarray,
                     expressions: Sequence[str]) -> np.ndarray:
    """Grades of samples from a backend's `run_batch` (model outputs in normalised units for a dict of the
    batch `keys` it reads, as numpy arrays), `batch_size` samples at a time. One code path for every
    backend, so they read samples alike."""
    outputs = [np.zeros((0, 2))]
    for start in range(0, len(flow_images), batch_size):
        part = slice(start, start + batch_size)
        outputs.append(run_batch(batch_arrays(keys, vocabulary, flow_images[part], expression_landmarks[part],
                                              baseline_landmarks[part], expressions[part])))
    return to_grades(np.concatenate(outputs))
