"""The synthetic dataset: subjects with a paralysed side and synkinesis, filmed doing each expression.

Per subject (one "video" id): a face shape, head pose, skin, lighting and labels. Per expression clip:
a neutral baseline frame, then frames_per_video frames ramping from onset to peak. Each sample holds
the HSV flow image baseline -> frame, both frames' 146 landmarks (with detector jitter), the clip's
labels and both rendered frames (the flow's whole field of view) as face images for people. Every subject draws from its own random streams (seed, subject index), so a subject
looks the same whatever the number of subjects.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, fields
from itertools import repeat
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
from filelock import FileLock

from facedyn.assets import cache_dir
from facedyn.data.layout import write_sample
from facedyn.data.synthetic import expressions, face, render
from facedyn.data.synthetic.config import GENERATOR_VERSION, SyntheticConfig
from facedyn.data.synthetic.contact_sheet import write_contact_sheet
from facedyn.data.synthetic.mesh import CanonicalMesh, canonical_mesh
from facedyn.flow.encoding import compute_flow, encode_flow, resize_flow
from facedyn.flow.mask import mask_flow
from facedyn.utils.io import atomic_write_json

MARKER = "synthetic_dataset.json"
SIDES = ("right", "left")  # the subject's own sides


@dataclass(frozen=True)
class ClipLabels:
    dynamics: int  # Sunnybrook voluntary movement of the paralysed side, 1 (none) - 5 (complete)
    synkinesis: int  # 0 none - 3 severe
    paralysed_side: str  # "left", "right" or "none"


@dataclass(frozen=True)
class Subject:
    name: str
    neutral: np.ndarray  # (468, 3) canonical-frame vertices
    pose: face.Pose
    gaze: np.ndarray
    appearance: render.Appearance
    strength: float  # how strongly this person's healthy side moves
    labels: dict[str, ClipLabels]


def as_config(cfg: Any) -> SyntheticConfig:
    """A SyntheticConfig from itself, a Hydra/OmegaConf node or a dict."""
    if isinstance(cfg, SyntheticConfig):
        return cfg
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            cfg = OmegaConf.to_container(cfg, resolve=True)
    except ImportError:
        pass
    if not isinstance(cfg, dict):
        raise TypeError(f"expected SyntheticConfig settings, got {type(cfg).__name__}")
    known = {f.name for f in fields(SyntheticConfig)}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ValueError(f"unknown synthetic settings {unknown}; known: {sorted(known)}")
    return SyntheticConfig(**cfg)


def _stream(cfg: SyntheticConfig, index: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(index, purpose)))


def sample_labels(cfg: SyntheticConfig, index: int) -> dict[str, ClipLabels]:
    """Subject `index`'s grades per expression (own random stream: cheap, and stable when looks change)."""
    rng = _stream(cfg, index, 0)
    if rng.random() < cfg.healthy_fraction:
        return {name: ClipLabels(5, 0, "none") for name in cfg.expressions}
    side = SIDES[int(rng.integers(2))]
    severity, synkinesis = int(rng.integers(1, 6)), int(rng.integers(0, 4))
    labels = {}
    for name in cfg.expressions:  # grades differ between expressions around the subject's level
        dynamics = int(np.clip(severity + rng.integers(-1, 2), 1, 5))
        synk = int(np.clip(synkinesis + rng.choice([-1, 0, 0, 1]), 0, 3))
        labels[name] = ClipLabels(dynamics, synk, side)
    return labels


def sample_subject(mesh: CanonicalMesh, cfg: SyntheticConfig, index: int) -> tuple[Subject, np.random.Generator]:
    """Subject `index` of this seed, and the random stream that continues with its clips."""
    rng = _stream(cfg, index, 1)
    shape = face.sample_shape(mesh.vertices, rng, cfg.shape_variation)
    neutral = shape + expressions.eye_close(shape) * rng.uniform(-0.3, 0.0)  # eyes open wider or less
    pose = face.sample_pose(rng, cfg.render_size, cfg.max_yaw_deg, cfg.max_pitch_deg, cfg.max_roll_deg)
    gaze = rng.normal(0.0, 0.03, 2)
    appearance = render.sample_appearance(mesh, rng, cfg.render_size)
    strength = float(rng.uniform(*cfg.subject_strength_range))
    labels = sample_labels(cfg, index)
    side = next(iter(labels.values())).paralysed_side
    if side != "none":  # the paralysed side sags at rest, the more the weaker it moves
        sag = cfg.resting_droop * (5.0 - np.mean([lab.dynamics for lab in labels.values()])) / 4.0
        gains = (sag, 0.0) if side == "right" else (0.0, sag)
        neutral = neutral + expressions.sided(expressions.resting_droop(neutral), neutral, *gains)
    return Subject(f"s{index:04d}", neutral, pose, gaze, appearance, strength, labels), rng


