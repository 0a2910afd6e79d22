"""Decode and check every sample folder: good samples become rows of `Samples`, bad ones a reason each.

A sample is bad when a file is missing; the flow JPEG is unreadable, truncated, not 3-channel or of the
wrong size (unless resizing is allowed); a landmark array is unreadable, not (146, 2), not floating point,
or holds NaN/Inf; a label is missing, not an integer, or out of range (an ignored value is accepted and
masked); or the folder name does not split into <video>_<frame>. For prediction (require_labels=False) a
sample without a label file is good and unlabelled (both scores invalid); a label file that is there is
still checked. Training always requires labels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import cv2
import numpy as np

from facedyn.data.errors import DataError
from facedyn.data.head_motion import compensate_images
from facedyn.data.layout import (
    BASELINE_LANDMARKS_FILE,
    EXPRESSION_LANDMARKS_FILE,
    FLOW_FILE,
    LABELS_FILE,
    SampleFolder,
)
from facedyn.data.samples import Samples
from facedyn.data.settings import ReaderSettings
from facedyn.flow.encoding import decode_flow, encode_flow
from facedyn.landmarks import NUM_SUBSET_LANDMARKS

DYNAMICS_RANGE = (0, 5)  # Sunnybrook voluntary movement grade
SYNKINESIS_RANGE = (0, 3)
JPEG_START, JPEG_END = b"\xff\xd8", b"\xff\xd9"


class BadSampleError(Exception):
    """One sample's problem: `path` (the file or folder at fault) and a short `reason`."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class BadSample:
    path: str  # relative to the dataset root
    reason: str


@dataclass
class ReadResult:
    samples: Samples
    bad: list[BadSample]
    resized: int  # flow images resized to image_size
    head_motion: Optional[dict] = None  # CompensationReport.as_dict() when head motion was compensated


def _read_flow(folder: SampleFolder, settings: ReaderSettings) -> tuple[np.ndarray, bool]:
    path = f"{folder.relative}/{FLOW_FILE}"
    data = Path(folder.file(FLOW_FILE)).read_bytes()
    if not data:
        raise BadSampleError(path, "unreadable image (empty file)")
    if data.startswith(JPEG_START) and not data.rstrip(b"\x00").endswith(JPEG_END):
        raise BadSampleError(path, "truncated JPEG (no end-of-image marker)")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        image = None
    if image is None:
        raise BadSampleError(path, "unreadable or truncated image")
    if image.ndim != 3 or image.shape[2] != 3:
        channels = 1 if image.ndim == 2 else image.shape[2]
        raise BadSampleError(path, f"{channels} channel(s), expected a 3-channel colour image")
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    size = settings.image_size
    resized = rgb.shape[:2] != (size, size)
    if resized:
        if not settings.resize_flow:
            raise BadSampleError(
                path, f"image is {rgb.shape[1]}x{rgb.shape[0]}, expected {size}x{size} (data.resize_flow=false)"
            )
        rgb = _resize_flow_image(rgb, size)
    return rgb, resized


