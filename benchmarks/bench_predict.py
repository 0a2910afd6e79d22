"""Samples/s of prediction on CPU: the torch model (eager) against its ONNX export in ONNX Runtime, one run.

    .venv/bin/python benchmarks/bench_predict.py [--run RUN] [--batch 256] [--repeats 7] [--threads 2]

Exports the run (default: the newest finished run under outputs/) with `python -m facedyn.export`'s code
into a temporary file, then times predictor.predict on `batch` of the run's validation samples (repeated
up to `batch`) with both backends, alternating them so that a change of machine load hits both. Prints
the exported file's size, the load average and the largest difference of the two, in grades; then the
time the report's explanations (facedyn.explain) take per patient: one frame of each of its expressions.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from facedyn.explain import explain_frames
from facedyn.export import load_onnx
from facedyn.export.graph import ExportConfig, export, validation_samples
from facedyn.inference import find_newest_finished_run, load_run


def load_average() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=None)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = args.run or find_newest_finished_run(Path("outputs"))

    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="facedyn-bench-") as folder:
        report = export(ExportConfig(run=str(run), out=str(Path(folder) / "facedyn.onnx")))
        onnx_predictor = load_onnx(report.out, batch_size=args.batch, threads=args.threads)
    torch_predictor = load_run(run, batch_size=args.batch)
    samples = validation_samples(torch_predictor, args.batch)
    inputs = (samples.flow[: args.batch], samples.expression_landmarks[: args.batch],
              samples.baseline_landmarks[: args.batch], samples.expression[: args.batch])

    timings: dict[str, list[float]] = {"torch eager": [], "ONNX Runtime": []}
    predictors = {"torch eager": torch_predictor, "ONNX Runtime": onnx_predictor}
    for predictor in predictors.values():
        predictor.predict(*inputs)  # warm-up
    for _ in range(args.repeats):
        for name, predictor in predictors.items():
            start = time.perf_counter()
            predictor.predict(*inputs)
            timings[name].append(args.batch / (time.perf_counter() - start))
    difference = np.abs(onnx_predictor.predict(*inputs) - torch_predictor.predict(*inputs)).max()

    print(f"run {run}: batch {args.batch}, {args.threads} threads, median of {args.repeats} runs; torch {torch.__version__}")
    print(f"load average (1, 5, 15 min): before {load_before}, after {load_average()}")
    print(f"exported graph: {report.megabytes:.1f} MB (max |ONNX - torch| at export: "
          f"{max(report.max_abs_difference.values()):.1e} grades)")
    torch_rate = statistics.median(timings["torch eager"])
    for name, rates in timings.items():
        median = statistics.median(rates)
        print(f"{name + ':':16s} {median:8,.0f} samples/s   {median / torch_rate:5.2f}x torch eager")
    print(f"max |ONNX Runtime - torch| on this batch: {difference:.1e} grades")

    patient = samples.video[0]  # one frame per expression of one patient, as the report explains them
    rows = [int(np.flatnonzero((samples.video == patient) & (samples.expression == e))[0])
            for e in dict.fromkeys(samples.expression[samples.video == patient])]
    seconds = [explain_frames(torch_predictor.model, torch_predictor.info.predict, samples, rows)[1]
               for _ in range(args.repeats)]
    print(f"explanations per patient ({len(rows)} frames: Grad-CAM and integrated gradients, both scores): "
          f"{statistics.median(seconds):.2f} s (median of {args.repeats})")


if __name__ == "__main__":
    main()
