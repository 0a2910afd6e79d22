"""MediaPipe's real face_blendshapes model through the pipeline: exact against TFLite and MediaPipe's test vector."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from facedyn.blendshapes import BLENDSHAPE_NAMES, load
from facedyn.blendshapes import canonical as canonical_module
from facedyn.blendshapes.onnx_cache import onnx_model_for
from facedyn.blendshapes.reference import tflite_scores
from facedyn.landmarks import LANDMARK_SUBSET_IDXS, NUM_BLENDSHAPES
from tests.mediapipe_fixtures import read_landmarks, read_scores

pytestmark = pytest.mark.real_model

IMAGE_WIDTH, IMAGE_HEIGHT = 820, 1024  # MediaPipe's test portrait


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FACEDYN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def fixture_face(mediapipe_fixtures) -> np.ndarray:
    """MediaPipe's test portrait: its 146 model landmarks in pixels."""
    mesh = read_landmarks(mediapipe_fixtures / "face_blendshapes_in_landmarks.prototxt", IMAGE_WIDTH, IMAGE_HEIGHT)
    return mesh[list(LANDMARK_SUBSET_IDXS)].astype(np.float32)


@pytest.fixture(scope="module")
def plausible_faces(fixture_face) -> np.ndarray:
    """256 faces: the portrait under random similarity transforms, plus small per-point noise."""
    rng = np.random.default_rng(11)
    count = 256
    angles = rng.uniform(-0.35, 0.35, count)
    scales = rng.uniform(0.5, 1.6, count)
    shifts = rng.uniform(-150, 150, (count, 1, 2))
    rotations = np.stack([np.stack([np.cos(angles), -np.sin(angles)], -1),
                          np.stack([np.sin(angles), np.cos(angles)], -1)], -2)  # (count, 2, 2)
    centre = fixture_face.mean(axis=0)
    faces = (fixture_face - centre) @ rotations.transpose(0, 2, 1) * scales[:, None, None] + centre + shifts
    faces += rng.normal(scale=2.0, size=faces.shape)
    return faces.astype(np.float32)


@pytest.fixture(scope="module")
def tflite_reference(blendshapes_tflite_file, fixture_face, plausible_faces) -> np.ndarray:
    """TFLite scores for [fixture face, *plausible faces], in one child process."""
    return tflite_scores(np.concatenate([fixture_face[None], plausible_faces]), blendshapes_tflite_file)


@pytest.mark.parametrize("batch", [1, 7, 256])
def test_matches_the_tflite_interpreter(cache, blendshapes_tflite_file, plausible_faces, tflite_reference, batch):
    """All 256 faces, fed in calls of `batch` faces (the last call of 7 takes the 4 left over)."""
    model = load(blendshapes_tflite_file).eval()
    with torch.no_grad():
        scores = np.concatenate([model(chunk).numpy() for chunk in torch.from_numpy(plausible_faces).split(batch)])
    assert scores.shape == (len(plausible_faces), NUM_BLENDSHAPES)
    assert np.abs(scores - tflite_reference[1:]).max() <= 1e-5
    assert scores.std(axis=0).max() > 0.01  # the faces differ enough to move the scores


def test_reproduces_mediapipes_test_vector(cache, landmarker_task, mediapipe_fixtures, fixture_face, tflite_reference):
    expected = read_scores(mediapipe_fixtures / "face_blendshapes_out.prototxt")
    assert list(expected) == list(BLENDSHAPE_NAMES)
    expected = np.array(list(expected.values()), dtype=np.float32)
    model = load(landmarker_task)  # the bundle users download, as FACEDYN_LANDMARKER names it
    with torch.no_grad():
        scores = model(torch.from_numpy(fixture_face[None])).numpy()[0]
    assert np.abs(scores - expected).max() <= 1e-4
    assert np.abs(tflite_reference[0] - expected).max() <= 1e-5  # the reference itself is MediaPipe's


