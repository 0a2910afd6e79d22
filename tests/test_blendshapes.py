"""The TFLite -> ONNX -> torch pipeline on a small stand-in model that the test builds with TensorFlow.

The stand-in has the real model's op kinds (fully-connected, 1x1 conv, layer norm, transpose, reshape,
logistic) and signature (1x146x2 -> 52), so every step is tested on a machine without MediaPipe's file.
TensorFlow runs only in child processes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from facedyn.assets import AssetError
from facedyn.blendshapes import BLENDSHAPE_NAMES, load
from facedyn.blendshapes.batch_axis import NotBatchable, with_batch_axis
from facedyn.blendshapes.onnx_cache import onnx_model_for
from facedyn.blendshapes.reference import tflite_scores
from facedyn.blendshapes.torch_model import convert
from facedyn.landmarks import NUM_BLENDSHAPES, NUM_SUBSET_LANDMARKS

REPO = Path(__file__).resolve().parents[1]

# Runs in a child process: builds the stand-in (and one with the wrong input shape) and converts both to TFLite.
BUILD_STANDIN = textwrap.dedent('''
    import json, sys
    import numpy as np
    import tensorflow as tf

    def build(num_points, seed):
        rng = np.random.default_rng(seed)
        def var(*shape, scale=0.3):
            return tf.Variable(rng.normal(scale=scale, size=shape).astype(np.float32))
        module = tf.Module()
        module.dense_w, module.dense_b = var(num_points, 32), var(32)
        module.gamma, module.beta = var(32, scale=1.0), var(32)
        module.conv_w, module.conv_b = var(1, 1, 64, 48), var(48)
        module.head_w, module.head_b = var(1, 1, 48, 52), var(52)

        @tf.function(input_signature=[tf.TensorSpec([1, num_points, 2], tf.float32)])
        def forward(points):
            centred = points - tf.reduce_mean(points, axis=1, keepdims=True)
            scale = tf.reduce_mean(tf.norm(centred, axis=2, keepdims=True), axis=1, keepdims=True)
            tokens = tf.transpose(centred / scale, [0, 2, 1])                       # (1, 2, P)
            hidden = tf.matmul(tokens, module.dense_w) + module.dense_b            # fully connected
            mean, var_ = tf.nn.moments(hidden, axes=[2], keepdims=True)            # layer norm
            hidden = (hidden - mean) * tf.math.rsqrt(var_ + 1e-6) * module.gamma + module.beta
            hidden = tf.reshape(tf.nn.relu(hidden), [1, 1, 1, 64])
            hidden = tf.nn.relu(tf.nn.conv2d(hidden, module.conv_w, strides=1, padding="VALID") + module.conv_b)
            logits = tf.nn.conv2d(hidden, module.head_w, strides=1, padding="VALID") + module.head_b
            return tf.reshape(tf.sigmoid(logits), [1, 52])

        converter = tf.lite.TFLiteConverter.from_concrete_functions([forward.get_concrete_function()], module)
        weights = sum(int(np.prod(v.shape)) for v in module.trainable_variables)
        return converter.convert(), weights

    out = sys.argv[1]
    standin, weights = build(146, 0)
    open(f"{out}/standin.tflite", "wb").write(standin)
    open(f"{out}/wrong_shape.tflite", "wb").write(build(100, 1)[0])
    json.dump({"weights": weights}, open(f"{out}/standin.json", "w"))

    # tf2onnx drops the bias of a FULLY_CONNECTED whose input is 4-D (TFLite's converter makes one from
    # reshape + matmul after a conv); the conversion check must catch it.
    rng = np.random.default_rng(2)
    conv_w, conv_b = rng.normal(size=(1, 1, 292, 48)) / 300, rng.normal(size=48)
    head_w, head_b = rng.normal(size=(48, 52)) / 8, rng.normal(size=52)

    @tf.function(input_signature=[tf.TensorSpec([1, 146, 2], tf.float32)])
    def bias_dropped(points):
        hidden = tf.nn.conv2d(tf.reshape(points, [1, 1, 1, 292]), conv_w.astype("float32"), 1, "VALID")
        hidden = tf.reshape(hidden + conv_b.astype("float32"), [1, 48])
        return tf.sigmoid(tf.matmul(hidden, head_w.astype("float32")) + head_b.astype("float32"))

    converter = tf.lite.TFLiteConverter.from_concrete_functions([bias_dropped.get_concrete_function()])
    open(f"{out}/bias_dropped.tflite", "wb").write(converter.convert())
''')


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("standin")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run([sys.executable, "-c", BUILD_STANDIN, str(folder)], check=True, env=env, capture_output=True)
    info = json.loads((folder / "standin.json").read_text())
    return {
        "tflite": folder / "standin.tflite",
        "wrong_shape": folder / "wrong_shape.tflite",
        "bias_dropped": folder / "bias_dropped.tflite",
        **info,
    }


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One conversion cache for the module: FACEDYN_CACHE_DIR points at it while these tests run."""
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FACEDYN_CACHE_DIR", str(folder))
        yield folder


