"""prepare.py's speed on 640x480 clips with 2 workers, where the time goes, and Farneback vs DIS flow.

    .venv/bin/python benchmarks/bench_prepare.py [--clips 8] [--frames 60] [--workers 2] [--size 640x480]

Writes --clips test videos of a real face (tests/face_videos.py: scikit-image's astronaut photograph,
smiling or closing an eye, half of them with head motion; the making is not timed), then runs
facedyn.videos.prepare on them into an empty folder and prints:
  frames/s (wall)  : frames decoded / wall time of the whole prepare() call (start-up, workers, report)
  frames/s (CPU)   : frames / (CPU seconds of this process and its workers / workers): what the pipeline
                     reaches when it has the cores to itself; the wall figure is only meaningful on an
                     idle machine, so /proc/loadavg is printed with it
  per step         : decode, landmarks, flow (registration + optical flow + encoding), writing, summed
                     over the workers, as a share of their busy time
Then the flow methods on registered face crops of one smile clip (no head motion, so the known warp is
the true flow): milliseconds per frame pair and end-point error against the warp inside the moving region
and outside it. Needs face_landmarker.task (FACEDYN_LANDMARKER, or ../shared/models beside the checkout).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED_BUNDLE = REPO.parent / "shared" / "models" / "face_landmarker.task"
if not os.environ.get("FACEDYN_LANDMARKER") and SHARED_BUNDLE.is_file():
    os.environ["FACEDYN_LANDMARKER"] = str(SHARED_BUNDLE)

from facedyn.flow.encoding import FLOW_METHODS, compute_flow  # noqa: E402
from facedyn.videos.clip import TIMED_STEPS  # noqa: E402
from facedyn.videos.pipeline import prepare  # noqa: E402
from record import Recording  # noqa: E402
from tests.face_videos import (APEX_FRAME, CLOSE_LEFT_EYE, FACE_CENTRE, SMILE_RIGHT, FaceClip,  # noqa: E402
                               amplitude)


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def bench_pipeline(rec: Recording, root: Path, clips: int, frames: int, workers: int, size: tuple[int, int]) -> None:
    videos = root / "videos"
    maker = FaceClip(*size)
    for i in range(clips):
        expression, warp = ("smile", SMILE_RIGHT) if i % 2 == 0 else ("eye_close", CLOSE_LEFT_EYE)
        maker.write(videos / f"p{i:02d}" / f"{expression}.mp4", warp, head_motion=i % 4 >= 2, frames=frames)
    cpu, started = _cpu_seconds(), time.perf_counter()
    summary = prepare({"videos": str(videos), "out": str(root / "dataset"), "workers": workers, "progress": False})
    wall, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    busy = sum(summary.step_seconds.values())
    rec.note(f"{len(summary.ok)}/{clips} clips ok, {summary.frames} frames of {size[0]}x{size[1]}, {workers} workers, "
             f"{summary.samples} samples")
    rec.table("prepare(): frames per second", ["measure", "seconds", "frames/s"], [
        ["wall time of the whole call", round(wall, 1), round(summary.frames / wall, 1)],
        [f"CPU time / {workers} workers (the cores to itself)", round(cpu / workers, 1), round(summary.frames / (cpu / workers), 1)]])
    rec.table("Where the time goes, summed over workers", ["step", "seconds", "share", "ms per frame"],
              [[step, round(summary.step_seconds[step], 1), f"{summary.step_seconds[step] / busy:.0%}",
                round(1000 * summary.step_seconds[step] / summary.frames, 1)] for step in TIMED_STEPS])
    rec.figures(frames_per_second_wall=round(summary.frames / wall, 1),
                frames_per_second_cpu=round(summary.frames / (cpu / workers), 1))


def _true_flow(maker: FaceClip, t: int, warp: tuple) -> np.ndarray:
    """The warp's displacement (frame pixels) at frame t: where each baseline pixel's content moves to."""
    points = maker.grid / maker.scale + maker.origin.astype(np.float32)
    centre, vector, radius = warp
    weight = np.exp(-np.sum((points - np.array(centre, np.float32)) ** 2, axis=-1) / (2 * radius**2))
    return amplitude(t) * weight[..., None] * np.array(vector, np.float32) * maker.scale


def bench_flow_methods(rec: Recording, size: tuple[int, int], repeats: int = 5) -> None:
    maker = FaceClip(*size)
    baseline, apex = maker.frame(0, SMILE_RIGHT), maker.frame(APEX_FRAME, SMILE_RIGHT)
    truth = _true_flow(maker, APEX_FRAME, SMILE_RIGHT)
    # The face crop prepare.py takes (224 px, the face 80 % of it), placed from the known face position.
    side, crop = 224, 140.0 * maker.scale / 0.8
    centre = maker.to_frame(FACE_CENTRE)
    k = side / crop
    matrix = np.array([[k, 0, side / 2 - k * centre[0]], [0, k, side / 2 - k * centre[1]]])
    grey = [cv2.cvtColor(cv2.warpAffine(f, matrix, (side, side), flags=cv2.INTER_LINEAR), cv2.COLOR_BGR2GRAY)
            for f in (baseline, apex)]
    true = cv2.warpAffine(truth, matrix, (side, side), flags=cv2.INTER_LINEAR) * k
    moving = np.linalg.norm(true, axis=-1) > 0.5
    rows = []
    for method in FLOW_METHODS:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            flow = compute_flow(grey[0], grey[1], method)
            times.append(time.perf_counter() - started)
        error = np.linalg.norm(flow - true, axis=-1)
        rows.append([method, round(1000 * float(np.median(times)), 1), round(float(error[moving].mean()), 2),
                     round(float(error[~moving].mean()), 2)])
    rec.table(f"Optical flow on {side}x{side} registered face crops of a smile (largest true movement "
              f"{np.linalg.norm(true, axis=-1).max():.1f} px; the face moves in {moving.mean():.0%} of the crop)",
              ["method", "ms per pair", "end-point error where it moves, px", "elsewhere, px"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", default="640x480")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    rec = Recording(__doc__)
    with tempfile.TemporaryDirectory(prefix="bench_prepare_") as tmp:
        bench_pipeline(rec, Path(tmp), args.clips, args.frames, args.workers, size)
    bench_flow_methods(rec, size)
    rec.save()


if __name__ == "__main__":
    main()
