"""Convert a TFLite model to ONNX with tf2onnx and check the result against TensorFlow's interpreter.

Standalone on purpose (tensorflow, tf2onnx, onnxruntime, numpy; run by file path): TensorFlow must never
be imported into a process that has torch/torchvision.

    python tflite_to_onnx.py MODEL.tflite OUTPUT.onnx PROBES.npy --opset N

Writes OUTPUT.onnx and prints one JSON line: the largest |TFLite - ONNX Runtime| over the probe samples
(each sample of PROBES.npy is one batch-1 invocation), or, when the model does not take one batch-1
input shaped like the probes, its signature and nothing else. tf2onnx is not always right (it drops
the bias of some fully-connected layers), so a conversion is only trusted once this number is small.
"""

import argparse
import json

import numpy as np
import onnxruntime
import tensorflow as tf
import tf2onnx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("output")
    parser.add_argument("probes")
    parser.add_argument("--opset", type=int, required=True)
    args = parser.parse_args()

    # The signature is checked first, so a wrong model is refused without the cost of converting it.
    interpreter = tf.lite.Interpreter(model_path=args.model, num_threads=1)
    interpreter.allocate_tensors()
    input_details, output_details = interpreter.get_input_details(), interpreter.get_output_details()
    probes = np.load(args.probes).astype(np.float32)
    signature = {
        "inputs": [detail["shape"].tolist() for detail in input_details],
        "outputs": [detail["shape"].tolist() for detail in output_details],
    }
    if signature["inputs"] != [[1, *probes.shape[1:]]] or len(signature["outputs"]) != 1:
        print(json.dumps({"max_abs_difference": None, "signature": signature}))
        return

    model_proto, _ = tf2onnx.convert.from_tflite(args.model, opset=args.opset)
    with open(args.output, "wb") as fh:
        fh.write(model_proto.SerializeToString())
    session = onnxruntime.InferenceSession(args.output, providers=["CPUExecutionProvider"])
    onnx_input = session.get_inputs()[0].name

    largest = 0.0
    for sample in probes:
        interpreter.set_tensor(input_details[0]["index"], sample[None])
        interpreter.invoke()
        expected = interpreter.get_tensor(output_details[0]["index"]).ravel()
        converted = session.run(None, {onnx_input: sample[None]})[0].ravel()
        largest = max(largest, float(np.abs(expected - converted).max()))
    print(json.dumps({"max_abs_difference": largest}))


if __name__ == "__main__":
    main()
