"""Give a batch-1 ONNX graph a free batch axis: (1, ...) in -> (N, ...) in, the same arithmetic per sample.

tf2onnx converts MediaPipe's model as TFLite holds it, fixed to batch 1: reshapes to constant shapes
([1, 97, 1, 64]), a learned token concatenated as a [1, 64, 1, 1] constant, and a final slice and
squeeze of axis 0. Each of those is rewritten so that axis 0 is the batch everywhere:
  * Reshape to a constant shape starting with 1 (or -1 standing for it) -> the shape starts with 0
    ("keep the input's axis 0");
  * Concat with a constant of leading size 1 -> the constant is first expanded to the batch;
  * Slice of the whole of axis 0 (0:1) -> not sliced; a final Squeeze of axis 0 -> dropped, so the
    graph returns (N, ...);
  * Transpose, reductions, Conv, MatMul and element-wise ops must already leave axis 0 alone.
Anything else is refused, and the result is proven batch-native by shape inference: with a symbolic
batch, every tensor must have the shape it had before with `batch` in place of its leading 1.

Standalone on purpose (onnx and numpy only): tflite_to_onnx.py runs it beside TensorFlow, by file path.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

BATCH = "batch"
INT64_MAX = int(np.iinfo(np.int64).max)
# Ops that broadcast element-wise or never mix positions along axis 0 (checked afterwards by shape inference).
BATCH_FREE_OPS = {
    "Add", "Sub", "Mul", "Div", "Neg", "Reciprocal", "Sqrt", "Pow", "Exp", "Log", "Abs", "Relu", "Sigmoid",
    "Tanh", "Erf", "Max", "Min", "Clip", "Identity", "Conv", "MatMul", "LeakyRelu", "HardSigmoid",
    "GlobalAveragePool",
}
REDUCTIONS = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceSumSquare", "ReduceL2"}


class NotBatchable(ValueError):
    """The graph does something to axis 0 that has no batch-native equivalent here."""


def with_batch_axis(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of the batch-1 `model` whose single input and output have a free leading batch axis."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    _Rewrite(model).run()
    return model


class _Rewrite:
    def __init__(self, model: onnx.ModelProto) -> None:
        self.model, self.graph = model, model.graph
        if len(self.graph.input) != 1 or len(self.graph.output) != 1:
            raise NotBatchable("expected a graph with one input and one output")
        self.shapes = inferred_shapes(model)
        self.constants = {tensor.name: tensor for tensor in self.graph.initializer}

    def run(self) -> None:
        source = self.graph.input[0].name
        if self.shapes[source][:1] != [1]:
            raise NotBatchable(f"input {source} is not batch-1: {self.shapes[source]}")
        output = self.graph.output[0].name
        self.expected = {}
        nodes: list[onnx.NodeProto] = []
        for node in self.graph.node:
            if node.op_type == "Squeeze" and node.output[0] == output:
                if self._constant(node, 1).tolist() != [0]:
                    raise NotBatchable(f"the final Squeeze {node.name} removes more than the batch axis")
                # The output keeps its batch axis: (N, ...) where the batch-1 graph gave (...).
                nodes.append(helper.make_node("Identity", [node.input[0]], [output]))
                self.expected[output] = [BATCH, *self.shapes[node.input[0]][1:]]
                continue
            nodes.extend(self._rewritten(node))
        del self.graph.node[:]
        self.graph.node.extend(nodes)
        used = {name for node in nodes for name in node.input}
        kept = [tensor for tensor in self.graph.initializer if tensor.name in used]
        del self.graph.initializer[:]
        self.graph.initializer.extend(kept)
        _set_leading_dim(self.graph.input[0], BATCH)
        self.graph.output[0].type.tensor_type.ClearField("shape")  # left to inference; checked below
        self._check()

    def _rewritten(self, node: onnx.NodeProto) -> list[onnx.NodeProto]:
        op = node.op_type
        if op in BATCH_FREE_OPS:
            return [node]
        if op == "Reshape":
            shape = self._constant(node, 1)
            # A leading -1 stands for the batch of 1 too, when no other axis is inferred.
            if not (shape[0] == 1 or shape[0] == -1 and (shape[1:] > 0).all()):
                raise NotBatchable(f"Reshape {node.name} to {shape.tolist()} moves the batch axis")
            self._set_constant(node, 1, np.concatenate([[0], shape[1:]]))
            return [node]
        if op == "Transpose":
            perm = _attribute(node, "perm")
            if perm is None or perm[0] != 0:
                raise NotBatchable(f"Transpose {node.name} with perm {perm} moves the batch axis")
            return [node]
        if op in REDUCTIONS:
            axes = _attribute(node, "axes")
            if axes is None and len(node.input) > 1 and node.input[1]:
                axes = self._constant(node, 1).tolist()
            rank = len(self.shapes[node.input[0]])
            if axes is None or any(axis % rank == 0 for axis in axes):
                raise NotBatchable(f"{op} {node.name} reduces over the batch axis")
            return [node]
        if op == "Slice":
            return [self._slice_all_of_batch(node)]
        if op == "Concat":
            return self._concat_with_expanded_constants(node)
        raise NotBatchable(f"{op} node {node.name} has no batch-native rewrite")

    def _slice_all_of_batch(self, node: onnx.NodeProto) -> onnx.NodeProto:
        """The same Slice without axis 0, which it may only take whole (0:1 of a batch of 1)."""
        starts, ends = self._constant(node, 1), self._constant(node, 2)
        axes = self._constant(node, 3) if len(node.input) > 3 and node.input[3] else np.arange(len(starts))
        steps = self._constant(node, 4) if len(node.input) > 4 and node.input[4] else np.ones_like(starts)
        batch = axes % len(self.shapes[node.input[0]]) == 0
        if (starts[batch] != 0).any() or (steps[batch] != 1).any() or (ends[batch] < 1).any():
            raise NotBatchable(f"Slice {node.name} takes part of the batch axis")
        if batch.all():
            return helper.make_node("Identity", [node.input[0]], list(node.output), name=node.name)
        names = [f"{node.output[0]}__batch_{part}" for part in ("starts", "ends", "axes", "steps")]
        for name, values in zip(names, (starts, ends, axes, steps)):
            self._add_constant(name, values[~batch].astype(np.int64))
        del node.input[1:]
        node.input.extend(names)
        return node

    def _concat_with_expanded_constants(self, node: onnx.NodeProto) -> list[onnx.NodeProto]:
        rank = len(self.shapes[node.output[0]])
        if _attribute(node, "axis") % rank == 0:
            raise NotBatchable(f"Concat {node.name} joins along the batch axis")
        batched = [name for name in node.input if name not in self.constants]
        if not batched:
            return [node]
        # Each constant is expanded to (batch, ...): Expand broadcasts against (batch, 1, ..., 1).
        prefix = f"{node.output[0]}__batch"
        self._add_constant(f"{prefix}_ones", np.ones(rank - 1, np.int64))
        extra = [
            helper.make_node("Shape", [batched[0]], [f"{prefix}_n"], start=0, end=1),
            helper.make_node("Concat", [f"{prefix}_n", f"{prefix}_ones"], [f"{prefix}_shape"], axis=0),
        ]
        for index, name in enumerate(node.input):
            if name in self.constants:
                if self.shapes[name][:1] != [1]:
                    raise NotBatchable(f"Concat {node.name} of constant {name} shaped {self.shapes[name]}")
                extra.append(helper.make_node("Expand", [name, f"{prefix}_shape"], [f"{prefix}_{index}"]))
                node.input[index] = f"{prefix}_{index}"
        return [*extra, node]

    def _constant(self, node: onnx.NodeProto, index: int) -> np.ndarray:
        name = node.input[index]
        if name not in self.constants:
            raise NotBatchable(f"{node.op_type} {node.name} reads a computed input {name}; only constants are rewritten")
        return numpy_helper.to_array(self.constants[name])

    def _set_constant(self, node: onnx.NodeProto, index: int, value: np.ndarray) -> None:
        """Point input `index` of `node` at a constant holding `value`; other readers keep the old one."""
        value = value.astype(np.int64)
        if np.array_equal(self._constant(node, index), value):
            return
        name = f"{node.input[index]}__batch_" + "_".join(str(v) for v in value.tolist()).replace("-", "m")
        if name not in self.constants:
            self._add_constant(name, value)
        node.input[index] = name

    def _add_constant(self, name: str, value: np.ndarray) -> None:
        self.constants[name] = numpy_helper.from_array(value, name)
        self.graph.initializer.append(self.constants[name])

    def _check(self) -> None:
        after = inferred_shapes(self.model)
        for name, shape in self.shapes.items():
            if name in self.constants:
                continue
            expected = self.expected.get(name) or ([BATCH, *shape[1:]] if shape[:1] == [1] else None)
            if after.get(name) != expected:
                raise NotBatchable(f"{name} is {after.get(name)} with a batch axis, {shape} without")
        output = self.graph.output[0]
        output.type.tensor_type.shape.dim.extend(
            onnx.TensorShapeProto.Dimension(**({"dim_param": d} if isinstance(d, str) else {"dim_value": d}))
            for d in after[output.name]
        )


def _attribute(node: onnx.NodeProto, name: str):
    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return None


def _set_leading_dim(value: onnx.ValueInfoProto, dim: str) -> None:
    first = value.type.tensor_type.shape.dim[0]
    first.Clear()
    first.dim_param = dim


def inferred_shapes(model: onnx.ModelProto) -> dict[str, list[int | str | None]]:
    """Every tensor's shape by ONNX shape inference: ints, or the name of a symbolic axis such as BATCH."""
    inferred = shape_inference.infer_shapes(model, strict_mode=True, data_prop=True).graph
    shapes = {}
    for value in [*inferred.input, *inferred.value_info, *inferred.output]:
        shapes[value.name] = [d.dim_param or (d.dim_value if d.HasField("dim_value") else None)
                              for d in value.type.tensor_type.shape.dim]
    for tensor in inferred.initializer:
        shapes[tensor.name] = list(tensor.dims)
    return shapes