def test_every_float_weight_is_a_parameter(cache, blendshapes_tflite_file):
    graph = onnx.load(str(onnx_model_for(blendshapes_tflite_file))).graph
    weights = [onnx.numpy_helper.to_array(t) for t in graph.initializer]
    weight_count = sum(w.size for w in weights if w.dtype.kind == "f" and w.size > 1)
    model = load(blendshapes_tflite_file)
    assert sum(p.numel() for p in model.parameters()) == weight_count > 400_000
    assert all(not b.is_floating_point() or b.numel() == 1 for b in model.buffers())
    model(torch.from_numpy(np.full((2, 146, 2), 300, np.float32) + np.arange(292).reshape(146, 2))).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_trains_in_float32_under_bf16_autocast(cache, blendshapes_tflite_file, plausible_faces, tflite_reference):
    model = load(blendshapes_tflite_file)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scores = model(torch.from_numpy(plausible_faces[:16]))
    assert scores.dtype == torch.float32
    scores.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert np.abs(scores.detach().numpy() - tflite_reference[1:17]).max() < 1e-5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_bf16_autocast_keeps_float32_exactness(cache, blendshapes_tflite_file, plausible_faces, tflite_reference):
    # On an H200 autocast inside vmap crashed (bf16 input, fp32 conv bias) and cuDNN's TF32 moved scores by 2.3e-3.
    model = load(blendshapes_tflite_file).cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        scores = model(torch.from_numpy(plausible_faces).cuda())
    assert scores.dtype == torch.float32
    scores.sum().backward()
    assert np.abs(scores.detach().cpu().numpy() - tflite_reference[1:]).max() < 1e-5



def test_canonical_names_and_order_do_not_depend_on_how_tf2onnx_named_and_ordered_the_graph(
        cache, blendshapes_tflite_file, plausible_faces):
    """tf2onnx names and orders a graph differently on each run, and the torch module names its parameters
    after that order: canonical() must map any naming and topological order of one graph to the same bytes."""
    import random

    import onnxruntime

    graph = onnx.load(str(onnx_model_for(blendshapes_tflite_file)))
    shuffled = onnx.ModelProto()
    shuffled.CopyFrom(graph)
    rng = random.Random(7)
    public = {v.name for v in graph.graph.input} | {v.name for v in graph.graph.output}
    tensors = {t for n in graph.graph.node for t in (*n.input, *n.output) if t and t not in public}
    renamed = dict(zip(sorted(tensors), rng.sample([f"x{i}" for i in range(len(tensors))], len(tensors))))
    nodes = list(shuffled.graph.node)
    order = _random_topological_order(nodes, rng)
    del shuffled.graph.node[:]
    for i in order:
        node = nodes[i]
        node.input[:] = [renamed.get(t, t) for t in node.input]
        node.output[:] = [renamed.get(t, t) for t in node.output]
        node.name = f"random{rng.random()}"
        shuffled.graph.node.append(node)
    inits = list(shuffled.graph.initializer)
    rng.shuffle(inits)
    del shuffled.graph.initializer[:]
    for init in inits:
        init.name = renamed.get(init.name, init.name)
        shuffled.graph.initializer.append(init)
    assert shuffled.SerializeToString() != graph.SerializeToString()

    a, b = canonical_module.canonical(graph), canonical_module.canonical(shuffled)
    assert a.SerializeToString(deterministic=True) == b.SerializeToString(deterministic=True)
    faces = plausible_faces[:16]
    outputs = [onnxruntime.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
               .run(None, {graph.graph.input[0].name: faces})[0] for m in (graph, a)]
    assert np.array_equal(outputs[0], outputs[1])


def _random_topological_order(nodes, rng) -> list[int]:
    producers = {t: i for i, n in enumerate(nodes) for t in n.output}
    needs = [{producers[t] for t in n.input if t in producers} for n in nodes]
    done, order = set(), []
    while len(order) < len(nodes):
        ready = [i for i in range(len(nodes)) if i not in done and needs[i] <= done]
        pick = rng.choice(ready)
        done.add(pick)
        order.append(pick)
    return order
