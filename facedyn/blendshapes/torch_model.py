"""Batch-native ONNX -> torch with onnx2torch, made trainable.

The cached ONNX graph already has a free batch axis (batch_axis.py), so onnx2torch's fx.GraphModule runs
a whole batch in one call: each of MediaPipe's 1x1 convolutions is one convolution over the batch (on
this CPU oneDNN's convolution was faster than the same product written as a matrix multiplication).
These changes make it a training module:
  * every float initializer with more than one element (layer-norm scales, learned tokens, ...) becomes
    an nn.Parameter; single-element floats (epsilons, fixed scales such as the 0.5 of a division) and
    integer tensors (reshape shapes, slice bounds) stay buffers. onnx2torch makes one buffer per *use*
    of an initializer; they are merged back to one tensor per ONNX initializer so nothing gets untied.
  * means in the input normalisation (before the first weight layer) add their terms one by one, as
    TFLite's Mean kernel does. They average raw pixel coordinates (~300 px), where torch's pairwise
    summation differs from TFLite's by a few ulp, and the layer norms downstream amplify that about
    tenfold (1.7e-5 on the scores instead of 1.5e-6).
  * under torch.autocast the graph still runs in its own dtype (float32): autocast is switched off inside.
    The 1e-5 exactness would not survive bf16 (scores drifted by up to ~0.05), and on CUDA autocast
    handed bf16 inputs to 1x1 convolutions with float32 biases, which failed (seen on an H200). The model
    is ~32 M multiply-adds per face: fp32 costs little.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Iterator

import onnx
import onnx2torch
import torch
from onnx2torch.node_converters.reduce import OnnxReduceStaticAxes
from torch import fx, nn

from facedyn.landmarks import NUM_SUBSET_LANDMARKS

# onnx2torch's Slice indexes with a list of slices; torch warns about that on every call.
LIST_INDEXING_WARNING = "Using a non-tuple sequence for multidimensional indexing"


class SequentialMean(nn.Module):
    """Mean over one axis, accumulated term by term in the input's dtype and scaled by 1/n, like TFLite."""

    def __init__(self, axis: int, keepdim: bool) -> None:
        super().__init__()
        self.axis, self.keepdim = axis, keepdim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        terms = x.unbind(self.axis)
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        mean = total * (1.0 / len(terms))
        return mean.unsqueeze(self.axis) if self.keepdim else mean


class BlendshapeModel(nn.Module):
    """MediaPipe's blendshape network: (N, 146, 2) landmark pixel coordinates -> (N, 52) scores."""

    def __init__(self, graph: fx.GraphModule) -> None:
        super().__init__()
        self.graph = graph

    def forward(self, landmarks: torch.Tensor) -> torch.Tensor:
        if landmarks.dim() != 3 or landmarks.shape[1:] != (NUM_SUBSET_LANDMARKS, 2) or landmarks.shape[0] < 1:
            raise ValueError(
                f"blendshape model expects landmarks of shape (N, {NUM_SUBSET_LANDMARKS}, 2) with N >= 1, "
                f"got {tuple(landmarks.shape)}"
            )
        if not landmarks.is_floating_point():
            raise TypeError(f"blendshape model expects float landmarks, got {landmarks.dtype}")
        # float64 landmarks (numpy's default) meet float32 weights here, not deep inside the graph.
        weight = next(self.parameters())
        with warnings.catch_warnings(), torch.autocast(landmarks.device.type, enabled=False), _ieee_convolutions():
            warnings.filterwarnings("ignore", message=LIST_INDEXING_WARNING)
            return self.graph(landmarks.to(weight.dtype))


@contextlib.contextmanager
def _ieee_convolutions() -> Iterator[None]:
    """cuDNN convolutions in true float32 meanwhile: by default torch lets them use TF32 (10-bit mantissa),
    which moved the scores by up to 2.3e-3 on an H200. Only the forward pass is covered; a backward pass
    runs under the caller's setting."""
    allowed = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = allowed


def convert(onnx_path: str | Path) -> BlendshapeModel:
    """A trainable torch module from the (validated, batch-native) ONNX blendshape model."""
    graph_module = onnx2torch.convert(onnx.load(str(onnx_path)), attach_onnx_mapping=True)
    _one_tensor_per_initializer(graph_module)
    _sequential_means_before_first_weight(graph_module)
    _float_weights_to_parameters(graph_module)
    return BlendshapeModel(graph_module)


def _initializer_names(graph_module: fx.GraphModule) -> dict[str, str]:
    """For each onnx2torch initializer attribute, the ONNX initializer it was made from."""
    names: dict[str, str] = {}
    for node in graph_module.graph.nodes:
        if node.op != "call_module":
            continue
        onnx_inputs = graph_module.get_submodule(node.target).onnx_mapping.inputs
        for arg, onnx_name in zip(node.args, onnx_inputs):
            if isinstance(arg, fx.Node) and arg.op == "get_attr" and arg.target.startswith("initializers."):
                names[arg.target] = onnx_name
    return names


def _sequential_means_before_first_weight(graph_module: fx.GraphModule) -> None:
    float_weights = {
        attr for attr, tensor in graph_module.get_submodule("initializers").named_buffers(prefix="initializers")
        if tensor.is_floating_point() and tensor.numel() > 1
    }
    for node in graph_module.graph.nodes:
        if node.op != "call_module":
            continue
        module = graph_module.get_submodule(node.target)
        reads_weight = any(isinstance(arg, fx.Node) and arg.target in float_weights for arg in node.args)
        if reads_weight or any(True for _ in module.parameters()):
            return
        if isinstance(module, OnnxReduceStaticAxes) and module.operation_type == "ReduceMean" and module.axes \
                and len(module.axes) == 1:
            graph_module.add_submodule(node.target, SequentialMean(module.axes[0], module.keepdims))


def _one_tensor_per_initializer(graph_module: fx.GraphModule) -> None:
    container = graph_module.get_submodule("initializers")
    onnx_name_of = _initializer_names(graph_module)
    kept_attr: dict[str, str] = {}
    for node in graph_module.graph.nodes:
        if node.op == "get_attr" and node.target in onnx_name_of:
            node.target = kept_attr.setdefault(onnx_name_of[node.target], node.target)
    used = {node.target for node in graph_module.graph.nodes if node.op == "get_attr"}
    for name, _ in list(container.named_buffers()):
        if f"initializers.{name}" not in used:
            delattr(container, name)
    graph_module.recompile()


def _float_weights_to_parameters(graph_module: fx.GraphModule) -> None:
    container = graph_module.get_submodule("initializers")
    for name, tensor in list(container.named_buffers()):
        if tensor.is_floating_point() and tensor.numel() > 1:
            delattr(container, name)
            container.register_parameter(name, nn.Parameter(tensor.clone()))
