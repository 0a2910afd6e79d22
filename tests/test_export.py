"""`python -m facedyn.export` on a real tiny trained run, and its ONNX Runtime predictor, also in predict.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from facedyn.export import load_onnx
from facedyn.export.graph import validation_samples
from facedyn.inference import RunError, load_run
from facedyn.inference.predictor import ModelInfo
from tests.conftest import REPO

VALIDATION_TOLERANCE = 1e-4  # grades


def _export(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facedyn.export", *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}, timeout=600)


@pytest.fixture(scope="module")
def exported(tiny_trained_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "facedyn.onnx"
    result = _export(f"run={tiny_trained_run}", f"out={out}")
    assert result.returncode == 0, result.stderr
    print(result.stdout)
    assert "checked with ONNX Runtime" in result.stdout and "batch 256" in result.stdout
    return out


def test_one_graph_with_a_batch_axis_that_predicts_as_the_torch_model(exported, tiny_trained_run):
    graph = onnx.load(str(exported))
    torch_predictor = load_run(tiny_trained_run)
    # The graph reads exactly the batch keys the trained model reads (expression_index for conditioned heads).
    assert [i.name for i in graph.graph.input] == list(torch_predictor.model.required_inputs(torch_predictor.info.predict))
    for value in [*graph.graph.input, *graph.graph.output]:
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch"
    split = json.loads((tiny_trained_run / "split.json").read_text())
    samples = validation_samples(torch_predictor, 0)
    assert set(samples.video.tolist()) <= {str(v) for v in split["val_videos"]}
    inputs = (samples.flow, samples.expression_landmarks, samples.baseline_landmarks, samples.expression)
    expected = torch_predictor.predict(*inputs)
    for batch_size in (1, 7, 256):
        got = load_onnx(exported, batch_size=batch_size).predict(*inputs)
        assert got.shape == expected.shape == (len(samples), 2)
        assert np.abs(got - expected).max() <= VALIDATION_TOLERANCE
    assert expected.std(axis=0).max() > 1e-3  # the samples differ enough to move the grades
    info = load_onnx(exported).info
    assert isinstance(info, ModelInfo) and info.backend == "onnx"
    assert (info.stage, info.run_dir, info.expressions) == ("4", tiny_trained_run, torch_predictor.info.expressions)


def test_the_onnx_predictor_needs_no_torch(exported):
    probe = (
        "import sys, numpy as np\n"
        "from facedyn.export import load_onnx\n"
        f"p = load_onnx({str(exported)!r})\n"
        "n, size = 3, p.info.image_size\n"
        "flow = np.random.default_rng(0).integers(0, 255, (n, size, size, 3), dtype=np.uint8)\n"
        "points = (300 + 100 * np.random.default_rng(1).random((n, 146, 2))).astype(np.float32)\n"
        "grades = p.predict(flow, points, points, [p.info.expressions[0]] * n)\n"
        "print(grades.shape, 'torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.split()[-1] == "False" and "(3, 2)" in result.stdout


def test_predict_py_runs_the_exported_graph(exported, tiny_trained_run, tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "predict.py"), "model=onnx", f"onnx={exported}",
         f"paths.output_dir={tmp_path}", "report=false"],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    (folder,) = (tmp_path / "predictions").iterdir()
    assert json.loads((folder / "model.json").read_text())["backend"] == "onnx"
    assert (folder / "predictions.csv").read_text().count("\n") > 1


def test_a_graph_that_does_not_match_is_refused_and_not_written(tiny_trained_run, tmp_path):
    out = tmp_path / "facedyn.onnx"
    result = _export(f"run={tiny_trained_run}", f"out={out}", "tolerance=1e-12", "batch_sizes=[7]")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: the ONNX graph of") and "not written" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.iterdir())


def test_bad_settings_and_files_are_one_line_errors(tiny_trained_run, tmp_path):
    result = _export(f"run={tiny_trained_run}", "output=x.onnx")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1 and "output" in result.stderr
    result = _export(f"run={tmp_path}")
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1 and str(tmp_path) in result.stderr
    not_onnx = tmp_path / "model.onnx"
    not_onnx.write_text("not a graph")
    with pytest.raises(RunError, match="not a readable ONNX model"):
        load_onnx(not_onnx)
    with pytest.raises(RunError, match="no such file"):
        load_onnx(tmp_path / "missing.onnx")
