"""Convert a batch-1 TFLite model to a batch-native ONNX graph and check it against TensorFlow's interpreter.

Standalone on purpose (tensorflow, tf2onnx, onnxruntime, numpy, and batch_axis.py and canonical.py beside
it; run by file path): TensorFlow must never be imported into a process that has torch/torchvision.

    python tflite_to_onnx.py MODEL.tflite OUTPUT.onnx PROBES.npy --opset N

tf2onnx converts the model as TFLite holds it (batch 1); batch_axis.py then frees its batch axis and
canonical.py names and orders the graph the same way every time. Writes
OUTPUT.onnx and prints one JSON line: the largest |TFLite - ONNX Runtime| over the probe samples (TFLite
invoked once per sample, ONNX Runtime once on all of them), or, when the model does not take one batch-1
input shaped like the probes, its signature and nothing else, or why its graph cannot be batched.
tf2onnx is not always right (it drops the bias of some fully-connected layers), so a conversion is only
trusted once this number is small.
"""

import argparse
import json

import numpy as np
import onnxruntime
import tensorflow as tf
import tf2onnx

from batch_axis import NotBatchable, with_batch_axis
from canonical import canonical


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
    try:
        model_proto = with_batch_axis(model_proto)
    except NotBatchable as exc:
        print(json.dumps({"max_abs_difference": None, "not_batchable": str(exc)}))
        return
    model_proto = canonical(model_proto)  # the same bytes from every conversion (tf2onnx's names vary)
    with open(args.output, "wb") as fh:
        fh.write(model_proto.SerializeToString())
    session = onnxruntime.InferenceSession(args.output, providers=["CPUExecutionProvider"])
    converted = session.run(None, {session.get_inputs()[0].name: probes})[0].reshape(len(probes), -1)

    expected = []
    for sample in probes:
        interpreter.set_tensor(input_details[0]["index"], sample[None])
        interpreter.invoke()
        expected.append(interpreter.get_tensor(output_details[0]["index"]).ravel())
    print(json.dumps({"max_abs_difference": float(np.abs(np.stack(expected) - converted).max())}))


if __name__ == "__main__":
    main()