def _resize_flow_image(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resample the flow vectors the image encodes, not its colours: averaging the colours of opposite
    directions would invent a third direction. Magnitudes keep their meaning (the value scale)."""
    flow = cv2.resize(decode_flow(rgb, 1.0), (size, size), interpolation=cv2.INTER_AREA)
    return encode_flow(flow, 1.0)


def _read_landmarks(folder: SampleFolder, name: str, scale: tuple[float, float]) -> np.ndarray:
    path = f"{folder.relative}/{name}"
    try:
        array = np.load(folder.file(name), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise BadSampleError(path, f"unreadable .npy ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(array, np.ndarray):
        raise BadSampleError(path, "not a single .npy array")
    if array.shape != (NUM_SUBSET_LANDMARKS, 2):
        raise BadSampleError(path, f"shape {array.shape}, expected ({NUM_SUBSET_LANDMARKS}, 2)")
    if array.dtype.kind != "f":
        raise BadSampleError(path, f"dtype {array.dtype}, expected floating point")
    if not np.isfinite(array).all():
        raise BadSampleError(path, f"{int((~np.isfinite(array)).sum())} NaN/Inf value(s)")
    return (array * np.asarray(scale)).astype(np.float32)


def _lookup(obj: Any, dotted_key: str) -> Any:
    for part in dotted_key.split("."):
        if not isinstance(obj, dict) or part not in obj:
            raise KeyError(dotted_key)
        obj = obj[part]
    return obj


def _label(labels: Any, key: str, valid_range: tuple[int, int], ignore: Sequence[int], path: str) -> tuple[int, bool]:
    try:
        value = _lookup(labels, key)
    except KeyError:
        raise BadSampleError(path, f"label {key!r} missing") from None
    integral = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if value is None or isinstance(value, bool) or not integral:
        raise BadSampleError(path, f"label {key!r} is {value!r}, not an integer")
    value = int(value)
    if value in ignore:
        return value, False
    low, high = valid_range
    if not low <= value <= high:
        raise BadSampleError(path, f"label {key!r} is {value}, outside {low}..{high}")
    return value, True


UNLABELLED = -1  # the grade stored for a sample without a label file (prediction only); never valid


def _read_labels(folder: SampleFolder, settings: ReaderSettings) -> tuple[int, bool, int, bool]:
    path = f"{folder.relative}/{LABELS_FILE}"
    if not settings.require_labels and LABELS_FILE in folder.missing_files:
        return UNLABELLED, False, UNLABELLED, False
    try:
        labels = json.loads(Path(folder.file(LABELS_FILE)).read_bytes())
    except ValueError as exc:
        raise BadSampleError(path, f"not valid JSON ({exc})") from None
    dynamics = _label(labels, settings.dynamics_key, DYNAMICS_RANGE, settings.dynamics_ignore, path)
    synkinesis = _label(labels, settings.synkinesis_key, SYNKINESIS_RANGE, settings.synkinesis_ignore, path)
    return (*dynamics, *synkinesis)


def _read_sample(folder: SampleFolder, settings: ReaderSettings) -> tuple[dict[str, Any], bool]:
    missing = [name for name in folder.missing_files if settings.require_labels or name != LABELS_FILE]
    if missing:
        raise BadSampleError(folder.relative, f"missing file(s): {', '.join(missing)}")
    video_frame = folder.video_and_frame()
    if video_frame is None:
        raise BadSampleError(folder.relative, "folder name does not split into <video>_<frame> at its last '_'")
    flow, resized = _read_flow(folder, settings)
    row = {
        "flow": flow,
        "expression_landmarks": _read_landmarks(folder, EXPRESSION_LANDMARKS_FILE, settings.landmark_scale),
        "baseline_landmarks": _read_landmarks(folder, BASELINE_LANDMARKS_FILE, settings.landmark_scale),
    }
    row["dynamics"], row["dynamics_valid"], row["synkinesis"], row["synkinesis_valid"] = _read_labels(folder, settings)
    row["video"], row["frame"] = video_frame
    row["expression"] = folder.expression
    row["folder"] = folder.relative
    return row, resized


def read_samples(folders: Sequence[SampleFolder], settings: ReaderSettings) -> ReadResult:
    """Decode every folder; a bad sample is recorded with its reason instead of stopping the read."""
    rows: list[dict[str, Any]] = []
    bad: list[BadSample] = []
    resized = 0
    for folder in folders:
        try:
            row, was_resized = _read_sample(folder, settings)
        except BadSampleError as exc:
            bad.append(BadSample(exc.path, exc.reason))
            continue
        except OSError as exc:  # a file vanished or became unreadable while we read it
            bad.append(BadSample(folder.relative, f"unreadable ({exc.strerror or exc})"))
            continue
        rows.append(row)
        resized += was_resized
    samples = _stack(rows, settings.image_size)
    report = None
    if settings.head_motion is not None and len(samples):
        report = compensate_images(samples.flow, samples.baseline_landmarks, samples.expression_landmarks,
                                   settings.head_motion).as_dict()
        before, after = report["global_motion_before_px"], report["global_motion_landmark_fit_px"]
        if after > before:  # the flow had no head motion to take out (registered at source, a still camera)
            raise DataError(
                f"data.flow.compensate_head_motion: the landmarks' head motion would add motion, not remove it (flow "
                f"at the stable landmarks {before:.2f} -> {after:.2f} px): these flow images look registered already "
                f"(prepare.py registers at source); leave it off")
    return ReadResult(samples, bad, resized, report)


def _stack(rows: list[dict[str, Any]], image_size: int) -> Samples:
    def column(name: str, dtype: Optional[type] = None, empty_shape: tuple[int, ...] = (0,)) -> np.ndarray:
        if not rows:
            return np.zeros(empty_shape, dtype=dtype or str)
        return np.asarray([row[name] for row in rows], dtype=dtype)

    landmarks_shape = (0, NUM_SUBSET_LANDMARKS, 2)
    return Samples(
        flow=column("flow", np.uint8, (0, image_size, image_size, 3)),
        expression_landmarks=column("expression_landmarks", np.float32, landmarks_shape),
        baseline_landmarks=column("baseline_landmarks", np.float32, landmarks_shape),
        dynamics=column("dynamics", np.int64),
        synkinesis=column("synkinesis", np.int64),
        dynamics_valid=column("dynamics_valid", np.bool_),
        synkinesis_valid=column("synkinesis_valid", np.bool_),
        video=column("video", str),
        expression=column("expression", str),
        frame=column("frame", str),
        folder=column("folder", str),
    )
