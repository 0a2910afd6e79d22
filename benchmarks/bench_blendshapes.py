"""Samples/s of the torch blendshape module against TensorFlow's TFLite interpreter, measured in one run.

    .venv/bin/python benchmarks/bench_blendshapes.py [--batch 256] [--repeats 15] [--threads 2]

torch: forward, and forward + backward, of one (batch, 146, 2) call. TFLite: the interpreter invoked
once per sample (the model is fixed to batch 1), in a child process with the same thread count, measured
before and after torch so that a change of machine load shows as a difference between the two. Also
prints the load average, the cached load time and the largest |torch - TFLite| on the benchmark batch.

Then the arithmetic: the graph's multiply-adds per sample (its 1x1 convolutions,
counted from the ONNX graph), the rate TFLite reaches on them, and a bound that no layout built on torch's
fp32 matrix products can beat on this machine: each convolution timed alone as the one matrix product it is with the batch folded into its
rows (torch.mm, fp32, same threads), forward and the two products of its backward pass (input and weight
gradients), nothing else (no layer norms, activations, transposes). Forward+backward costs about 3x the
forward's arithmetic, so 0.5x TFLite's samples/s needs 1.5x TFLite's arithmetic rate.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import onnx
import torch

from facedyn.assets import blendshapes_tflite
from facedyn.blendshapes import graph_for, load
from facedyn.blendshapes.batch_axis import inferred_shapes
from facedyn.blendshapes.reference import tflite_scores, tflite_throughput
from facedyn.landmarks import NUM_SUBSET_LANDMARKS
from record import Recording


def face_like_landmarks(count: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    centres = rng.uniform(300, 700, size=(count, 1, 2))
    return (centres + rng.normal(scale=60, size=(count, NUM_SUBSET_LANDMARKS, 2))).astype(np.float32)


def rates(step, batch: int, repeats: int) -> list[float]:
    step()  # warm-up
    measured = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        measured.append(batch / (time.perf_counter() - start))
    return measured


def convolution_products(onnx_path) -> list[tuple[int, int, int]]:
    """(rows per sample, inputs, outputs) of each 1x1 Conv of the batch-native graph: one matrix product each."""
    model = onnx.load(str(onnx_path))
    shapes = inferred_shapes(model)
    products = []
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        outputs, inputs, *kernel = shapes[node.input[1]]
        if any(size != 1 for size in kernel):
            raise ValueError(f"Conv {node.name} is not 1x1: {kernel}")
        products.append((int(np.prod(shapes[node.output[0]][2:])), inputs, outputs))
    return products


def product_seconds(shapes: list[tuple[int, int, int]], repeats: int) -> float:
    """Median wall time of the fp32 products (m, k) @ (k, n), one after the other."""
    operands = [(torch.randn(m, k), torch.randn(k, n)) for m, k, n in shapes]

    def run() -> None:
        for left, right in operands:
            torch.mm(left, right)

    run()
    measured = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        measured.append(time.perf_counter() - start)
    return statistics.median(measured)


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive whole number")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=positive, default=256)
    parser.add_argument("--repeats", type=positive, default=15)
    parser.add_argument("--threads", type=positive, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rec = Recording(__doc__)

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

    tflite = tflite_throughput(landmarks, tflite_path, threads=args.threads, repeats=args.repeats)
    torch_forward = rates(forward, args.batch, args.repeats)
    torch_training = rates(forward_backward, args.batch, args.repeats)
    tflite_after = tflite_throughput(landmarks, tflite_path, threads=args.threads, repeats=args.repeats)
    with torch.no_grad():
        difference = np.abs(model(points).numpy() - tflite_scores(landmarks, tflite_path)).max()

    median_tflite = statistics.median(tflite + tflite_after)
    rec.note(f"batch {args.batch}, {args.threads} threads, median of {args.repeats} runs; cached load() "
             f"{load_seconds:.2f} s; TensorFlow imported in this process: {'tensorflow' in sys.modules}; "
             f"max |torch - TFLite| on this batch {difference:.2e}")
    rows = [["TFLite interpreter, one sample per call", round(median_tflite), 1.0],
            ["  of it before torch ran", round(statistics.median(tflite)), None],
            ["  of it after torch ran", round(statistics.median(tflite_after)), None]]
    rows += [[name, round(statistics.median(measured)), round(statistics.median(measured) / median_tflite, 2)]
             for name, measured in (("torch forward", torch_forward), ("torch forward+backward", torch_training))]
    rec.table("The blendshape model, samples/s (median)", ["implementation", "samples/s", "x TFLite"], rows)

    products = convolution_products(graph_for())
    macs = sum(rows * inputs * outputs for rows, inputs, outputs in products)
    batch = args.batch
    forward_shapes = [(batch * rows, inputs, outputs) for rows, inputs, outputs in products]
    backward_shapes = [shape for rows, inputs, outputs in products
                       for shape in ((batch * rows, outputs, inputs), (inputs, batch * rows, outputs))]
    forward_seconds = product_seconds(forward_shapes, args.repeats)
    forward_bound = batch / forward_seconds
    training_bound = batch / (forward_seconds + product_seconds(backward_shapes, args.repeats))
    square = product_seconds([(2048, 2048, 2048)], 5)
    rec.note(f"arithmetic: {len(products)} 1x1 convolutions, {macs / 1e6:.1f} M multiply-adds per sample")
    rec.table("The arithmetic bound", ["measure", "value"], [
        ["TFLite's rate on the convolutions, GFLOP/s", round(2 * macs * median_tflite / 1e9)],
        ["torch.mm 2048x2048 fp32, GFLOP/s", round(2 * 2048 ** 3 / square / 1e9)],
        ["matrix products alone, forward, x TFLite", round(forward_bound / median_tflite, 2)],
        ["matrix products alone, forward+backward, x TFLite", round(training_bound / median_tflite, 2)],
    ])
    rec.figures(tflite_samples_per_s=round(median_tflite), forward_vs_tflite=round(statistics.median(torch_forward) / median_tflite, 2),
                training_vs_tflite=round(statistics.median(torch_training) / median_tflite, 2),
                mega_multiply_adds=round(macs / 1e6, 1), products_forward_bound=round(forward_bound / median_tflite, 2),
                products_training_bound=round(training_bound / median_tflite, 2), max_abs_difference=float(difference))
    rec.save()


if __name__ == "__main__":
    main()
