"""TFLite -> batch-native ONNX, converted once per model file (keyed by its SHA-256) and cached.

tf2onnx runs in a child process (tflite_to_onnx.py): TensorFlow must never share a process with
torch/torchvision (they segfault together), and a warm cache must not start TensorFlow at all. The child
frees the graph's batch axis (batch_axis.py: MediaPipe's model is fixed to batch 1) and runs the TFLite
interpreter and ONNX Runtime on probe inputs; a conversion that disagrees is refused.
A cache entry is the ONNX file plus a JSON sidecar written after it; the sidecar records the source's and
the ONNX file's SHA-256, so a partial or damaged entry is detected and rebuilt rather than loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from filelock import FileLock

from facedyn.assets import AssetError, cache_dir, is_tflite, sha256_of
from facedyn.blendshapes.batch_axis import BATCH
from facedyn.utils.io import atomic_path, atomic_write_json
from facedyn.landmarks import NUM_BLENDSHAPES, NUM_SUBSET_LANDMARKS

ONNX_OPSET = 17
TFLITE_INPUT_SHAPE = [1, NUM_SUBSET_LANDMARKS, 2]
ONNX_INPUT_SHAPE, ONNX_OUTPUT_SHAPE = [BATCH, NUM_SUBSET_LANDMARKS, 2], [BATCH, NUM_BLENDSHAPES]
# Bumped when the conversion itself changes, so older cache entries are not reused.
CONVERSION_VERSION = 4  # 4: a fixed hash seed, so that every conversion gives the same graph
# Largest |TFLite - ONNX| accepted on the probe inputs (MediaPipe's model converts to within ~5e-6).
PROBE_TOLERANCE = 1e-4
NUM_PROBES = 8
CONVERTER = Path(__file__).with_name("tflite_to_onnx.py")


def onnx_model_for(tflite_path: str | os.PathLike, cache: Path | None = None) -> Path:
    """The validated ONNX conversion of `tflite_path`, from the cache or converted now (in a child process)."""
    tflite_path = Path(tflite_path)
    _check_is_tflite(tflite_path)
    source_sha = sha256_of(tflite_path)
    folder = (cache or cache_dir()) / "models"
    folder.mkdir(parents=True, exist_ok=True)
    # "-batch": the batch-1 conversion of earlier versions keeps its own name, so that checkouts of
    # both can share one cache without converting over each other's entry.
    target = folder / f"blendshapes-{source_sha[:16]}-opset{ONNX_OPSET}-batch.onnx"
    sidecar = target.with_suffix(".json")
    if _valid_entry(target, sidecar, source_sha):
        return target
    # Several processes (sweep trials, test workers) may start at once: one converts, the rest wait.
    with FileLock(str(target) + ".lock"):
        if not _valid_entry(target, sidecar, source_sha):
            _convert(tflite_path, target, sidecar, source_sha)
    return target


def _check_is_tflite(path: Path) -> None:
    with open(path, "rb") as fh:
        head = fh.read(8)
    if not is_tflite(head):
        raise AssetError(f"{path} is not a TFLite model (no TFL3 identifier); expected face_blendshapes.tflite")


def _valid_entry(target: Path, sidecar: Path, source_sha: str) -> bool:
    try:
        record = json.loads(sidecar.read_text())
        return (
            record.get("source_sha256") == source_sha
            and record.get("conversion_version") == CONVERSION_VERSION
            and target.is_file()
            and sha256_of(target) == record.get("onnx_sha256")
        )
    except (OSError, ValueError):
        return False


def _convert(tflite_path: Path, target: Path, sidecar: Path, source_sha: str) -> None:
    sidecar.unlink(missing_ok=True)  # the entry is invalid from here until the new sidecar lands
    with atomic_path(target) as tmp, tempfile.TemporaryDirectory(prefix="facedyn-probes-") as scratch:
        probes = Path(scratch) / "probes.npy"
        np.save(probes, _probe_landmarks())
        command = [sys.executable, str(CONVERTER), str(tflite_path), str(tmp), str(probes),
                   "--opset", str(ONNX_OPSET)]
        # tf2onnx names and orders the graph's initializers by iterating sets of strings, so the graph (and the
        # torch module's parameter names) changed with Python's per-process hash seed: a checkpoint trained
        # with one conversion did not load with another. A fixed seed makes every conversion the same.
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", "PYTHONHASHSEED": "0"}
        result = subprocess.run(command, capture_output=True, text=True, env=env)
        if result.returncode != 0:
            raise AssetError(
                f"Converting {tflite_path} to ONNX with tf2onnx failed (exit {result.returncode}):\n"
                f"{result.stderr[-3000:]}"
            )
        report = _last_json_line(result.stdout, f"the converter's report on {tflite_path}")
        if "signature" in report:
            _refuse_signature(tflite_path, report["signature"]["inputs"], report["signature"]["outputs"])
        if "not_batchable" in report:
            raise AssetError(f"The ONNX graph of {tflite_path} cannot be given a batch axis: {report['not_batchable']}")
        _validate(tflite_path, onnx.load(str(tmp)))
        difference = report["max_abs_difference"]
        if difference is None or difference > PROBE_TOLERANCE:
            raise AssetError(
                f"tf2onnx's conversion of {tflite_path} disagrees with the TFLite interpreter by {difference} "
                f"(allowed {PROBE_TOLERANCE}); not cached"
            )
    atomic_write_json(sidecar, {
        "source": str(tflite_path),
        "source_sha256": source_sha,
        "onnx_sha256": sha256_of(target),
        "onnx_opset": ONNX_OPSET,
        "conversion_version": CONVERSION_VERSION,
        "probe_max_abs_difference": difference,
    })


def _last_json_line(text: str, what: str) -> dict:
    try:
        return json.loads(text.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise AssetError(f"{what} is missing; the converter printed:\n{text[-2000:]}") from None


def _probe_landmarks() -> np.ndarray:
    """Point sets of face-like size in pixels, to compare TFLite and ONNX outputs on."""
    rng = np.random.default_rng(0)
    centres = rng.uniform(300, 700, size=(NUM_PROBES, 1, 2))
    return (centres + rng.normal(scale=60, size=(NUM_PROBES, *TFLITE_INPUT_SHAPE[1:]))).astype(np.float32)


def _validate(tflite_path: Path, model: onnx.ModelProto) -> None:
    """A well-formed graph with MediaPipe's blendshape signature, batched: Nx146x2 in, Nx52 scores out."""
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise AssetError(f"The ONNX conversion of {tflite_path} is not a valid ONNX model: {exc}") from None
    in_shapes = [_shape(value) for value in model.graph.input]
    out_shapes = [_shape(value) for value in model.graph.output]
    if in_shapes != [ONNX_INPUT_SHAPE] or out_shapes != [ONNX_OUTPUT_SHAPE]:
        _refuse_signature(tflite_path, in_shapes, out_shapes)


def _refuse_signature(tflite_path: Path, in_shapes: list, out_shapes: list) -> None:
    raise AssetError(
        f"{tflite_path} takes inputs {in_shapes} and gives outputs {out_shapes}; MediaPipe's blendshape "
        f"model takes one {TFLITE_INPUT_SHAPE} input and gives {NUM_BLENDSHAPES} scores. "
        f"Is it face_blendshapes.tflite?"
    )


def _shape(value: onnx.ValueInfoProto) -> list[int | str]:
    return [dim.dim_param or dim.dim_value for dim in value.type.tensor_type.shape.dim]