def _side_gains(rng: np.random.Generator, cfg: SyntheticConfig, subject: Subject,
                labels: ClipLabels) -> tuple[float, float, float]:
    """(right gain, left gain, synkinesis gain) of one clip."""
    healthy = subject.strength * (1.0 + rng.normal(0.0, 0.03))
    if labels.paralysed_side == "none":
        return healthy, subject.strength * (1.0 + rng.normal(0.0, 0.03)), 0.0
    fraction = cfg.movement_by_grade[labels.dynamics - 1] + rng.normal(0.0, cfg.movement_noise)
    paralysed = healthy * float(np.clip(fraction, 0.0, 1.05))
    synkinesis = 0.0
    if labels.synkinesis > 0:
        synkinesis = subject.strength * max(0.0, cfg.synkinesis_by_grade[labels.synkinesis]
                                            + rng.normal(0.0, cfg.synkinesis_noise))
    if labels.paralysed_side == "right":
        return paralysed, healthy, synkinesis
    return healthy, paralysed, synkinesis


def _camera(frame: np.ndarray, rng: np.random.Generator, cfg: SyntheticConfig, gain: float) -> np.ndarray:
    """What a camera delivers: brightness change, sensor noise, 8 bits and video compression."""
    noisy = frame * gain + rng.normal(0.0, cfg.image_noise, frame.shape)
    grey = np.clip(np.round(noisy), 0, 255).astype(np.uint8)
    _, encoded = cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
    return cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)


def _landmarks(points: np.ndarray, subject: Subject, rng: np.random.Generator, cfg: SyntheticConfig) -> np.ndarray:
    lms = face.landmark_subset(face.mesh_with_iris(points[:, :2], subject.gaze))
    return (lms + rng.normal(0.0, cfg.landmark_noise_px, lms.shape)).astype(np.float32)


def _peak_fractions(rng: np.random.Generator, cfg: SyntheticConfig) -> np.ndarray:
    low, high = cfg.peak_fraction_range
    ramp = np.linspace(low, high, cfg.frames_per_video) if cfg.frames_per_video > 1 else np.array([high])
    return np.clip(ramp + rng.normal(0.0, 0.02, ramp.shape), 0.05, 1.0)


@dataclass(frozen=True)
class Sample:
    expression: str
    name: str  # <video>_<frame>
    flow_image: np.ndarray  # (image_size, image_size, 3) uint8 RGB
    expression_landmarks: np.ndarray
    baseline_landmarks: np.ndarray
    labels: dict
    baseline_face: np.ndarray  # (render_size, render_size) uint8, the rendered baseline frame
    expression_face: np.ndarray  # the rendered expression frame


def clip_samples(mesh: CanonicalMesh, cfg: SyntheticConfig, subject: Subject, expression: str,
                 rng: np.random.Generator) -> Iterator[Sample]:
    """One expression clip of `subject`: its baseline frame, then every frame from onset to peak."""
    labels = subject.labels[expression]
    size = cfg.render_size
    right, left, synkinesis = _side_gains(rng, cfg, subject, labels)
    movement = expressions.sided(expressions.EXPRESSION_FIELDS[expression](subject.neutral), subject.neutral,
                                 right, left)
    if labels.paralysed_side != "none":
        involuntary = expressions.SYNKINESIS_FIELDS[expression](subject.neutral)
        gains = (synkinesis, 0.0) if labels.paralysed_side == "right" else (0.0, synkinesis)
        movement = movement + expressions.sided(involuntary, subject.neutral, *gains)
    base_pose = subject.pose.moved(rng, 2.0, 0.01 * size)  # each clip is framed a little differently
    base_points = face.project(subject.neutral, base_pose)
    base_frame = _camera(render.render(mesh, base_points, subject.appearance, size, base_pose.scale), rng, cfg, 1.0)
    base_landmarks = _landmarks(base_points, subject, rng, cfg)
    for frame_index, fraction in enumerate(_peak_fractions(rng, cfg)):
        pose = base_pose.moved(rng, cfg.head_motion_deg, cfg.head_motion_px)
        points = face.project(subject.neutral + fraction * movement, pose)
        gain = 1.0 + rng.normal(0.0, cfg.lighting_change)
        frame = _camera(render.render(mesh, points, subject.appearance, size, pose.scale), rng, cfg, gain)
        flow = resize_flow(compute_flow(base_frame, frame, cfg.flow_method), cfg.image_size)
        flow = mask_flow(flow, base_landmarks * (cfg.image_size / size), cfg.flow_mask)
        yield Sample(
            expression, f"{subject.name}_{frame_index}", encode_flow(flow, cfg.max_flow_magnitude),
            _landmarks(points, subject, rng, cfg), base_landmarks,
            {"dynamics": labels.dynamics, "synkinesis": labels.synkinesis,
             "paralysed_side": labels.paralysed_side, "peak_fraction": round(float(fraction), 3)},
            base_frame, frame,
        )


