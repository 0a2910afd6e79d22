"""Experiment tracking read back from what it wrote: TensorBoard event files and a real MLflow store, against
the run's own training_history.json and metrics.json; a store that breaks mid-run costs a warning only."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import pytest

from facedyn import training
from facedyn.config import compose
from facedyn.runs import HISTORY_FILE, METRICS_FILE, STATUS_FILE, read_json
from facedyn.training.hooks.base import Hook
from facedyn.training.tracking import Tracker, scalars, start
from tests.conftest import tiny_epochs

TWO_STAGES = ["stage=2a", "stages.s2a.init=none", *tiny_epochs({"s2a": 3})]


def run(tmp_path: Path, tiny_overrides: list[str], *extra: str, hooks: tuple[Hook, ...] = ()) -> Path:
    overrides = [*tiny_overrides, *TWO_STAGES, *extra]
    run_dir = tmp_path / "run"
    training.run(compose(overrides), run_dir, overrides, hooks=hooks)
    return run_dir


def history_scalars(run_dir: Path) -> dict[tuple[str, int], float]:
    return {(key, row["epoch"]): value for row in read_json(run_dir / HISTORY_FILE)["epochs"]
            for key, value in scalars(row).items()}


def read_events(folder: Path) -> dict[tuple[str, int], float]:
    """Every scalar of the TFRecord event files in `folder`: (tag, step) → value."""
    from tensorboardX.proto.event_pb2 import Event

    values = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        at = 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at:at + 8])
            event = Event.FromString(data[at + 12:at + 12 + length])
            at += 12 + length + 4  # length, its CRC, the record, its CRC
            for value in event.summary.value:
                values[(value.tag, event.step)] = value.simple_value
    return values


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory, tiny_data_overrides) -> Path:
    """A run with the default logger."""
    tmp_path = tmp_path_factory.mktemp("default-logger")
    return run(tmp_path, [f"paths.output_dir={tmp_path / 'outputs'}", "model.flow.weights=none",
                          "trainer.progress=false", "trainer.threads=2", *tiny_data_overrides])


def test_tensorboard_is_on_by_default_with_every_epoch_of_the_history(default_run: Path) -> None:
    assert compose([]).logger.name == "tensorboard"
    assert type(start(compose(["logger=none"]), default_run.parent / "untracked")) is Tracker  # logger=none: off
    run_dir = default_run
    expected = history_scalars(run_dir)
    assert {key for key, _ in expected} >= {"stage_2a/train_loss", "stage_2a/val_loss", "stage_2a/lr",
                                            "stage_2a/val_mae_dynamics"}
    logged = read_events(run_dir / "tensorboard")
    assert logged.keys() == expected.keys() and len(expected) > 3 * 4
    for key, value in expected.items():
        assert logged[key] == pytest.approx(value, rel=1e-6, abs=1e-12)  # event files hold float32


def test_mlflow_logs_config_epochs_final_metrics_and_result_files(tmp_path: Path, tiny_overrides) -> None:
    import mlflow

    run_dir = run(tmp_path, tiny_overrides, "logger=mlflow", "+logger.tags.study=tiny.stage_2a")
    assert not (run_dir / "tensorboard").exists()
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'outputs' / 'mlflow' / 'mlflow.db'}")
    (logged,) = client.search_runs([client.get_experiment_by_name("facedyn").experiment_id])
    assert logged.data.params["stages.s2a.lr"] == str(compose([*tiny_overrides, *TWO_STAGES]).stages.s2a.lr)
    assert logged.data.params["seed"] == "0"
    assert logged.data.tags["run_dir"] == str(run_dir.resolve()) and logged.data.tags["status"] == "finished"
    assert logged.data.tags["study"] == "tiny.stage_2a" and logged.info.status == "FINISHED"
    for (key, epoch), value in history_scalars(run_dir).items():
        steps = {m.step: m.value for m in client.get_metric_history(logged.info.run_id, key)}
        assert steps[epoch] == pytest.approx(value, rel=1e-12)
    final = read_json(run_dir / METRICS_FILE)["final"]
    assert logged.data.metrics["final/val_loss"] == pytest.approx(final["val_loss"], rel=1e-12)
    artifacts = {a.path for a in client.list_artifacts(logged.info.run_id)}
    assert {"config.yaml", "metrics.json", "training_history.json", "predictions.csv"} <= artifacts


def test_a_tracking_store_that_breaks_mid_run_warns_and_training_goes_on(
        tmp_path: Path, tiny_overrides, caplog, default_run: Path) -> None:
    store = tmp_path / "outputs" / "mlflow" / "mlflow.db"

    class BreakTheStore(Hook):
        def epoch_end(self, loop, epoch) -> None:
            if epoch.epoch == 1:  # as a server that goes away: the store is no database any more
                store.write_bytes(b"gone" * 4096)

    with caplog.at_level(logging.WARNING, logger="facedyn.training.tracking"):
        run_dir = run(tmp_path, tiny_overrides, "logger=mlflow", hooks=(BreakTheStore(),))
    warnings = [r.getMessage() for r in caplog.records if "experiment tracking" in r.getMessage()]
    assert len(warnings) == 1 and "failed, training goes on without it" in warnings[0]
    assert read_json(run_dir / STATUS_FILE)["status"] == "finished"
    assert len(read_json(run_dir / HISTORY_FILE)["epochs"]) == 3
    # Tracking changes nothing: the same run as the one tracked by TensorBoard throughout.
    assert read_json(run_dir / METRICS_FILE)["final"] == read_json(default_run / METRICS_FILE)["final"]


@pytest.mark.slow
def test_an_unreachable_tracking_server_warns_before_training_and_training_goes_on(
        tmp_path: Path, tiny_overrides, caplog, monkeypatch) -> None:
    import socket

    with socket.socket() as s:  # a loopback port with no server behind it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with caplog.at_level(logging.WARNING, logger="facedyn.training.tracking"):
        run_dir = run(tmp_path, tiny_overrides, "logger=mlflow", f"logger.tracking_uri=http://127.0.0.1:{port}")
    (warning,) = [r.getMessage() for r in caplog.records if "experiment tracking" in r.getMessage()]
    assert "could not start" in warning
    assert read_json(run_dir / STATUS_FILE)["status"] == "finished"
