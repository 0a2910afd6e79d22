"""The trainer's seam: selection, patience, weight averaging, clipping and their state in last.pt (seconds each),
and two stages that prove it end to end: a stage that only made things worse hands on what it was given, and
EMA + clipping resume exactly after a SIGKILL."""

from __future__ import annotations

import io
import json
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from facedyn.config import compose
from facedyn.runs import STATUS_FILE, stage_checkpoint
from facedyn.training.hooks.base import Evaluation, Hook, Hooks
from facedyn.training.hooks.ema import WeightAverage
from facedyn.training.hooks.grad_clip import GradientClipping
from facedyn.training.hooks.selection import BestEpoch, Selection
from facedyn.training.objective import Objective
from facedyn.training.resume import resume_config
from facedyn.utils.config import ConfigError
from tests.conftest import train_py


def evaluation(epoch: int, loss: float, acc: float = 0.5) -> Evaluation:
    return Evaluation(epoch, np.full((2, 2), epoch, dtype=np.float32), np.array([0, 1]),
                      {"val_loss": loss, "val_acc_both": acc})


def through_last_pt(state: dict) -> dict:
    """A state as a resumed run reads it back: saved with torch.save, loaded with weights_only=True."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_best_epoch_keeps_the_first_of_equals_ignores_nan_and_knows_which_way_is_better() -> None:
    model = nn.Linear(2, 2)
    lower = BestEpoch("val_loss", lower_better=True, keep_weights=True)
    for epoch, loss in ((0, 0.5), (1, 0.4), (2, float("nan")), (3, 0.4), (4, 0.45)):
        lower.offer(evaluation(epoch, loss), model)
    assert (lower.epoch, lower.value) == (1, 0.4) and lower.evaluation.epoch == 1
    assert lower.epochs_without_improvement(4) == 3
    higher = BestEpoch("val_acc_both", lower_better=False, keep_weights=False)
    for epoch, acc in ((1, 0.2), (2, 0.6), (3, 0.5)):
        higher.offer(evaluation(epoch, 1.0, acc), model)
    assert higher.epoch == 2 and higher.evaluation is None and not higher.model  # select: last keeps no weights


def test_selection_state_round_trips_through_last_pt_and_patience_counts_from_the_best() -> None:
    spec = OmegaConf.create({"select": "best", "select_metric": "val_loss", "patience": 2, "init": "previous"})
    model = nn.Linear(2, 2)
    selection = Selection(spec)
    selection.start_value = 0.5
    for epoch, loss in ((0, 0.5), (1, 0.3), (2, 0.35)):
        selection.best.offer(evaluation(epoch, loss), model)
    restored = Selection(spec)
    restored.load_state_dict(through_last_pt(selection.state_dict()))
    assert (restored.best.epoch, restored.best.value, restored.start_value) == (1, 0.3, 0.5)
    assert all(torch.equal(restored.best.model[k], v) for k, v in model.state_dict().items())
    assert np.array_equal(restored.best.evaluation.pred, selection.best.evaluation.pred)
    assert restored.best.evaluation.metrics == selection.best.evaluation.metrics

    class At:  # the loop's finished-epoch counter is all stop_reason reads
        def __init__(self, epoch: int) -> None:
            self.epoch = epoch

    assert restored.stop_reason(At(2)) is None
    assert restored.stop_reason(At(3)) == "no better val_loss for 2 epochs"


def test_hooks_keep_their_states_by_name_and_refuse_two_of_a_name() -> None:
    hooks = Hooks([GradientClipping(1.0), WeightAverage(0.9), Hook()])
    hooks.hooks[0].steps, hooks.hooks[0].clipped = 7, 3
    states = through_last_pt(hooks.state_dict())
    assert set(states) == {"grad_clip", "ema"}
    fresh = Hooks([GradientClipping(1.0), WeightAverage(0.9), Hook()])
    fresh.load_state_dict(states)
    assert (fresh.hooks[0].steps, fresh.hooks[0].clipped) == (7, 3)
    with pytest.raises(ValueError, match="same name"):
        Hooks([WeightAverage(0.9), WeightAverage(0.99)])


def two_group_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.ModuleDict({"flow": nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)), "fusion": nn.Linear(3, 1)})


def test_weight_average_follows_its_formula_on_the_trained_groups_and_swaps_back_exactly() -> None:
    model = two_group_model()
    ema = WeightAverage(0.9)
    ema.track(model, ["flow"])
    assert set(ema.average) == {k for k in model.state_dict() if k.startswith("flow.") and "num_batches" not in k}
    expected = {k: v.clone() for k, v in ema.average.items()}
    for step in range(1, 4):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1 * step)
        ema.update()
        decay = min(0.9, (1 + step) / (10 + step))
        for key, value in model.state_dict().items():
            if key in expected:
                expected[key] = decay * expected[key] + (1 - decay) * value
    for key, value in expected.items():
        torch.testing.assert_close(ema.average[key], value)
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    with ema.swapped_in():
        assert torch.equal(model.state_dict()["flow.0.weight"], ema.average["flow.0.weight"])
        assert torch.equal(model.state_dict()["fusion.weight"], trained["fusion.weight"])  # not trained: untouched
    assert all(torch.equal(v, trained[k]) for k, v in model.state_dict().items())
    resumed = WeightAverage(0.9)
    resumed.load_state_dict(through_last_pt(ema.state_dict()))
    resumed.track(model, ["flow"])  # a resumed stage keeps the average it saved
    assert resumed.steps == 3 and all(torch.equal(resumed.average[k], v) for k, v in ema.average.items())


def test_one_objective_gives_the_same_loss_in_training_and_in_validation() -> None:
    spec = OmegaConf.create({"loss_weights": {"dynamics": 1.0, "synkinesis": 3.0}})
    objective = Objective(spec)
    pred = torch.tensor([[0.2, 0.5], [0.9, 0.1]])
    batch = {"target": torch.tensor([[1.0, 2.0], [5.0, 0.0]]), "target_valid": torch.tensor([[1.0, 1.0], [1.0, 0.0]])}
    # By hand: scaled targets [0.2, 0.667], [1.0, 0]; dynamics MSE (0 + 0.01) / 2, synkinesis (0.1667²) / 1.
    expected = (1.0 * 0.005 + 3.0 * (0.5 - 2 / 3) ** 2) / 4.0
    assert float(objective.batch_loss(pred, batch)) == pytest.approx(expected, rel=1e-5)


def saved_run(folder: Path, status: str) -> Path:
    folder.mkdir()
    OmegaConf.save(compose(["model.flow.weights=none"]), folder / "config.yaml")
    (folder / STATUS_FILE).write_text(json.dumps({"status": status}))
    return folder


def test_resume_may_change_how_a_run_computes_never_what_it_learns(tmp_path: Path) -> None:
    run_dir = saved_run(tmp_path / "run", "interrupted")
    cfg = resume_config(run_dir, ["trainer.progress=false", "stages.s4.epochs=9", "data.num_workers=0"])
    assert cfg.trainer.progress is False and cfg.stages.s4.epochs == 9 and cfg.resume == str(run_dir)
    for learning in ("trainer.ema=0.99", "trainer.grad_clip=1.0", "optimizer.lr=0.5", "seed=3"):
        with pytest.raises(ConfigError, match=f"it cannot change {learning}"):
            resume_config(run_dir, [learning])
    with pytest.raises(ConfigError, match="that run finished"):
        resume_config(saved_run(tmp_path / "done", "finished"), [])


# --- whole stages ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tiny_train_py_run):
    return tiny_train_py_run


def test_a_stage_that_ends_worse_than_its_start_hands_on_the_weights_it_was_given(trained, tmp_path, caplog) -> None:
    from facedyn import training

    overrides = [o for o in trained.overrides if not o.startswith("stages.")]
    # A learning rate that can only make the fusion layer worse.
    stage_3 = ["stage=3", f"init_from={trained.run_dir}", "stages.s3.epochs=2", "stages.s3.lr=1000"]
    run_dir = tmp_path / "worse"
    with caplog.at_level("INFO", logger="facedyn.training"):
        training.run(compose([*overrides, *stage_3]), run_dir, overrides)
    per_stage = json.loads((run_dir / "metrics.json").read_text())["per_stage"]["3"]
    history = [r for r in json.loads((run_dir / "training_history.json").read_text())["epochs"]]
    assert per_stage["kept_epoch"] == 0 and per_stage["start_val_loss"] < min(r["val_loss"] for r in history)
    assert per_stage["val_loss"] == pytest.approx(per_stage["start_val_loss"], rel=1e-6)
    handed_on = torch.load(stage_checkpoint(run_dir, "3"), weights_only=True)["model"]
    given = torch.load(stage_checkpoint(trained.run_dir, "2b"), weights_only=True)["model"]
    assert all(torch.equal(handed_on[k], given[k]) for k in given)
    assert "stage 3 done" in caplog.text and "hands on the weights it started from" in caplog.text


def _wait_for_epoch(process, status_file: Path, epoch: int) -> None:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = json.loads(status_file.read_text()) if status_file.is_file() else {}
        if status.get("epoch", 0) >= epoch:
            return
        assert process.poll() is None, process.stdout.read()
        time.sleep(0.02)
    raise AssertionError("the run did not reach the epoch in time")


def test_ema_and_clipping_resume_exactly_after_sigkill(trained, tmp_path) -> None:
    overrides = [o for o in trained.overrides if not o.startswith("stages.")]
    # Stage 3 trains on precomputed branch outputs: its epochs take milliseconds, so it checkpoints every
    # epoch here and runs enough of them for the kill to land mid-stage.
    stage_3 = ["stage=3", f"init_from={trained.run_dir}", "stages.s3.epochs=12", "stages.s3.checkpoint=epoch",
               "trainer.ema=0.8", "trainer.grad_clip=0.05"]
    reference = train_py([*overrides, *stage_3, f"hydra.run.dir={tmp_path / 'reference'}"])
    killed_dir = tmp_path / "killed"
    process = train_py([*overrides, *stage_3, f"hydra.run.dir={killed_dir}"])
    _wait_for_epoch(process, killed_dir / STATUS_FILE, 3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not stage_checkpoint(killed_dir, "3").exists(), "killed too late to test a mid-stage resume"
    output, _ = reference.communicate(timeout=600)
    assert reference.returncode == 0, output
    assert "gradient norm clipped to 0.05 in" in output
    resumed = train_py([f"resume={killed_dir}"])
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0 and "Resuming" in output, output

    def history(run: Path) -> list[dict]:
        rows = json.loads((run / "training_history.json").read_text())["epochs"]
        return [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in rows]

    assert history(killed_dir) == history(tmp_path / "reference")
    assert json.loads((killed_dir / "metrics.json").read_text())["final"] == \
        json.loads((tmp_path / "reference" / "metrics.json").read_text())["final"]
    a = torch.load(stage_checkpoint(killed_dir, "3"), weights_only=True)["model"]
    b = torch.load(stage_checkpoint(tmp_path / "reference", "3"), weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in b)