@pytest.fixture(scope="module")
def landmarks() -> np.ndarray:
    """256 face-sized point sets in pixels (the stand-in only needs varied, plausible magnitudes)."""
    rng = np.random.default_rng(7)
    centres = rng.uniform(200, 800, size=(256, 1, 2))
    return (centres + rng.normal(scale=80, size=(256, NUM_SUBSET_LANDMARKS, 2))).astype(np.float32)


@pytest.fixture(scope="module")
def reference(standin, landmarks) -> np.ndarray:
    return tflite_scores(landmarks, standin["tflite"])


def test_names_are_reexported():
    assert len(BLENDSHAPE_NAMES) == NUM_BLENDSHAPES and BLENDSHAPE_NAMES[0] == "_neutral"


@pytest.mark.parametrize("batch", [1, 7, 256])
def test_matches_tflite_at_any_batch_size(standin, cache, landmarks, reference, batch):
    """All 256 point sets, fed in calls of `batch` sets (the last call of 7 takes the 4 left over)."""
    model = load(standin["tflite"]).eval()
    with torch.no_grad():
        scores = np.concatenate([model(chunk).numpy() for chunk in torch.from_numpy(landmarks).split(batch)])
    assert scores.shape == (len(landmarks), NUM_BLENDSHAPES)
    assert np.abs(scores - reference).max() <= 1e-5


def test_every_float_weight_is_a_trainable_parameter(standin, cache):
    model = load(standin["tflite"])
    assert sum(p.numel() for p in model.parameters()) == standin["weights"]
    assert all(p.requires_grad for p in model.parameters())
    # What stays a buffer is a constant: shapes, slice bounds, single-element epsilons and scales.
    assert all(not b.is_floating_point() or b.numel() == 1 for b in model.buffers())


def test_gradients_reach_every_parameter_and_freezing_stops_them(standin, cache, landmarks):
    model = load(standin["tflite"])
    model(torch.from_numpy(landmarks[:5])).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())

    frozen = load(standin["tflite"]).requires_grad_(False)
    points = torch.from_numpy(landmarks[:5]).requires_grad_(True)
    frozen(points).sum().backward()
    assert all(p.grad is None for p in frozen.parameters())
    assert points.grad is not None and points.grad.abs().sum() > 0  # the input still gets gradients


