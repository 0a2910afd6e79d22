"""End to end on a tiny generated dataset: run folder contents, freezing per stage, resume after SIGKILL,
determinism, starting weights. One real run (module fixture) serves several tests."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from facedyn.epochs import Runtime
from facedyn import training
from facedyn.checkpoints import CheckpointError, find_init_checkpoint
from facedyn.config import STAGE_ORDER, compose, stage_key
from facedyn.model import build_model
from facedyn.runs import stage_checkpoint
from tests.conftest import REPO, TINY_STAGE_EPOCHS, tiny_epochs

EPOCHS = {**TINY_STAGE_EPOCHS, "s1": 2}  # two stage-1 epochs, so a kill can land mid-stage
TIMING_KEYS = {"seconds", "data_wait_seconds"}


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, tiny_data_overrides):
    """An uninterrupted five-stage run of `python train.py`, as a user would start it."""
    base = tmp_path_factory.mktemp("reference")
    overrides = [f"paths.output_dir={base / 'outputs'}", "model.flow.weights=none", "trainer.progress=false",
                 "trainer.threads=2", *tiny_data_overrides, *tiny_epochs(EPOCHS)]
    run_dir = base / "outputs" / "runs" / "reference"
    process = _train_py([*overrides, f"hydra.run.dir={run_dir}"])
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output
    assert "Run folder:" in output and "baseline" in output  # the end-of-run summary
    return compose(overrides), run_dir, output, overrides


def _train_py(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, str(REPO / "train.py"), *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _without_timing(history: dict) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in history["epochs"]]


def test_run_folder_holds_results_a_person_can_read(reference_run):
    cfg, run_dir, _, _ = reference_run
    for name in ("config.yaml", "overrides.yaml", "training_history.json", "metrics.json", "training_curves.png",
                 "stage_losses.png", "confusion_dynamics.png", "confusion_synkinesis.png", "predictions.csv",
                 "predictions_video.csv", "split.json", "train.log"):
        assert (run_dir / name).is_file(), name
    for stage in STAGE_ORDER:
        assert stage_checkpoint(run_dir, stage).is_file()
        assert (run_dir / f"predictions_stage_{stage}.csv").is_file()
    status = json.loads((run_dir / "run_status.json").read_text())
    assert status["status"] == "finished"
    history = json.loads((run_dir / "training_history.json").read_text())["epochs"]
    assert [(r["stage"], r["epoch"]) for r in history] == [
        (s, e) for s in STAGE_ORDER for e in range(1, EPOCHS[stage_key(s)] + 1)]
    for row in history:
        assert {"train_loss", "val_loss", "lr", "seconds", "val_mae_dynamics", "val_acc_both"} <= set(row)
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["flow_pretrained"] is False
    assert set(saved["per_stage"]) == set(STAGE_ORDER)
    assert {"val_video_icc_dynamics", "val_qwk_synkinesis", "val_within1_dynamics"} <= set(saved["final"])
    assert "val_mae_dynamics" in saved["baseline"]
    with open(run_dir / "predictions.csv") as fh:
        rows = list(csv.DictReader(fh))
    split = json.loads((run_dir / "split.json").read_text())
    assert len(rows) == saved["val_samples"] > 0
    assert {r["video"] for r in rows} <= set(map(str, split["val_videos"]))
    for column in ("video", "expression", "frame", "dynamics_true", "dynamics_pred", "synkinesis_true", "synkinesis_pred"):
        assert column in rows[0]
    assert any(float(r["dynamics_pred"]) != round(float(r["dynamics_pred"])) for r in rows)  # unrounded
    # The final model's val loss is the one the history's last epoch reported.
    assert saved["final"]["val_loss"] == pytest.approx(history[-1]["val_loss"], rel=1e-5)


def _group_state(state: dict, group: str) -> dict:
    return {k: v for k, v in state.items() if k.startswith(group + ".")}


def _changed(before: dict, after: dict) -> set[str]:
    return {k for k in before if not torch.equal(before[k], after[k])}


def test_frozen_groups_are_bitwise_unchanged_and_trained_groups_move(reference_run):
    cfg, run_dir, _, _ = reference_run
    torch.manual_seed(cfg.seed)  # the run builds its model right after seeding, so this is its start
    model, _ = build_model(cfg.model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for stage in STAGE_ORDER:
        after = torch.load(stage_checkpoint(run_dir, stage), weights_only=True)["model"]
        trainable = set(cfg.stages[stage_key(stage)].trainable)
        for group in ("flow", "blendshapes", "landmark_head", "fusion"):
            changed = _changed(_group_state(before, group), _group_state(after, group))
            if group in trainable:
                assert changed, f"stage {stage}: {group} should have trained"
            else:
                assert not changed, f"stage {stage}: frozen {group} changed: {sorted(changed)[:3]}"
        bn_stats = {k for k in _group_state(before, "flow") if "running_mean" in k or "running_var" in k}
        moved = bn_stats & _changed(_group_state(before, "flow"), _group_state(after, "flow"))
        assert bool(moved) == ("flow" in trainable), f"stage {stage}: BatchNorm statistics"
        before = after


def test_fusion_starts_as_the_average_of_the_branches(reference_run):
    cfg, _, _, _ = reference_run
    model, _ = build_model(cfg.model)
    branch = {"flow": torch.tensor([[0.2, 0.9]]), "blendshapes": torch.zeros(1, 104)}
    landmarks = model.landmark_head(branch["blendshapes"])
    fused = model.heads(branch, "fused")
    assert torch.allclose(fused, (branch["flow"] + landmarks) / 2)


def test_resume_after_sigkill_mid_epoch_matches_the_uninterrupted_run(reference_run, tmp_path):
    _, reference_dir, _, overrides = reference_run
    run_dir = tmp_path / "killed"
    process = _train_py([*overrides, f"hydra.run.dir={run_dir}"])
    status_file = run_dir / "run_status.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # wait until stage 1 epoch 1 is saved, then kill during epoch 2
        status = json.loads(status_file.read_text()) if status_file.is_file() else {}
        if status.get("stage") == "1" and status.get("epoch") == 1:
            break
        assert process.poll() is None, process.stdout.read()
        time.sleep(0.02)
    time.sleep(0.3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not stage_checkpoint(run_dir, "1").exists(), "killed too late to test a mid-stage resume"
    assert json.loads(status_file.read_text())["status"] == "running"  # what a killed run leaves behind

    resumed = _train_py([f"resume={run_dir}"])
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    assert "Resuming" in output
    final = json.loads((run_dir / "metrics.json").read_text())["final"]
    expected = json.loads((reference_dir / "metrics.json").read_text())["final"]
    assert final == expected
    history = json.loads((run_dir / "training_history.json").read_text())
    assert _without_timing(history) == _without_timing(json.loads((reference_dir / "training_history.json").read_text()))
    assert json.loads(status_file.read_text())["status"] == "finished"


def test_ctrl_c_stops_with_the_resume_command_and_no_traceback(reference_run, tmp_path):
    _, _, _, overrides = reference_run
    run_dir = tmp_path / "interrupted"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, str(REPO / "train.py"), *overrides, f"hydra.run.dir={run_dir}"],
                               cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    status_file = run_dir / "run_status.json"
    deadline = time.monotonic() + 300
    while not (status_file.is_file() and json.loads(status_file.read_text()).get("epoch") == 1):
        assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)  # in the middle of loading and training, with a worker process
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output
    assert f"continue with: python train.py resume={run_dir}" in output
    assert "Traceback" not in output
    assert json.loads(status_file.read_text())["status"] == "interrupted"


def test_same_seed_same_config_same_history(reference_run, tmp_path):
    _, _, _, overrides = reference_run
    overrides = [o for o in overrides if not o.startswith("stages.")] + ["stage=1", f"stages.s1.epochs={EPOCHS['s1']}"]
    single = compose(overrides)
    first = training.run(single, tmp_path / "a", overrides)
    second = training.run(single, tmp_path / "b", overrides)
    assert first == second
    histories = [json.loads((tmp_path / n / "training_history.json").read_text()) for n in ("a", "b")]
    assert _without_timing(histories[0]) == _without_timing(histories[1])
    assert len(histories[0]["epochs"]) == EPOCHS["s1"]


def test_single_stage_finds_the_newest_run_that_finished_the_stage_before(reference_run, tmp_path):
    _, reference_dir, _, _ = reference_run
    outputs = reference_dir.parents[1]
    assert find_init_checkpoint(None, "2b", outputs) == stage_checkpoint(reference_dir, "2b")
    assert find_init_checkpoint(str(reference_dir), "3", tmp_path) == stage_checkpoint(reference_dir, "3")
    with pytest.raises(CheckpointError, match="init_from"):
        find_init_checkpoint(None, "2b", tmp_path)
    with pytest.raises(CheckpointError, match="init_from"):
        find_init_checkpoint(str(tmp_path / "nowhere"), "2b", tmp_path)


def test_single_stage_run_from_init_from(reference_run, tmp_path):
    _, reference_dir, _, overrides = reference_run
    overrides = [o for o in overrides if not o.startswith("stages.")] + ["stage=3", f"init_from={reference_dir}",
                                                                          "stages.s3.epochs=1"]
    cfg = compose(overrides)
    metrics = training.run(cfg, tmp_path / "s3", overrides)
    assert np.isfinite(metrics["val_loss"])
    assert "Initial weights: " + str(stage_checkpoint(reference_dir, "2b")) in (tmp_path / "s3" / "train.log").read_text()


def test_bad_data_root_is_a_one_line_error(tmp_path):
    process = _train_py(["data=folder", f"data.root={tmp_path / 'missing'}", f"paths.output_dir={tmp_path}"])
    output, _ = process.communicate(timeout=120)
    assert process.returncode != 0
    assert "Traceback" not in output
    assert "error:" in output and str(tmp_path / "missing") in output


def test_channels_last_applies_to_flow_images_not_to_precomputed_branch_outputs() -> None:
    # Stage 3's batches carry the flow branch's (N, 2) output under "flow"; a GPU run failed on it.
    runtime = Runtime(device=torch.device("cpu"), autocast_dtype=None, channels_last=True, progress=False)
    images = runtime.to_device({"flow": torch.rand(2, 3, 8, 8)})["flow"]
    assert images.is_contiguous(memory_format=torch.channels_last)
    outputs = runtime.to_device({"flow": torch.rand(2, 2)})["flow"]
    assert outputs.shape == (2, 2)
