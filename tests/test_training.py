"""End to end on a tiny generated dataset: run folder contents, freezing per stage, resume after SIGKILL,
determinism, starting weights. One real `train.py` run (the session's, tests/conftest.py) serves several tests."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from facedyn import training
from facedyn.runs.checkpoints import CheckpointError, find_init_checkpoint
from facedyn.config import compose
from facedyn.training.stages import STAGE_ORDER, stage_key
from facedyn.model import build_model
from facedyn.runs import stage_checkpoint
from facedyn.runtime import Runtime
from tests.conftest import REPO, TRAINED_RUN_EPOCHS, train_py

EPOCHS = TRAINED_RUN_EPOCHS
TIMING_KEYS = {"seconds", "data_wait_seconds", "val_seconds"}


@pytest.fixture(scope="module")
def reference_run(tiny_train_py_run):
    """An uninterrupted five-stage run of `python train.py`, as a user would start it (the session's)."""
    run = tiny_train_py_run
    assert "Run folder:" in run.output and "baseline" in run.output  # the end-of-run summary
    return compose(run.overrides), run.run_dir, run.output, run.overrides


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
    # Each stage hands on its best epoch (select: best), where a stage that starts from the previous stage's
    # weights counts them as its epoch 0: recorded, and the final model is the last stage's kept one.
    kept = json.loads((run_dir / "training_history.json").read_text())["kept_epochs"]
    assert kept == saved["kept_epochs"] and set(kept) == set(STAGE_ORDER)
    for stage in STAGE_ORDER:
        per_stage = saved["per_stage"][stage]
        best = min((r for r in history if r["stage"] == stage), key=lambda r: r["val_loss"])
        start = per_stage.get("start_val_loss")
        assert (start is None) == (cfg.stages[stage_key(stage)].init == "none")
        from_start = start is not None and start <= best["val_loss"]  # the first of equals is kept
        assert kept[stage] == per_stage["kept_epoch"] == (0 if from_start else best["epoch"])
        assert per_stage["val_loss"] == pytest.approx(start if from_start else best["val_loss"], rel=1e-5)
    assert saved["final"]["val_loss"] == pytest.approx(saved["per_stage"]["4"]["val_loss"], rel=1e-5)
    assert saved["precision"] in ("fp32", "bf16")


def _group_state(state: dict, group: str) -> dict:
    return {k: v for k, v in state.items() if k.startswith(group + ".")}


def _changed(before: dict, after: dict) -> set[str]:
    return {k for k in before if not torch.equal(before[k], after[k])}


def test_frozen_groups_are_bitwise_unchanged_and_trained_groups_move(reference_run):
    cfg, run_dir, _, _ = reference_run
    torch.manual_seed(cfg.seed)  # the run builds its model right after seeding, so this is its start
    model, _ = build_model(cfg.model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    per_stage = json.loads((run_dir / "metrics.json").read_text())["per_stage"]
    for stage in STAGE_ORDER:
        after = torch.load(stage_checkpoint(run_dir, stage), weights_only=True)["model"]
        # A stage none of whose epochs beat the weights it was given hands those on, unchanged.
        trainable = set(cfg.stages[stage_key(stage)].trainable) if per_stage[stage]["kept_epoch"] != 0 else set()
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
    assert any(per_stage[s]["kept_epoch"] != 0 for s in STAGE_ORDER if s != STAGE_ORDER[0])  # some stage trained on


def test_fusion_starts_as_the_average_of_the_branches(reference_run):
    cfg, _, _, _ = reference_run
    model, _ = build_model(cfg.model)
    branch = {"flow_output": torch.tensor([[0.2, 0.9]]), "blendshape_features": torch.rand(1, 104),
              "expression_index": torch.tensor([1])}
    landmarks = model.heads(branch, "landmarks")
    fused = model.heads(branch, "fused")
    assert torch.allclose(fused, (branch["flow_output"] + landmarks) / 2)


@pytest.mark.slow  # CI time (~40 s): CI resumes after a stage checkpoint; a SIGKILLed writer's lock: test_run_folder
def test_resume_after_sigkill_mid_epoch_matches_the_uninterrupted_run(reference_run, tmp_path):
    _, reference_dir, _, overrides = reference_run
    run_dir = tmp_path / "killed"
    process = train_py([*overrides, f"hydra.run.dir={run_dir}"])
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

    resumed = train_py([f"resume={run_dir}"])
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    assert "Resuming" in output
    final = json.loads((run_dir / "metrics.json").read_text())["final"]
    expected = json.loads((reference_dir / "metrics.json").read_text())["final"]
    assert final == expected
    history = json.loads((run_dir / "training_history.json").read_text())
    assert _without_timing(history) == _without_timing(json.loads((reference_dir / "training_history.json").read_text()))
    assert json.loads(status_file.read_text())["status"] == "finished"


@pytest.mark.slow  # CI time: the SIGTERM test runs the same interrupt handling in CI
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


@pytest.mark.slow  # CI time: the resume tests compare two runs of one config, history and metrics, in CI
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


@pytest.mark.slow  # CI time: every staged sweep trial of stage 3 starts from init_from in CI (test_sweep)
def test_single_stage_run_from_init_from(reference_run, tmp_path):
    _, reference_dir, _, overrides = reference_run
    # Default flow weights (imagenet), none to be had (an empty TORCH_HOME, no internet): the stage's flow
    # weights come from init_from, so nothing is fetched and no "TRAINS FROM SCRATCH" banner is shown.
    overrides = [o for o in overrides if not o.startswith("stages.") and o != "model.flow.weights=none"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TORCH_HOME": str(tmp_path / "torch")}
    process = subprocess.run([sys.executable, str(REPO / "train.py"), *overrides, "stage=3", f"init_from={reference_dir}",
                              "stages.s3.epochs=1", f"hydra.run.dir={tmp_path / 's3'}"], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stdout + process.stderr
    log = (tmp_path / "s3" / "train.log").read_text()
    assert "Initial weights: " + str(stage_checkpoint(reference_dir, "2b")) in log
    assert "SCRATCH" not in log and "from scratch" not in log
    metrics = json.loads((tmp_path / "s3" / "metrics.json").read_text())
    assert metrics["flow_weights"] == f"checkpoint {stage_checkpoint(reference_dir, '2b')}" and np.isfinite(metrics["final"]["val_loss"])


def test_bad_data_root_is_a_one_line_error(tmp_path):
    process = train_py(["data=folder", f"data.root={tmp_path / 'missing'}", f"paths.output_dir={tmp_path}"])
    output, _ = process.communicate(timeout=120)
    assert process.returncode != 0
    assert "Traceback" not in output
    assert "error:" in output and str(tmp_path / "missing") in output


def test_channels_last_applies_to_flow_images_not_to_precomputed_branch_outputs() -> None:
    # Stage 3's batches carry the flow branch's (N, 2) output (flow_output); a GPU run failed on it once.
    runtime = Runtime(device=torch.device("cpu"), autocast_dtype=None, channels_last=True, progress=False)
    images = runtime.to_device({"flow_image": torch.rand(2, 3, 8, 8)})["flow_image"]
    assert images.is_contiguous(memory_format=torch.channels_last)
    outputs = runtime.to_device({"flow_output": torch.rand(2, 2)})["flow_output"]
    assert outputs.shape == (2, 2)


def _wait_for_epoch(process: subprocess.Popen, status_file, stage: str, epoch: int) -> None:
    deadline = time.monotonic() + 300
    while True:
        status = json.loads(status_file.read_text()) if status_file.is_file() else {}
        if status.get("stage") == stage and status.get("epoch") == epoch:
            return
        assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
        time.sleep(0.02)


def test_sigterm_saves_and_says_how_to_resume_a_second_writer_is_refused(reference_run, tmp_path):
    _, _, _, overrides = reference_run
    run_dir = tmp_path / "terminated"
    # Stage 1 long enough to still be training when the second writers and SIGTERM come, however fast the
    # machine: with the tiny run's two epochs an idle machine could finish before them (a flaky test).
    long_stage_1 = [o for o in overrides if not o.startswith("stages.s1.epochs=")] + ["stages.s1.epochs=500"]
    process = train_py([*long_stage_1, f"hydra.run.dir={run_dir}"])
    _wait_for_epoch(process, run_dir / "run_status.json", "1", 1)
    # A second train.py into the same folder (same hydra.run.dir, or resume= of a run still training): refused.
    seconds = [train_py(args) for args in ([*long_stage_1, f"hydra.run.dir={run_dir}"], [f"resume={run_dir}"])]
    for second in seconds:
        output, _ = second.communicate(timeout=300)
        assert second.returncode == 1 and f"is in use by process {process.pid}" in output, output
        assert "Traceback" not in output
    process.send_signal(signal.SIGTERM)  # what timeout, schedulers and SLURM send
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 143, output
    assert f"terminated (SIGTERM); continue with: python train.py resume={run_dir}" in output
    assert "Traceback" not in output
    assert json.loads((run_dir / "run_status.json").read_text())["status"] == "interrupted"
    assert "in use" not in (run_dir / "train.log").read_text()  # the refused writers left no trace in its log
    # resume= continues the run as configured: other overrides are refused, by name; more epochs of a stage
    # not finished yet (stage 4 here; stage 1 may have finished on a slow machine) are allowed.
    refused = train_py([f"resume={run_dir}", "optimizer.lr=0.5", "stages.s4.epochs=3", "trainer.progress=false"])
    output, _ = refused.communicate(timeout=300)
    assert refused.returncode == 1 and "it cannot change optimizer.lr=0.5. Allowed:" in output, output


def _copy_run(reference_dir, target, status: str):
    import shutil

    shutil.copytree(reference_dir, target)
    status_file = target / "run_status.json"
    status_file.write_text(json.dumps({**json.loads(status_file.read_text()), "status": status}))
    return target


def test_resume_without_last_pt_goes_on_after_the_last_finished_stage(reference_run, tmp_path):
    _, reference_dir, _, _ = reference_run
    run_dir = _copy_run(reference_dir, tmp_path / "no_last", "interrupted")
    assert not (run_dir / "checkpoints" / "last.pt").exists()  # a stage checkpoint replaces it
    stage_checkpoint(run_dir, "4").unlink()
    stage_3 = stage_checkpoint(run_dir, "3").stat().st_mtime_ns
    resumed = train_py([f"resume={run_dir}"])
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    assert "after stage 3 (stage_3.pt)" in output
    assert stage_checkpoint(run_dir, "3").stat().st_mtime_ns == stage_3  # stages 1-3 not trained again
    assert json.loads((run_dir / "metrics.json").read_text())["final"] == \
        json.loads((reference_dir / "metrics.json").read_text())["final"]
    reference_history = json.loads((reference_dir / "training_history.json").read_text())
    assert _without_timing(json.loads((run_dir / "training_history.json").read_text())) == _without_timing(reference_history)


@pytest.mark.slow  # CI time (~20 s): the resume without last.pt runs in CI
def test_finished_runs_and_damaged_last_pt_stop_with_what_to_do_and_keep_their_status(reference_run, tmp_path):
    _, reference_dir, _, _ = reference_run
    metrics_time = (reference_dir / "metrics.json").stat().st_mtime_ns
    finished = train_py([f"resume={reference_dir}"])
    output, _ = finished.communicate(timeout=300)
    assert finished.returncode == 1 and "that run finished" in output and f"init_from={reference_dir}" in output, output
    assert (reference_dir / "metrics.json").stat().st_mtime_ns == metrics_time
    damaged = _copy_run(reference_dir, tmp_path / "damaged", "interrupted")
    stage_checkpoint(damaged, "4").unlink()  # killed in stage 4 while writing last.pt
    last = damaged / "checkpoints" / "last.pt"
    last.write_bytes(stage_checkpoint(damaged, "3").read_bytes()[:1000])
    process = train_py([f"resume={damaged}"])
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 1 and "Traceback" not in output, output
    assert f"To go on after stage 3 (its checkpoint is intact), move it aside (mv {last} {last}.damaged)" in output
    assert json.loads((damaged / "run_status.json").read_text())["status"] == "interrupted"


def test_nothing_to_learn_is_refused_before_training(reference_run, tmp_path):
    _, _, _, overrides = reference_run
    process = train_py([*overrides, f"hydra.run.dir={tmp_path / 'run'}", "data.labels.dynamics_ignore=[0,1,2,3,4,5]",
                         "data.labels.synkinesis_ignore=[0,1,2,3]"])
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 1 and "error: nothing to learn: every training label of both scores" in output, output
    assert "Traceback" not in output and "stage 1 epoch" not in output


def test_one_score_fully_ignored_and_a_single_validation_video_warn(reference_run, tmp_path, caplog):
    import logging

    from facedyn.data import load_training_data
    from facedyn.training.objective import check_labels

    cfg, _, _, _ = reference_run
    data_cfg = OmegaConf.merge(cfg.data, {"labels": {"synkinesis_ignore": [0, 1, 2, 3]}, "val_fraction": 0.1})
    data = load_training_data(data_cfg, None)
    with caplog.at_level(logging.WARNING):
        check_labels(data, logging.getLogger("facedyn.test"))
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "every training label of synkinesis is an ignored value" in messages
    assert "the validation split holds a single video" in messages


def test_init_from_a_run_of_another_model_shape_is_one_line(reference_run, tmp_path):
    _, reference_dir, _, overrides = reference_run
    overrides = [o for o in overrides if not o.startswith("stages.")]
    process = train_py([*overrides, f"hydra.run.dir={tmp_path / 'run'}", "stage=2a", f"init_from={reference_dir}",
                         "model.landmark_hidden=8"])
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 1, output
    assert re.search(re.escape(f"error: init_from={reference_dir}: {stage_checkpoint(reference_dir, '1')} holds weights of "
                               "another model shape (") + r"\d+ missing \(e\.g\. landmark_head\.\S+\), \d+ unexpected", output)
    assert "Traceback" not in output and len(output) < 3000


def test_patience_stops_a_stage_and_select_last_keeps_its_last_epoch(reference_run, tmp_path):
    _, reference_dir, _, overrides = reference_run
    overrides = [o for o in overrides if not o.startswith("stages.")]
    # A learning rate too small to change a discrete metric: no epoch after the first is better.
    stage = ["stage=2a", f"init_from={reference_dir}", "stages.s2a.epochs=6", "stages.s2a.lr=1e-12",
             "stages.s2a.select_metric=val_acc_both", "stages.s2a.patience=2"]
    # With select: best the starting weights are epoch 0 and, equal to every later epoch, stay the best: two
    # epochs without a better one stop the stage. With select: last they do not compete.
    for select, kept, epochs_run in (("best", 0, 2), ("last", 3, 3)):
        run_dir = tmp_path / select
        training.run(compose([*overrides, *stage, f"stages.s2a.select={select}"]), run_dir, overrides)
        per_stage = json.loads((run_dir / "metrics.json").read_text())["per_stage"]["2a"]
        assert per_stage["epochs_run"] == epochs_run and per_stage["stopped_early"] and per_stage["kept_epoch"] == kept
        history = json.loads((run_dir / "training_history.json").read_text())
        assert [r["epoch"] for r in history["epochs"]] == list(range(1, epochs_run + 1))
        assert history["kept_epochs"] == {"2a": kept}
