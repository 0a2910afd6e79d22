"""Launching beyond one process, for real: Hydra's submitit launcher with submitit's local executor (the code
path SLURM takes, with processes on this machine), and several sweep workers sharing this machine's CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from facedyn.runs import STATUS_FILE, read_json
from facedyn.sweep.launch import executor_params
from facedyn.sweep.config import split_args
from tests.conftest import tiny_epochs
from tests.test_sweep import REPO, sweep_command

ONE_STAGE = ["sweep.stages=[2a]", "sweep.trials_per_stage=2", "sweep.pruner.name=none", "sweep.poll_seconds=0.5",
             "stages.s2a.epochs=1"]


def study_trials(sweep_dir: Path) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name="tiny.stage_2a", storage=f"sqlite:///{sweep_dir / 'study.db'}")
    return [t for t in study.trials if not t.user_attrs.get("surplus")]


def run(command: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600, env={**os.environ, **env})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def test_a_sweep_with_two_submitit_workers_shares_one_study(tmp_path: Path) -> None:
    run(sweep_command(tmp_path, *ONE_STAGE, "sweep.launcher=submitit_local", "sweep.workers=2"), tmp_path)
    sweep_dir = tmp_path / "tiny"
    trials = study_trials(sweep_dir)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    # Where a single-machine sweep puts them, one trained by each job.
    assert sorted(t.user_attrs["run_dir"] for t in trials) == [str(sweep_dir / "trials" / "2a" / str(n)) for n in (0, 1)]
    assert all(read_json(Path(t.user_attrs["run_dir"]) / STATUS_FILE)["status"] == "finished" for t in trials)
    assert len({t.user_attrs["pid"] for t in trials}) == 2
    assert len(list((sweep_dir / "submitit").glob("*/*_result.pkl"))) == 2
    assert (sweep_dir / "summary.json").is_file() and (sweep_dir / "best_overrides.txt").is_file()


@pytest.mark.slow  # the submitit kind runs in CI with the 2-worker sweep
def test_a_multirun_of_three_jobs_through_submitit_lands_in_run_folders(tmp_path: Path, tiny_overrides) -> None:
    command = [sys.executable, str(REPO / "train.py"), "-m", "hydra/launcher=submitit_local", "stage=2a",
               "stages.s2a.init=none", *tiny_epochs({"s2a": 1}), *tiny_overrides, "seed=0,1,2"]
    run(command, tmp_path)
    (multirun,) = (tmp_path / "outputs" / "multirun").iterdir()
    for job in ("0", "1", "2"):
        status = read_json(multirun / job / STATUS_FILE)
        assert status["status"] == "finished", status
        assert f"seed={job}" in (multirun / job / "overrides.yaml").read_text()
    assert len(list((multirun / ".submitit").glob("*/*_result.pkl"))) == 3


def test_k_workers_per_device_share_the_cpu_without_oversubscribing(tmp_path: Path) -> None:
    run(sweep_command(tmp_path, *ONE_STAGE, "sweep.workers_per_device=2"), tmp_path)
    trials = study_trials(tmp_path / "tiny")
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    cores = len(os.sched_getaffinity(0))
    assert {t.user_attrs["torch_threads"] for t in trials} == {max(1, cores // 2)}
    assert len({t.user_attrs["pid"] for t in trials}) == 2


def test_the_slurm_launcher_takes_the_ready_config_and_its_overrides() -> None:
    cfg = split_args(["sweep.launcher=slurm", "sweep.launcher_params.partition=gpu"]).sweep
    cluster, params = executor_params(cfg)
    assert cluster == "slurm"
    assert params["slurm_partition"] == "gpu" and params["gpus_per_node"] == 1
    assert params["slurm_array_parallelism"] == 16 and params["timeout_min"] == 240


def test_a_launcher_whose_plugin_is_missing_is_one_line_before_training(tmp_path: Path) -> None:
    # Python treats a module set to None in sys.modules as not installed: the plugin is absent for this run.
    code = ("import sys; sys.modules['submitit'] = None; from facedyn.cli.sweep import main; "
            f"sys.exit(main({[*sweep_command(tmp_path, *ONE_STAGE, 'sweep.launcher=slurm')[2:]]!r}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == ("sweep.py: sweep.launcher=slurm needs Hydra's submitit launcher: "
                                                   "pip install hydra-submitit-launcher")
    assert not (tmp_path / "tiny" / "trials").exists()


def test_a_multirun_on_a_launcher_whose_plugin_is_missing_is_one_line(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['hydra_plugins.hydra_submitit_launcher'] = None; "
            "sys.argv = ['train.py', '-m', 'hydra/launcher=slurm', 'seed=0,1']; "
            "from facedyn.cli.train import main; main()")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == ["train.py: hydra/launcher=slurm needs Hydra's submitit launcher: "
                                                "pip install hydra-submitit-launcher"]
    assert not (tmp_path / "outputs").exists()