def subject_samples(mesh: CanonicalMesh, cfg: SyntheticConfig, index: int) -> Iterator[Sample]:
    """All samples of subject `index`: every expression clip, every frame."""
    subject, rng = sample_subject(mesh, cfg, index)
    for expression in cfg.expressions:
        yield from clip_samples(mesh, cfg, subject, expression, rng)


def _write_subject(root: Path, cfg: SyntheticConfig, index: int) -> int:
    count = 0
    for sample in subject_samples(canonical_mesh(), cfg, index):
        write_sample(root / sample.expression / sample.name, sample.flow_image, sample.expression_landmarks,
                     sample.baseline_landmarks, sample.labels, cfg.jpeg_quality,
                     faces=(sample.baseline_face, sample.expression_face))
        count += 1
    return count


def generate_dataset(root: Path, cfg: SyntheticConfig, workers: int = 1) -> Path:
    """Write the dataset `cfg` describes into `root` (new or empty), the contact sheet, then the marker.

    workers > 1 renders subjects in that many processes; the result is the same byte for byte.
    """
    cfg = as_config(cfg)
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty; the synthetic dataset needs a new or empty folder")
    root.mkdir(parents=True, exist_ok=True)
    canonical_mesh()  # a missing or broken bundle fails here, before any work
    started = time.perf_counter()
    indices = range(cfg.videos)
    if workers > 1:
        # spawn, not fork: the caller may hold torch's or OpenCV's threads.
        with ProcessPoolExecutor(min(workers, cfg.videos), mp_context=multiprocessing.get_context("spawn")) as pool:
            count = sum(pool.map(_write_subject, repeat(root), repeat(cfg), indices))
    else:
        count = sum(_write_subject(root, cfg, index) for index in indices)
    write_contact_sheet(root, cfg.max_flow_magnitude)
    atomic_write_json(root / MARKER, {
        "generator_version": GENERATOR_VERSION, "config": cfg.content(), "samples": count,
        "seconds": round(time.perf_counter() - started, 1),
    })
    return root


def default_root(cfg: SyntheticConfig) -> Path:
    return cache_dir() / "datasets" / f"synthetic-{cfg.digest()}"


def _completed_with(root: Path) -> dict | None:
    """The marker of a completed dataset at root (None when there is none)."""
    try:
        return json.loads((root / MARKER).read_text())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{root / MARKER} is damaged ({exc}); delete {root} to regenerate it") from None


def _matches(marker: dict, root: Path, cfg: SyntheticConfig) -> bool:
    if marker.get("generator_version") == GENERATOR_VERSION and marker.get("config") == cfg.content():
        return True
    raise ValueError(
        f"{root} holds a synthetic dataset made with other settings or generator version "
        f"({marker.get('generator_version')}, see {root / MARKER}); choose another root or delete it"
    )


def ensure_dataset(cfg: SyntheticConfig, workers: int = 1) -> Path:
    """The dataset for `cfg`: reused when complete, else generated once (atomically, one process at a time)."""
    cfg = as_config(cfg)
    root = Path(cfg.root).expanduser() if cfg.root else default_root(cfg)
    marker = _completed_with(root)
    if marker is not None and _matches(marker, root, cfg):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root.parent / f".{root.name}.lock")):
        marker = _completed_with(root)  # another process may have finished it meanwhile
        if marker is not None and _matches(marker, root, cfg):
            return root
        if root.exists() and any(root.iterdir()):
            raise FileExistsError(f"{root} exists but is not a completed synthetic dataset; delete it or choose another root")
        staging = root.parent / f".{root.name}.tmp-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            generate_dataset(staging, cfg, workers)
            if root.exists():
                root.rmdir()  # empty, checked above
            os.replace(staging, root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return root
