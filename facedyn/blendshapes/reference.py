"""Reference scores from TensorFlow's own TFLite interpreter, computed in a child process.

For tests and benchmarks in processes that import torch (TensorFlow may not join them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from facedyn.landmarks import NUM_SUBSET_LANDMARKS

RUNNER = Path(__file__).with_name("tflite_runner.py")


def tflite_scores(landmarks: np.ndarray, tflite_path: str | os.PathLike, threads: int = 1) -> np.ndarray:
    """(N, 146, 2) landmark pixel coordinates -> (N, 52) scores from the TFLite interpreter, one sample per call."""
    scores, _ = _run(landmarks, tflite_path, threads, repeats=0)
    return scores


def tflite_throughput(
    landmarks: np.ndarray, tflite_path: str | os.PathLike, threads: int, repeats: int
) -> list[float]:
    """Samples/s of the interpreter invoked once per sample, for each of `repeats` passes over `landmarks`."""
    _, rates = _run(landmarks, tflite_path, threads, repeats)
    return rates


def _run(landmarks: np.ndarray, tflite_path: str | os.PathLike, threads: int, repeats: int) -> tuple[np.ndarray, list[float]]:
    landmarks = np.asarray(landmarks, dtype=np.float32)
    if landmarks.ndim != 3 or landmarks.shape[1:] != (NUM_SUBSET_LANDMARKS, 2):
        raise ValueError(f"landmarks must have shape (N, {NUM_SUBSET_LANDMARKS}, 2), got {landmarks.shape}")
    with tempfile.TemporaryDirectory(prefix="facedyn-tflite-") as folder:
        inputs, outputs = Path(folder) / "inputs.npy", Path(folder) / "outputs.npy"
        np.save(inputs, landmarks)
        command = [sys.executable, str(RUNNER), str(tflite_path), str(inputs), str(outputs),
                   "--threads", str(threads), "--repeats", str(repeats)]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
        result = subprocess.run(command, capture_output=True, text=True, env=env)
        if result.returncode != 0:
            raise RuntimeError(f"TFLite interpreter on {tflite_path} failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
        rates = json.loads(result.stdout.strip().splitlines()[-1])["samples_per_s"] if repeats else []
        return np.load(outputs), rates
