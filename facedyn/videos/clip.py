"""One clip, start to finish, in a worker process: decode, landmarks, frame choice, registered flow, samples.

Each sample folder is written complete or not at all (facedyn.data.layout.write_sample; one left by a clip
whose record was lost is replaced); the clip's record (record_path) is written last, atomically, and is what
a rerun trusts. Only this module (through .landmarker) imports MediaPipe.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np

from facedyn.data.layout import write_sample
from facedyn.flow.registration import apply
from facedyn.landmarks import BLENDSHAPE_NAMES, LANDMARK_SUBSET_IDXS, NUM_MESH_LANDMARKS
from facedyn.utils.io import atomic_write_bytes, atomic_write_json
from facedyn.videos.config import PrepareConfig
from facedyn.videos.pair import RegisteredPair, flow_image, noise_floor, register_pair
from facedyn.videos.selection import EYE_CENTRES, Selection, SelectionError, choose_frames

RECORDS_DIR = ".prepare"  # hidden: the reader skips it
MEDIAPIPE_BLENDSHAPES_FILE = "mediapipe_blendshapes.json"
TIMED_STEPS = ("decode", "landmarks", "flow", "writing")
TILE = 160  # contact-sheet cell side
NO_MOVEMENT = "no movement above noise"  # still prepared: no movement is a grade of its own
# A face whose eye line is turned by more than 45° lies on its side (a portrait clip whose rotation tag was
# lost) or upside down: its frames are turned upright before anything else. Per quarter turn of the eye
# line (pointing down the image, left, up): the cv2.rotate code that turns it back, and the report's note.
UPRIGHT = {1: (cv2.ROTATE_90_COUNTERCLOCKWISE, "turned 90° counter-clockwise: the face lay on its side"),
           2: (cv2.ROTATE_180, "turned 180°: the face was upside down"),
           3: (cv2.ROTATE_90_CLOCKWISE, "turned 90° clockwise: the face lay on its side")}


@dataclass(frozen=True)
class ClipJob:
    video: str
    relative: str  # path under the videos folder
    patient: str
    expression: str
    labels: Optional[dict]  # None: no label file (no grade for this clip)
    out: str
    bundle: str  # face_landmarker.task
    fingerprint: str  # video content + settings + labels: a rerun redoes the clip when it changes
    cfg: PrepareConfig


@dataclass
class ClipOutcome:
    relative: str
    patient: str
    expression: str
    status: str  # ok | skipped
    reason: str = ""
    frames_read: int = 0
    one_face_share: float = 0.0
    baseline_frame: Optional[int] = None
    apex_frame: Optional[int] = None
    frames: list[int] = field(default_factory=list)
    apex_movement: Optional[float] = None  # peak landmark movement beyond the noise, inter-ocular distances
    rest_noise: Optional[float] = None  # the landmarks' wander during the rest phase, inter-ocular distances
    flow_noise: Optional[float] = None  # flow between two rest frames (px at the flow image's size), zeroed below
    note: str = ""  # what a person should know about a prepared clip, e.g. NO_MOVEMENT
    turned: int = 0  # the face's roll in quarter turns (UPRIGHT); landmarks and flow are of the upright frames
    labelled: bool = False
    samples: list[str] = field(default_factory=list)  # "<expression>/<patient>_<frame>"
    fingerprint: str = ""
    seconds: dict[str, float] = field(default_factory=dict)  # per TIMED_STEPS; not in the record

    def record(self) -> dict[str, Any]:
        """What the clip's record keeps: everything but timings, so that reruns give the same bytes."""
        values = asdict(self)
        values.pop("seconds")
        return values


def record_path(out: str | Path, expression: str, patient: str, suffix: str = ".json") -> Path:
    return Path(out) / RECORDS_DIR / "clips" / expression / f"{patient}{suffix}"


class _Timer:
    def __init__(self) -> None:
        self.seconds = dict.fromkeys(TIMED_STEPS, 0.0)
        self._last = time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.seconds[step] += now - self._last
        self._last = now


def _open(path: str) -> Optional[cv2.VideoCapture]:
    capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    if capture.isOpened():
        return capture
    capture.release()
    return None


@dataclass
class _Scan:
    frames: int
    reported_frames: int
    counts: np.ndarray  # faces per frame
    landmarks: np.ndarray  # (T, 478, 2), NaN where the frame has not exactly one face
    blendshapes: Optional[np.ndarray]  # (T, 52) MediaPipe's scores, when asked for


def _upright(frame: np.ndarray, turned: int) -> np.ndarray:
    return frame if turned == 0 else cv2.rotate(frame, UPRIGHT[turned][0])


def roll_quarters(landmarks: np.ndarray) -> int:
    """How many quarter turns the faces' eye line (median over frames with one face) lies from upright:
    0 upright, 1 eye line pointing down the image, 2 upside down, 3 pointing up."""
    valid = ~np.isnan(landmarks[:, 0, 0])
    if not valid.any():
        return 0
    right, left = (landmarks[valid][:, list(pair)].mean(axis=1) for pair in EYE_CENTRES)
    line = np.median(left - right, axis=0)
    return int(round(np.degrees(np.arctan2(line[1], line[0])) / 90.0)) % 4


