"""Samples/s of the torch blendshape module against TensorFlow's TFLite interpreter, measured in one run.

    .venv/bin/python benchmarks/bench_blendshapes.py [--batch 256] [--repeats 15] [--threads 2]

torch: forward, and forward + backward, of one (batch, 146, 2) call. TFLite: the interpreter invoked
once per sample (the model is fixed to batch 1), in a child process with the same thread count, measured
before and after torch so that a change of machine load shows as a difference between the two. Also
prints the load average, the cached load time and the largest |torch - TFLite| on the benchmark batch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch

from facedyn.assets import blendshapes_tflite
from facedyn.blendshapes import load
from facedyn.blendshapes.reference import tflite_scores, tflite_throughput
from facedyn.landmarks import NUM_SUBSET_LANDMARKS


def face_like_landmarks(count: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    centres = rng.uniform(300, 700, size=(count, 1, 2))
    return (centres + rng.normal(scale=60, size=(count, NUM_SUBSET_LANDMARKS, 2))).astype(np.float32)


def load_average() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


def rates(step, batch: int, repeats: int) -> list[float]:
    step()  # warm-up
    measured = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        measured.append(batch / (time.perf_counter() - start))
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    tflite_path = blendshapes_tflite()
    load()  # converts on a cold cache; the timing below is the cached load
    start = time.perf_counter()
    model = load()
    load_seconds = time.perf_counter() - start
    landmarks = face_like_landmarks(args.batch)
    points = torch.from_numpy(landmarks)

    def forward() -> None:
        with torch.no_grad():
            model(points)

    def forward_backward() -> None:
        model.zero_grad(set_to_none=True)
        model(points).sum().backward()

    load_before = load_average()
    tflite = tflite_throughput(landmarks, tflite_path, threads=args.threads, repeats=args.repeats)
    torch_forward = rates(forward, args.batch, args.repeats)
    torch_training = rates(forward_backward, args.batch, args.repeats)
    tflite_after = tflite_throughput(landmarks, tflite_path, threads=args.threads, repeats=args.repeats)
    with torch.no_grad():
        difference = np.abs(model(points).numpy() - tflite_scores(landmarks, tflite_path)).max()

    median_tflite = statistics.median(tflite + tflite_after)
    print(f"batch {args.batch}, {args.threads} threads, median of {args.repeats} runs; torch {torch.__version__}")
    print(f"load average (1, 5, 15 min): before {load_before}, after {load_average()}")
    print(f"cached load(): {load_seconds:.2f} s; tensorflow imported here: {'tensorflow' in sys.modules}")
    print(f"TFLite interpreter, per sample:  {median_tflite:10,.0f} samples/s   "
          f"(before torch {statistics.median(tflite):,.0f}, after {statistics.median(tflite_after):,.0f})")
    for name, measured in [
        ("torch forward", torch_forward),
        ("torch forward+backward", torch_training),
    ]:
        median = statistics.median(measured)
        print(f"{name + ':':32s} {median:10,.0f} samples/s   {median / median_tflite:5.2f}x TFLite")
    print(f"max |torch - TFLite| on this batch: {difference:.2e}")


if __name__ == "__main__":
    main()
