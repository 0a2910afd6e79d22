"""Samples/s of prediction on CPU: the torch model (eager) against its ONNX export in ONNX Runtime, one run.

    .venv/bin/python benchmarks/bench_predict.py [--run RUN] [--batch 256] [--repeats 7] [--threads 2]

Exports the run (default: the newest finished run under outputs/; where there is none, as on a fresh
clone, a tiny run is trained first into a temporary folder, which says nothing of accuracy but times the
same model) with `python -m facedyn.export`'s code into a temporary file, then times predictor.predict on `batch` of the run's validation samples (repeated
up to `batch`) with both backends, alternating them so that a change of machine load hits both. Prints
the exported file's size, the load average and the largest difference of the two, in grades; then the
time the report's explanations (facedyn.explain) take per patient: one frame of each of its expressions.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from facedyn.explain import explain_frames
from facedyn.export import load_onnx
from facedyn.export.graph import ExportConfig, export, validation_samples
from facedyn.inference import RunError, find_newest_finished_run, load_run
from record import REPO, Recording

# A run trained in about a minute: 10 synthetic subjects, one or two epochs per stage, no ImageNet download.
TINY_RUN = ["data.synthetic.videos=10", "data.synthetic.frames_per_video=2", "model.flow.weights=none",
            "trainer.progress=false", "stages.s1.epochs=1", "stages.s2a.epochs=2", "stages.s2b.epochs=1",
            "stages.s3.epochs=2", "stages.s4.epochs=1"]


def tiny_run(folder: Path) -> Path:
    """Train TINY_RUN into folder/run (the synthetic data and caches inside folder too)."""
    run_dir = folder / "run"
    command = [sys.executable, str(REPO / "train.py"), f"hydra.run.dir={run_dir}", f"paths.output_dir={folder}",
               f"data.synthetic.root={folder / 'dataset'}", f"data.cache_dir={folder / 'cache'}", *TINY_RUN]
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"training the tiny run failed ({result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return run_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=None)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="facedyn-bench-") as folder:
        run = args.run
        if run is None:
            try:
                run = find_newest_finished_run(Path("outputs"))
            except RunError:
                print("no finished run under outputs/: training a tiny one to time (a minute or two) ...", flush=True)
                run = tiny_run(Path(folder))
        measure(Path(run), args, Path(folder), "a tiny run trained for the benchmark" if args.run is None
                and Path(run).is_relative_to(folder) else str(run))


def measure(run: Path, args: argparse.Namespace, folder: Path, label: str) -> None:
    torch.set_num_threads(args.threads)
    rec = Recording(__doc__)
    report = export(ExportConfig(run=str(run), out=str(folder / "facedyn.onnx")))
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

    rec.note(f"{label}: batch {args.batch}, {args.threads} threads, median of {args.repeats} runs")
    rec.note(f"exported graph: {report.megabytes:.1f} MB; max |ONNX Runtime - torch| {difference:.1e} grades on this "
             f"batch, {max(report.max_abs_difference.values()):.1e} at export")
    torch_rate = statistics.median(timings["torch eager"])
    rec.table("Prediction on CPU, samples/s (median)", ["backend", "samples/s", "x torch eager"],
              [[name, round(statistics.median(rates)), round(statistics.median(rates) / torch_rate, 2)]
               for name, rates in timings.items()])
    patient = samples.video[0]  # one frame per expression of one patient, as the report explains them
    rows = [int(np.flatnonzero((samples.video == patient) & (samples.expression == e))[0])
            for e in dict.fromkeys(samples.expression[samples.video == patient])]
    seconds = statistics.median(explain_frames(torch_predictor.model, torch_predictor.info.predict, samples, rows)[1]
                                for _ in range(args.repeats))
    rec.note(f"the report's explanations per patient ({len(rows)} frames: Grad-CAM and integrated gradients, both "
             f"scores): {seconds:.2f} s (median of {args.repeats})")
    rec.figures(megabytes=round(report.megabytes, 1), max_abs_difference=float(difference),
                onnx_vs_torch=round(statistics.median(timings["ONNX Runtime"]) / torch_rate, 2),
                explanation_seconds_per_patient=round(seconds, 3))
    rec.save()

if __name__ == "__main__":
    main()