def _scan(job: ClipJob, capture: cv2.VideoCapture, timer: _Timer, turned: int = 0) -> _Scan:
    from facedyn.videos.landmarker import VideoLandmarker

    reported = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    fps = capture.get(cv2.CAP_PROP_FPS)
    fps = fps if fps and np.isfinite(fps) and fps > 0 else 30.0
    counts, points, scores = [], [], []
    with VideoLandmarker(job.bundle, job.cfg.landmarker) as landmarker:
        timer.lap("landmarks")  # creating the landmarker
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            rgb = cv2.cvtColor(_upright(frame, turned), cv2.COLOR_BGR2RGB)
            timer.lap("decode")
            faces = landmarker.detect(rgb, round(len(counts) * 1000.0 / fps))
            counts.append(faces.count)
            points.append(faces.landmarks)
            scores.append(faces.blendshapes)
            timer.lap("landmarks")
    landmarks = np.full((len(counts), NUM_MESH_LANDMARKS, 2), np.nan, dtype=np.float32)
    for t, xy in enumerate(points):
        if xy is not None:
            landmarks[t] = xy
    blendshapes = None
    if job.cfg.landmarker.blendshapes:
        blendshapes = np.full((len(counts), len(BLENDSHAPE_NAMES)), np.nan, dtype=np.float32)
        for t, s in enumerate(scores):
            if s is not None:
                blendshapes[t] = s
    return _Scan(len(counts), reported, np.asarray(counts, dtype=np.int64), landmarks, blendshapes)


def _quality_problem(scan: _Scan, cfg: PrepareConfig) -> Optional[str]:
    if scan.frames == 0:
        return "no frame could be decoded"
    # Containers estimate their frame count; a few frames' difference is not a truncation.
    if scan.reported_frames > 0 and scan.frames < scan.reported_frames - max(2, 0.02 * scan.reported_frames):
        return f"truncated: {scan.frames} of {scan.reported_frames} frames decoded"
    one = float(np.mean(scan.counts == 1))
    if one < cfg.quality.min_one_face_share:
        none, several = float(np.mean(scan.counts == 0)), float(np.mean(scan.counts > 1))
        if none == 1.0:
            return "no face in any frame"
        what = f"several faces in {several:.0%}" if several > none else f"no face in {none:.0%}"
        return (f"exactly one face in only {one:.0%} of frames ({what}); "
                f"quality.min_one_face_share={cfg.quality.min_one_face_share:g}")
    if int(np.sum(scan.counts == 1)) < cfg.quality.min_frames:
        return (f"only {int(np.sum(scan.counts == 1))} frame(s) with one face; "
                f"quality.min_frames={cfg.quality.min_frames}")
    return None


def _frames_at(path: str, wanted: set[int], timer: _Timer, turned: int = 0) -> dict[int, np.ndarray]:
    """The BGR frames at the `wanted` indices, decoded again (cheaper in memory than keeping every frame)."""
    capture = _open(path)
    frames: dict[int, np.ndarray] = {}
    if capture is None:
        return frames
    try:
        for index in range(max(wanted) + 1):
            if not capture.grab():
                break
            if index in wanted:
                ok, frame = capture.retrieve()
                if ok:
                    frames[index] = _upright(frame, turned)
    finally:
        capture.release()
    timer.lap("decode")
    return frames


def _write_sample(job: ClipJob, frame: int, flow_rgb: np.ndarray, pair: RegisteredPair, selection: Selection,
                  scan: _Scan) -> str:
    name = f"{job.patient}_{frame}"
    subset = list(LANDMARK_SUBSET_IDXS)
    labels = None
    if job.labels is not None:
        labels = {**job.labels, "video": job.relative, "frame": frame, "baseline_frame": selection.baseline,
                  "apex_frame": selection.apex}
    extra = {}
    if scan.blendshapes is not None:
        extra[MEDIAPIPE_BLENDSHAPES_FILE] = {
            "expression": dict(zip(BLENDSHAPE_NAMES, scan.blendshapes[frame].tolist())),
            "baseline": dict(zip(BLENDSHAPE_NAMES, scan.blendshapes[selection.baseline].tolist()))}
    write_sample(Path(job.out) / job.expression / name, flow_rgb, scan.landmarks[frame, subset].astype(np.float32),
                 scan.landmarks[selection.baseline, subset].astype(np.float32), labels, job.cfg.flow.jpeg_quality, extra,
                 faces=(pair.baseline, pair.expression))
    return f"{job.expression}/{name}"


