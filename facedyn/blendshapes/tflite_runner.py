"""Run a batch-1 TFLite model over many samples with TensorFlow's interpreter, in its own process.

Standalone on purpose (numpy and tensorflow only, run by file path): TensorFlow must never be imported
into a process that has torch/torchvision. Used for reference scores and for the benchmark.

    python tflite_runner.py MODEL.tflite INPUTS.npy OUTPUTS.npy [--threads N] [--repeats R]

INPUTS.npy holds (N, ...) samples, each fed as one batch-1 invocation; OUTPUTS.npy gets (N, ...) results.
With --repeats R the whole batch is run R times and a JSON line with the samples/s of each run is printed.
"""

import argparse
import json
import time

import numpy as np
import tensorflow as tf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("inputs")
    parser.add_argument("outputs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=0)
    args = parser.parse_args()

    interpreter = tf.lite.Interpreter(model_path=args.model, num_threads=args.threads)
    interpreter.allocate_tensors()
    (input_detail,) = interpreter.get_input_details()
    (output_detail,) = interpreter.get_output_details()
    samples = np.load(args.inputs).astype(input_detail["dtype"])

    def run_all() -> np.ndarray:
        results = []
        for sample in samples:
            interpreter.set_tensor(input_detail["index"], sample.reshape(input_detail["shape"]))
            interpreter.invoke()
            results.append(interpreter.get_tensor(output_detail["index"]).copy())
        return np.stack(results).reshape(len(samples), -1)

    outputs = run_all()
    rates = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        run_all()
        rates.append(len(samples) / (time.perf_counter() - start))
    np.save(args.outputs, outputs)
    if args.repeats:
        print(json.dumps({"samples_per_s": rates}))


if __name__ == "__main__":
    main()