def test_a_training_step_lowers_the_loss(standin, cache, landmarks):
    model = load(standin["tflite"])
    points, target = torch.from_numpy(landmarks[:32]), torch.full((32, NUM_BLENDSHAPES), 0.5)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        loss = torch.nn.functional.mse_loss(model(points), target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_each_load_is_an_independent_copy(standin, cache, landmarks):
    first, second = load(standin["tflite"]), load(standin["tflite"])
    points = torch.from_numpy(landmarks[:3])
    before = second(points).detach()
    with torch.no_grad():
        for parameter in first.parameters():
            parameter.add_(1.0)
    assert torch.equal(second(points).detach(), before)
    assert not torch.allclose(first(points).detach(), before)


def test_a_saved_state_dict_restores_into_a_fresh_load(standin, cache, landmarks, tmp_path):
    trained = load(standin["tflite"])
    with torch.no_grad():
        for parameter in trained.parameters():
            parameter.mul_(1.1)
    torch.save(trained.state_dict(), tmp_path / "blendshapes.pt")
    restored = load(standin["tflite"])
    restored.load_state_dict(torch.load(tmp_path / "blendshapes.pt"))
    points = torch.from_numpy(landmarks[:4])
    assert torch.equal(restored(points), trained(points))


def test_runs_in_float32_under_bf16_autocast(standin, cache, landmarks, reference):
    model = load(standin["tflite"])
    points = torch.from_numpy(landmarks[:16])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scores = model(points)
        scores.sum().backward()
    assert scores.dtype == torch.float32
    assert torch.equal(scores.detach(), model(points).detach())  # autocast changes nothing inside
    assert np.abs(scores.detach().numpy() - reference[:16]).max() < 1e-5


def test_every_tensor_moves_with_the_module(standin, cache, landmarks, reference):
    model = load(standin["tflite"]).to(torch.float64)
    assert all(t.dtype == torch.float64 for t in [*model.parameters(), *model.buffers()] if t.is_floating_point())
    with torch.no_grad():
        scores = model(torch.from_numpy(landmarks[:8]).double())
    assert scores.dtype == torch.float64
    assert np.abs(scores.numpy() - reference[:8]).max() <= 1e-5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_cuda(standin, cache, landmarks, reference):
    model = load(standin["tflite"]).cuda()
    scores = model(torch.from_numpy(landmarks).cuda())
    scores.sum().backward()
    assert np.abs(scores.detach().cpu().numpy() - reference).max() <= 1e-5


def test_rejects_landmarks_of_the_wrong_shape(standin, cache):
    model = load(standin["tflite"])
    with pytest.raises(ValueError, match=r"\(N, 146, 2\)"):
        model(torch.zeros(4, 478, 2))
    with pytest.raises(ValueError, match=r"\(N, 146, 2\)"):
        model(torch.zeros(146, 2))


def test_second_load_uses_the_cache_without_tensorflow(standin, cache):
    onnx_path = onnx_model_for(standin["tflite"])
    written = onnx_path.stat().st_mtime_ns
    probe = (
        "import json, sys, time\n"
        "start = time.perf_counter()\n"
        "from facedyn.blendshapes import load\n"
        f"load({str(standin['tflite'])!r})\n"
        "print(json.dumps({'seconds': time.perf_counter() - start,\n"
        "                  'tensorflow': 'tensorflow' in sys.modules, 'tf2onnx': 'tf2onnx' in sys.modules}))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "FACEDYN_CACHE_DIR": str(cache)}, check=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"cached load in a fresh process (imports included): {report['seconds']:.2f} s")
    assert not report["tensorflow"] and not report["tf2onnx"]
    assert onnx_path.stat().st_mtime_ns == written  # nothing was converted again


@pytest.mark.parametrize(
    "damage",
    ["truncate_onnx", pytest.param("other_source", marks=pytest.mark.slow), pytest.param("garble_sidecar", marks=pytest.mark.slow),
     pytest.param("delete_sidecar", marks=pytest.mark.slow)],
)
def test_a_damaged_cache_entry_is_rebuilt_not_loaded(standin, cache, tmp_path, landmarks, reference, damage):
    # Start from a copy of the module's good entry, so each case pays for one conversion (the rebuild).
    good = onnx_model_for(standin["tflite"])
    (tmp_path / "models").mkdir()
    onnx_path = tmp_path / "models" / good.name
    sidecar = onnx_path.with_suffix(".json")
    shutil.copy2(good, onnx_path)
    shutil.copy2(good.with_suffix(".json"), sidecar)
    if damage == "truncate_onnx":
        onnx_path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif damage == "garble_sidecar":
        sidecar.write_text("{not json")
    elif damage == "delete_sidecar":
        sidecar.unlink()
    else:
        record = json.loads(sidecar.read_text())
        sidecar.write_text(json.dumps({**record, "source_sha256": "0" * 64}))
    damaged_mtime = onnx_path.stat().st_mtime_ns

    rebuilt = onnx_model_for(standin["tflite"], cache=tmp_path)
    assert rebuilt == onnx_path and rebuilt.stat().st_mtime_ns != damaged_mtime
    assert json.loads(sidecar.read_text())["source_sha256"] != "0" * 64
    with torch.no_grad():
        scores = convert(rebuilt)(torch.from_numpy(landmarks[:4])).numpy()
    assert np.abs(scores - reference[:4]).max() <= 1e-5


def test_a_conversion_that_disagrees_with_tflite_is_refused(standin, tmp_path):
    with pytest.raises(AssetError, match=r"bias_dropped\.tflite disagrees with the TFLite interpreter"):
        onnx_model_for(standin["bias_dropped"], cache=tmp_path)
    assert not list((tmp_path / "models").glob("*.onnx"))


def test_a_model_with_the_wrong_signature_is_refused(standin, tmp_path):
    with pytest.raises(AssetError, match=r"wrong_shape\.tflite.*\[1, 100, 2\].*face_blendshapes"):
        onnx_model_for(standin["wrong_shape"], cache=tmp_path)
    assert not list((tmp_path / "models").glob("*.onnx"))  # nothing half-made is left to be trusted


def test_a_file_that_is_not_tflite_is_refused(tmp_path):
    bogus = tmp_path / "face_blendshapes.tflite"
    bogus.write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(AssetError, match="neither a TFLite model nor"):
        load(bogus)
    with pytest.raises(AssetError, match="not a TFLite model"):
        onnx_model_for(bogus, cache=tmp_path)


def _batch1_graph(*nodes, initializers=(), output_shape=(1, 146, 2)) -> onnx.ModelProto:
    graph = helper.make_graph(
        list(nodes), "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 146, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(output_shape))], list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_graph_that_mixes_samples_is_not_given_a_batch_axis():
    swap = _batch1_graph(helper.make_node("Transpose", ["x"], ["y"], perm=[1, 0, 2]), output_shape=(146, 1, 2))
    with pytest.raises(NotBatchable, match="Transpose .* moves the batch axis"):
        with_batch_axis(swap)
    over_batch = _batch1_graph(helper.make_node("ReduceMean", ["x"], ["y"], axes=[0, 1], keepdims=1),
                               output_shape=(1, 1, 2))
    with pytest.raises(NotBatchable, match="reduces over the batch axis"):
        with_batch_axis(over_batch)
    flatten = _batch1_graph(helper.make_node("Reshape", ["x", "shape"], ["y"]), output_shape=(146, 2),
                            initializers=[numpy_helper.from_array(np.array([146, 2], np.int64), "shape")])
    with pytest.raises(NotBatchable, match=r"Reshape .* to \[146, 2\] moves the batch axis"):
        with_batch_axis(flatten)
