"""Give a converted ONNX graph canonical names and order, so that every conversion writes the same bytes.

Standalone (onnx and the standard library; run beside tflite_to_onnx.py, which imports it by file path).
tf2onnx's output differs between runs in everything but structure: the names of initializers and
intermediate tensors and the order of nodes and initializers (measured: two conversions of MediaPipe's
blendshape model in a row, same hash seed, shared no initializer order). The torch module names its
parameters after that order, so a checkpoint trained with one conversion did not load with another.

Each node is keyed by what it computes: its op, attributes and the keys of its inputs (an initializer by its
dtype, shape and bytes; a graph input by its position). The nodes are then ordered topologically, ties
broken by key, and renamed in that order: initializers w0, w1, … (listed in order of first use), other
tensors t0, t1, …, nodes n0, n1, …; graph inputs and outputs keep their names. Two nodes with the same key
compute the same thing from the same inputs (ONNX's ops here are deterministic): the second is dropped and
its consumers read the first, since which of the two a consumer read would otherwise change the bytes.
"""

import hashlib
import heapq

import onnx
from onnx import numpy_helper


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


def _plain(tensor: onnx.TensorProto, name: str = "") -> onnx.TensorProto:
    """The tensor in one storage form (tf2onnx writes the same values as raw bytes or as typed lists)."""
    return numpy_helper.from_array(numpy_helper.to_array(tensor), name)


def _tensor_digest(tensor: onnx.TensorProto) -> str:
    return _digest(b"tensor", _plain(tensor).SerializeToString(deterministic=True))


def _plain_attribute(attribute: onnx.AttributeProto) -> onnx.AttributeProto:
    plain = onnx.AttributeProto()
    plain.CopyFrom(attribute)
    plain.ClearField("doc_string")
    if plain.HasField("t"):
        plain.t.CopyFrom(_plain(plain.t))
    for i, tensor in enumerate(plain.tensors):
        plain.tensors[i].CopyFrom(_plain(tensor))
    return plain


def canonical(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` with canonical names and order (see the module docstring)."""
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    keys: dict[str, str] = {"": "absent"}  # tensor name -> key
    keys.update({value.name: _digest(b"input", str(i).encode()) for i, value in enumerate(graph.input)
                 if value.name not in initializers})
    keys.update({name: _tensor_digest(init) for name, init in initializers.items()})
    node_keys = []
    for node in graph.node:  # ONNX lists nodes in a topological order, so inputs are keyed first
        key = _digest(node.op_type.encode(), node.domain.encode(),
                      *(_plain_attribute(a).SerializeToString(deterministic=True)
                        for a in sorted(node.attribute, key=lambda a: a.name)),
                      *(keys[name].encode() for name in node.input))
        node_keys.append(key)
        for slot, name in enumerate(node.output):
            keys[name] = _digest(key.encode(), str(slot).encode())

    producers = {name: i for i, node in enumerate(graph.node) for name in node.output}
    waiting = [sum(name in producers for name in node.input) for node in graph.node]
    consumers: dict[int, list[int]] = {}
    for i, node in enumerate(graph.node):
        for name in node.input:
            if name in producers:
                consumers.setdefault(producers[name], []).append(i)
    ready = [(node_keys[i], i) for i, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, i = heapq.heappop(ready)
        order.append(i)
        for j in consumers.get(i, []):
            waiting[j] -= 1
            if waiting[j] == 0:
                heapq.heappush(ready, (node_keys[j], j))

    public = {value.name for value in graph.input} | {value.name for value in graph.output}
    names: dict[str, str] = {"": ""}
    used_initializers: list[str] = []
    tensors = 0
    kept: dict[str, int] = {}  # node key -> the node computing it
    emitted: list[int] = []
    for i in order:
        node = graph.node[i]
        twin = kept.get(node_keys[i])
        if twin is not None and not public.intersection(node.output):
            names.update({name: names[graph.node[twin].output[slot]] for slot, name in enumerate(node.output)})
            continue
        kept.setdefault(node_keys[i], i)
        emitted.append(i)
        for name in node.input:
            if name in initializers and name not in names:
                names[name] = name if name in public else f"w{len(used_initializers)}"
                used_initializers.append(name)
        for name in node.output:
            names[name] = name if name in public else f"t{tensors}"
            tensors += name not in public
    names.update({name: name for name in public})

    result = onnx.ModelProto()
    result.CopyFrom(model)
    del result.graph.node[:]
    del result.graph.initializer[:]
    del result.graph.value_info[:]  # shapes of intermediate tensors: optional, and named the old way
    for n, i in enumerate(emitted):
        source = graph.node[i]
        node = onnx.helper.make_node(source.op_type, [names[name] for name in source.input],
                                     [names[name] for name in source.output], name=f"n{n}",
                                     domain=source.domain or None)
        node.attribute.extend(_plain_attribute(a) for a in sorted(source.attribute, key=lambda a: a.name))
        result.graph.node.append(node)
    result.graph.initializer.extend(_plain(initializers[name], names[name]) for name in used_initializers)
    return result