def _tile(pair: RegisteredPair, flow_rgb: np.ndarray, baseline: np.ndarray, expression: np.ndarray) -> np.ndarray:
    """Contact-sheet cells: baseline and apex crops with their landmarks drawn, and the apex's flow image."""
    subset = list(LANDMARK_SUBSET_IDXS)
    cells = []
    for image, matrix, points in ((pair.baseline, pair.crop, baseline),
                                  (pair.expression, pair.expression_to_crop, expression)):
        cell = image.copy()
        for x, y in apply(matrix, points[subset].astype(np.float64)):
            cv2.circle(cell, (int(round(x)), int(round(y))), 1, (60, 220, 60), -1, cv2.LINE_AA)
        cells.append(cv2.resize(cell, (TILE, TILE), interpolation=cv2.INTER_AREA))
    cells.append(cv2.resize(cv2.cvtColor(flow_rgb, cv2.COLOR_RGB2BGR), (TILE, TILE), interpolation=cv2.INTER_NEAREST))
    return np.hstack(cells)


def _container(path: str) -> Optional[str]:
    """The container a file's first bytes announce (None: no video container OpenCV's FFmpeg reads here)."""
    with open(path, "rb") as fh:
        head = fh.read(12)
    if head[4:8] == b"ftyp":
        return "MP4/MOV"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "Matroska/WebM"
    return None


def _unreadable_reason(path: str) -> str:
    container = _container(path)
    if container is None:
        return "not a video file (no known video container at its start)"
    return f"damaged or truncated {container} file: it cannot be opened (its index is missing or broken)"


def _scan_clip(job: ClipJob, timer: _Timer, turned: int = 0) -> _Scan:
    capture = _open(job.video)
    if capture is None:
        raise SelectionError(_unreadable_reason(job.video))
    try:
        return _scan(job, capture, timer, turned)
    finally:
        capture.release()


def _process(job: ClipJob, outcome: ClipOutcome, timer: _Timer) -> None:
    if os.path.getsize(job.video) == 0:
        raise SelectionError("empty file (0 bytes)")
    scan = _scan_clip(job, timer)
    turned = roll_quarters(scan.landmarks)
    if turned:  # found again on the upright frames: MediaPipe places a face on its side poorly
        scan = _scan_clip(job, timer, turned)
        outcome.turned = turned
    outcome.frames_read = scan.frames
    outcome.one_face_share = round(float(np.mean(scan.counts == 1)), 4) if scan.frames else 0.0
    problem = _quality_problem(scan, job.cfg)
    if problem:
        raise SelectionError(problem)
    selection = choose_frames(scan.landmarks, scan.counts == 1, job.cfg.selection)
    outcome.baseline_frame, outcome.apex_frame = selection.baseline, selection.apex
    outcome.frames, outcome.apex_movement = list(selection.frames), round(selection.apex_movement, 4)
    outcome.rest_noise = round(selection.rest_noise, 4)
    notes = [UPRIGHT[turned][1] if turned else "",
             "" if selection.moved else NO_MOVEMENT]
    outcome.note = "; ".join(note for note in notes if note)
    partner = selection.rest_partner if job.cfg.flow.noise_floor else None
    wanted = {selection.baseline, *selection.frames, *([] if partner is None else [partner])}
    images = _frames_at(job.video, wanted, timer, turned)
    missing = sorted(wanted - set(images))
    if missing:
        raise SelectionError(f"frame(s) {missing} could not be decoded a second time")
    base = scan.landmarks[selection.baseline]
    floor = 0.0
    if partner is not None:
        floor = noise_floor(register_pair(images[selection.baseline], images[partner], base, scan.landmarks[partner],
                                          job.cfg.flow), job.cfg.flow)
        outcome.flow_noise = round(floor * job.cfg.flow.image_size / job.cfg.flow.crop_size, 4)
    for frame in selection.frames:
        pair = register_pair(images[selection.baseline], images[frame], base, scan.landmarks[frame], job.cfg.flow)
        flow_rgb = flow_image(pair, job.cfg.flow, floor)
        timer.lap("flow")
        outcome.samples.append(_write_sample(job, frame, flow_rgb, pair, selection, scan))
        if frame == selection.apex:
            tile = _tile(pair, flow_rgb, base, scan.landmarks[frame])
            atomic_write_bytes(record_path(job.out, job.expression, job.patient, ".png"),
                               cv2.imencode(".png", tile)[1].tobytes())
        timer.lap("writing")
    outcome.labelled = job.labels is not None


def process_clip(job: ClipJob) -> ClipOutcome:
    """Prepare one clip; a bad clip comes back as status `skipped` with the reason, never as an exception."""
    timer = _Timer()
    outcome = ClipOutcome(job.relative, job.patient, job.expression, "ok", fingerprint=job.fingerprint)
    try:
        _process(job, outcome, timer)
    except SelectionError as exc:
        outcome.status, outcome.reason, outcome.samples = "skipped", str(exc), []
    atomic_write_json(record_path(job.out, job.expression, job.patient), outcome.record())
    timer.lap("writing")
    outcome.seconds = {step: round(seconds, 4) for step, seconds in timer.seconds.items()}
    return outcome
