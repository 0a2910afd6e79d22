"""Two sweep.py worker processes on one study, one SIGKILLed mid-trial and started again (as a cluster's
requeue would), on a real PostgreSQL server and on SQLite: the outcome is that of one undisturbed process."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from facedyn.runs import HISTORY_FILE, STATUS_FILE, read_json
from tests.postgres import postgres  # noqa: F401  (the session's server)
from tests.test_sweep import finish, run_sweep, start, sweep_args, sweep_command

STAGES = ("2a", "3")
EPOCHS = {"2a": 3, "3": 2}
# Random sampler with a seed and no pruner: what a trial draws and scores depends on nothing but the seed and
# the order of draws, so any number of processes must find what one finds.
SHARED = ["sweep.trials_per_stage=2", "sweep.sampler.seed=5", "sweep.pruner.name=none", "sweep.poll_seconds=0.5",
          *(f"stages.s{stage}.epochs={epochs}" for stage, epochs in EPOCHS.items())]


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    sweep_dir = run_sweep(sweep_args(tmp_path_factory.mktemp("one-process"), *SHARED))
    return json.loads((sweep_dir / "summary.json").read_text())


def outcome(summary: dict) -> dict:
    """What a sweep found, without where and by whom: each stage's best params and metrics, every finished
    trial's params and value."""
    return {
        "best": {stage: (info["best"]["params"], info["best"]["metrics"]) for stage, info in summary["stages"].items()},
        "finished": sorted((t["stage"], sorted(t["params"].items()), t["value"])
                           for t in summary["trials"] if t["state"] == "complete"),
    }


def wait_for_trial_of(process, trials_dir: Path, log: Path) -> Path:
    """The run folder of a trial that `process` has started (its run_status.json names its pid)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        for status in trials_dir.glob(f"*/{STATUS_FILE}"):
            if (read_json(status) or {}).get("pid") == process.pid:
                return status.parent
        time.sleep(0.05)
    raise AssertionError(f"no trial of pid {process.pid} started within 300 s")


@pytest.mark.parametrize("backend", ["postgresql", pytest.param("sqlite", marks=pytest.mark.slow)])
def test_two_workers_one_killed_mid_trial_find_what_one_process_finds(
        backend: str, request: pytest.FixtureRequest, tmp_path: Path, undisturbed: dict) -> None:
    storage = []
    if backend == "postgresql":
        storage = [f"sweep.storage={request.getfixturevalue('postgres').create_database('two_workers')}"]
    command = sweep_command(tmp_path, *SHARED, *storage)
    logs = [tmp_path / "a.log", tmp_path / "b.log", tmp_path / "b-again.log"]
    survivor, victim = start(command, logs[0]), start(command, logs[1])
    killed_dir = wait_for_trial_of(victim, tmp_path / "tiny" / "trials" / "2a", logs[1])
    os.killpg(victim.pid, signal.SIGKILL)  # mid-trial, as an OOM kill or a lost node would
    victim.wait()
    requeued = start(command, logs[2])
    finish(survivor, logs[0])
    finish(requeued, logs[2])

    url = storage[0].split("=", 1)[1] if storage else f"sqlite:///{tmp_path / 'tiny' / 'study.db'}"
    run_dirs = []
    for stage in STAGES:
        trials = optuna.load_study(study_name=f"tiny.stage_{stage}", storage=url).trials
        ran = [t for t in trials if not t.user_attrs.get("surplus")]
        done = [t for t in ran if t.state == TrialState.COMPLETE]
        assert len(done) == 2, [(t.number, t.state) for t in trials]  # the budget, exactly
        for trial in done:  # each trained once, into a folder of its own
            history = read_json(Path(trial.user_attrs["run_dir"]) / HISTORY_FILE)["epochs"]
            assert len(history) == EPOCHS[stage] and len(trial.intermediate_values) == EPOCHS[stage]
        run_dirs += [t.user_attrs["run_dir"] for t in ran]
        if stage == "2a":
            killed = [t for t in trials if t.user_attrs.get("run_dir") == str(killed_dir)]
            assert [t.state for t in killed] == [TrialState.FAIL]
            retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed[0].number]
            assert [t.state for t in retries] == [TrialState.COMPLETE]
            assert retries[0].params == killed[0].params
            assert read_json(killed_dir / STATUS_FILE)["status"] == "interrupted"
        else:
            assert {t.state for t in ran} == {TrialState.COMPLETE}
    assert len(set(run_dirs)) == len(run_dirs)
    pids = {read_json(Path(d) / STATUS_FILE)["pid"] for d in run_dirs}
    assert victim.pid in pids and len(pids) >= 2  # both workers trained
    summary = json.loads((tmp_path / "tiny" / "summary.json").read_text())
    assert summary["complete"] and outcome(summary) == outcome(undisturbed)


@pytest.mark.parametrize("url, says", [
    ("postgresql+psycopg://facedyn:secret@127.0.0.1:{port}/study", "cannot reach the database: connection failed"),
    pytest.param("postgresql+psycopg2://facedyn@127.0.0.1/study",
                 "its database driver is not installed (No module named 'psycopg2')", marks=pytest.mark.slow),
    pytest.param("sqlite:///{tmp}/no/such/folder/study.db", "cannot reach the database: unable to open database file",
                 marks=pytest.mark.slow),
])
def test_a_database_that_cannot_work_is_one_line_before_training(tmp_path: Path, url: str, says: str) -> None:
    import socket
    import subprocess

    with socket.socket() as s:  # a loopback port with no server behind it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = url.format(port=port, tmp=tmp_path)
    done = subprocess.run(sweep_command(tmp_path, f"sweep.storage={url}"), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("sweep.py: sweep.storage=") and says in lines[-1], done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "secret" not in done.stderr
    assert not (tmp_path / "tiny" / "trials").exists()
