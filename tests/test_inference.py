"""facedyn.inference on a real tiny trained run: the rebuilt model predicts what training validated."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from omegaconf import OmegaConf

from facedyn.data import load_training_data
from facedyn.inference import Predictor, RunError, find_newest_finished_run, load_run
from facedyn.blendshapes import graph_for
from facedyn.runs import BLENDSHAPES_GRAPH_FILE, stage_checkpoint
from tests.conftest import REPO


@pytest.fixture(scope="module")
def run_data(tiny_trained_run):
    cfg = OmegaConf.load(tiny_trained_run / "config.yaml")
    return load_training_data(cfg.data)


def test_rebuilt_model_reproduces_the_runs_validation_predictions(tiny_trained_run, run_data):
    predictor = load_run(tiny_trained_run, precision="run")  # as the run validated: bf16 where the CPU has it
    assert isinstance(predictor, Predictor)
    assert predictor.info.stage == "4" and predictor.info.predict == "fused"
    assert set(predictor.info.expressions) == set(run_data.samples.expression)
    rows = np.asarray(run_data.val_indices)
    s = run_data.samples
    grades = predictor.predict(s.flow[rows], s.expression_landmarks[rows], s.baseline_landmarks[rows], s.expression[rows])
    with open(tiny_trained_run / "predictions.csv") as fh:
        saved = {(r["video"], r["expression"], r["frame"]): (float(r["dynamics_pred"]), float(r["synkinesis_pred"]))
                 for r in csv.DictReader(fh)}
    expected = np.array([saved[(s.video[i], s.expression[i], s.frame[i])] for i in rows])
    assert grades.shape == (len(rows), 2)
    np.testing.assert_allclose(grades, expected, atol=2e-5)  # the CSV holds 6 decimals
    # In fp32 (prediction's default) batching does not change a sample's grades.
    exact = load_run(tiny_trained_run)
    every = exact.predict(s.flow[rows], s.expression_landmarks[rows], s.baseline_landmarks[rows], s.expression[rows])
    one = exact.predict(s.flow[rows[:1]], s.expression_landmarks[rows[:1]], s.baseline_landmarks[rows[:1]],
                        s.expression[rows[:1]])
    np.testing.assert_allclose(one, every[:1], atol=1e-5)


def test_a_run_folder_predicts_without_mediapipes_model_or_its_conversion(tiny_trained_run, run_data, tmp_path):
    """The run keeps the blendshape graph it trained (a later conversion may be shaped differently), so it
    is rebuilt on a machine with neither MediaPipe's model nor a conversion cache."""
    assert (tiny_trained_run / BLENDSHAPES_GRAPH_FILE).read_bytes() == graph_for().read_bytes()
    s = run_data.samples
    rows = np.asarray(run_data.val_indices)[:5]
    arrays = tmp_path / "inputs.npz"
    np.savez(arrays, flow=s.flow[rows], expression_landmarks=s.expression_landmarks[rows],
             baseline_landmarks=s.baseline_landmarks[rows], expression=np.asarray(s.expression)[rows])
    code = ("import sys, numpy as np\nfrom facedyn.inference import load_run\n"
            "a = np.load(sys.argv[2])\n"
            "g = load_run(sys.argv[1]).predict(a['flow'], a['expression_landmarks'], a['baseline_landmarks'], "
            "list(a['expression']))\nnp.save(sys.argv[3], g)\n")
    env = {key: value for key, value in os.environ.items() if key not in ("FACEDYN_LANDMARKER", "FACEDYN_BLENDSHAPES")}
    env.update(FACEDYN_CACHE_DIR=str(tmp_path / "empty-cache"), PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", code, str(tiny_trained_run), str(arrays), str(tmp_path / "g.npy")],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "empty-cache" / "models").exists()  # nothing was converted or fetched
    expected = load_run(tiny_trained_run).predict(s.flow[rows], s.expression_landmarks[rows], s.baseline_landmarks[rows],
                                                  s.expression[rows])
    np.testing.assert_allclose(np.load(tmp_path / "g.npy"), expected, atol=1e-6)


def test_checkpoint_file_and_newest_finished_run(tiny_trained_run):
    assert find_newest_finished_run(tiny_trained_run.parents[1]) == tiny_trained_run
    predictor = load_run(stage_checkpoint(tiny_trained_run, "3"))
    assert (predictor.info.stage, predictor.info.predict) == ("3", "fused")
    assert load_run(tiny_trained_run, stage="2b").info.predict == "landmarks"


def test_a_run_without_stage_4_says_which_stages_it_has(tiny_trained_run, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(tiny_trained_run, partial)
    for stage in ("3", "4"):
        stage_checkpoint(partial, stage).unlink()
    with pytest.raises(RunError, match=r"has not finished stage 4 \(finished: 1, 2a, 2b\); pass stage=2b"):
        load_run(partial)
    with pytest.raises(RunError, match="no finished run"):
        find_newest_finished_run(tmp_path / "empty")


def test_a_checkpoint_of_another_model_config_is_one_clear_error(tiny_trained_run, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(tiny_trained_run, other)
    cfg = OmegaConf.load(other / "config.yaml")
    cfg.model.landmark_hidden = 8
    OmegaConf.save(cfg, other / "config.yaml")
    with pytest.raises(RunError, match=r"does not fit the model of .*config.yaml.*landmark_head"):
        load_run(other)


def test_expressions_the_run_never_saw_are_refused(tiny_trained_run, run_data):
    predictor = load_run(tiny_trained_run)
    s = run_data.samples
    with pytest.raises(ValueError, match="not trained on"):
        predictor.predict(s.flow[:1], s.expression_landmarks[:1], s.baseline_landmarks[:1], ["frown"])


def test_a_run_of_a_model_variant_is_rebuilt_by_the_same_builder(tmp_path):
    import torch

    from facedyn.runs import checkpoints
    from facedyn.config import compose
    from facedyn.data.expressions import expression_indices
    from facedyn.data.samples import flow_input
    from facedyn.metrics import SCALE
    from facedyn.model import build_model

    cfg = compose(["model=paired_expression", "model.flow.weights=none"])
    torch.manual_seed(1)
    model, _ = build_model(cfg.model)
    run_dir = tmp_path / "variant"
    (run_dir / "config.yaml").parent.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    checkpoints.save(stage_checkpoint(run_dir, "4"), {"model": model.state_dict(), "stage": "4"})

    rng = np.random.default_rng(0)
    flow = rng.integers(0, 256, (4, 112, 112, 3), dtype=np.uint8)
    base = rng.uniform(100, 400, (4, 146, 2)).astype(np.float32)
    moved = base + rng.normal(0, 3, base.shape).astype(np.float32)
    expressions = ["smile", "snarl", "smile", "eye_close"]
    grades = load_run(run_dir).predict(flow, moved, base, expressions)
    model.eval()
    with torch.no_grad():
        expected = model({"flow_image": torch.from_numpy(flow_input(flow)), "expression_landmarks": torch.from_numpy(moved),
                          "baseline_landmarks": torch.from_numpy(base),
                          "expression_index": torch.from_numpy(expression_indices(expressions, model.expressions))},
                         "fused").numpy() * SCALE
    np.testing.assert_allclose(grades, expected, atol=1e-5)
    # Per-expression heads: the same sample read as another expression gets other grades.
    other = load_run(run_dir).predict(flow[:1], moved[:1], base[:1], ["lip_pucker"])
    assert not np.allclose(other, grades[:1])
