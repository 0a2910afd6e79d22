"""Sweeps with the real trainer on a tiny generated dataset, studies in real SQLite files.

Stages 2a and 3 are swept: they train only heads on precomputed branch outputs, so a trial takes seconds
on CPU; stage 3 shows the staged hand-over (every trial starts from stage 2a's best checkpoint).
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState

from facedyn.cli import compare
from facedyn.config import compose
from facedyn.runs import METRICS_FILE, STATUS_FILE, read_json
from facedyn.sweep import runner
from facedyn.sweep.config import SweepConfigError, split_args
from facedyn.sweep.report import summarize
from facedyn.sweep.storage import fail_dead_trials, open_storage
from facedyn.sweep.trial import SurplusTrial, refuse_surplus

REPO = Path(__file__).resolve().parents[1]
TINY_DATA = ["data.synthetic.videos=5", "data.synthetic.frames_per_video=1",
             "data.synthetic.expressions=[smile,eye_close]", "model.flow.weights=none", "trainer.progress=false",
             "stages.s2a.init=none"]


def sweep_args(root: Path, *extra: str) -> list[str]:
    return [f"sweep.root={root}", "sweep.study_name=tiny", "sweep.stages=[2a,3]", "sweep.sampler.name=random",
            f"paths.output_dir={root / 'outputs'}", *TINY_DATA, *extra]


def run_sweep(args: list[str]) -> Path:
    parsed = split_args(args)
    return runner.run(runner.prepare(parsed.sweep, parsed.train_overrides))


def load(sweep_dir: Path, stage: str) -> optuna.Study:
    return optuna.load_study(study_name=f"tiny.stage_{stage}", storage=f"sqlite:///{sweep_dir / 'study.db'}")


def mtimes(study: optuna.Study) -> dict[int, float]:
    return {t.number: (Path(t.user_attrs["run_dir"]) / METRICS_FILE).stat().st_mtime_ns
            for t in study.trials if t.state == TrialState.COMPLETE}


# Seed 11 of the random sampler draws the smallest lr (a decade below the others) for trial 2 of each stage:
# after one epoch it lies behind the median of trials 0 and 1, and the median pruner (1 startup trial, no
# warm-up) stops it.
PRUNING = ["sweep.trials_per_stage=3", "sweep.sampler.seed=11", "sweep.pruner.n_startup_trials=1",
           "sweep.pruner.n_warmup_steps=0", "stages.s2a.epochs=3", "stages.s3.epochs=2"]
STAGED = [*PRUNING, "logger=mlflow"]  # the staged sweep, its trials also tracked in MLflow


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sweeps")
    return run_sweep(sweep_args(root, *STAGED))


def test_each_stage_is_a_study_in_sqlite_started_from_the_best_trial_before(staged: Path) -> None:
    assert (staged / "study.db").is_file()
    first, second = load(staged, "2a"), load(staged, "3")
    for study in (first, second):
        states = [t.state for t in study.trials]
        assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == 3
        lrs = [t.params["stages.s" + study.study_name.split("_")[-1] + ".lr"] for t in study.trials]
        assert len(set(lrs)) == 3
    start = first.best_trial.user_attrs["checkpoint"]
    assert Path(start).is_file() and Path(start).parent.parent == Path(first.best_trial.user_attrs["run_dir"])
    assert second.user_attrs["init_from"] == start
    for trial in second.trials:
        assert f"init_from={start}" in read_overrides(Path(trial.user_attrs["run_dir"]))
        assert trial.user_attrs["init_from"] == start


def read_overrides(run_dir: Path) -> list[str]:
    return list(OmegaConf.load(run_dir / "overrides.yaml"))


def test_trials_are_run_folders_and_a_hopeless_one_is_pruned(staged: Path) -> None:
    study = load(staged, "2a")
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned, "the median pruner stopped no trial"
    for trial in study.trials:
        run_dir = Path(trial.user_attrs["run_dir"])
        assert run_dir == staged / "trials" / "2a" / str(trial.number)
        history = read_json(run_dir / "training_history.json")["epochs"]
        # The run folder trained with the trial's lr, and reported every epoch it trained.
        assert OmegaConf.load(run_dir / "config.yaml").stages.s2a.lr == pytest.approx(trial.params["stages.s2a.lr"])
        assert len(history) == len(trial.intermediate_values)
        status = read_json(run_dir / STATUS_FILE)["status"]
        if trial.state == TrialState.PRUNED:
            assert status == "pruned" and len(history) < 3
            assert not (run_dir / METRICS_FILE).exists()
        else:
            assert status == "finished" and len(history) == 3
            assert trial.value == pytest.approx(read_json(run_dir / METRICS_FILE)["final"]["val_loss"])


def test_each_trial_is_an_mlflow_run_tagged_with_its_study_stage_and_trial(staged: Path) -> None:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{staged.parent / 'outputs' / 'mlflow' / 'mlflow.db'}")  # paths.output_dir
    logged = client.search_runs([client.get_experiment_by_name("facedyn").experiment_id])
    by_folder = {r.data.tags["run_dir"]: r for r in logged}
    trials = [(stage, t) for stage in ("2a", "3") for t in load(staged, stage).trials]
    assert len(logged) == len(trials) == 6
    for stage, trial in trials:
        run = by_folder[str(Path(trial.user_attrs["run_dir"]).resolve())]
        assert (run.data.tags["study"], run.data.tags["stage"], run.data.tags["trial"]) == \
            (f"tiny.stage_{stage}", stage, str(trial.number))
        expected = {TrialState.COMPLETE: "finished", TrialState.PRUNED: "pruned"}[trial.state]
        assert run.data.tags["status"] == expected
        assert run.data.params[f"stages.s{stage}.lr"] == str(trial.params[f"stages.s{stage}.lr"])


def test_summary_plots_and_a_train_py_line_for_the_best_pipeline(staged: Path) -> None:
    summary = json.loads((staged / "summary.json").read_text())
    assert summary["complete"]
    best_values = {}
    for stage in ("2a", "3"):
        best = load(staged, stage).best_trial
        assert summary["stages"][stage]["best"]["number"] == best.number
        assert summary["stages"][stage]["best"]["metrics"]["val_loss"] == pytest.approx(best.value)
        best_values.update(best.params)
        for plot in (f"history_{stage}.png", f"params_{stage}.png"):
            assert (staged / "plots" / plot).read_bytes()[:4] == b"\x89PNG"
    assert len(summary["trials"]) == len(load(staged, "2a").trials) + len(load(staged, "3").trials)
    assert len((staged / "trials.csv").read_text().splitlines()) == len(summary["trials"]) + 1
    assert "## All trials" in (staged / "summary.md").read_text()
    line = shlex.split((staged / "best_overrides.txt").read_text())
    assert line[:2] == ["python", "train.py"]
    cfg = compose(line[2:])  # what train.py would run
    assert cfg.stages.s2a.lr == pytest.approx(best_values["stages.s2a.lr"])
    assert cfg.stages.s3.lr == pytest.approx(best_values["stages.s3.lr"])
    assert cfg.data.synthetic.videos == 5
    assert list(cfg.stages) == ["s2a", "s3"]  # the stages swept, not all five


def test_best_overrides_of_a_partial_sweep_keep_where_it_started(staged: Path) -> None:
    parsed = split_args(sweep_args(staged.parent, *STAGED))
    start = load(staged, "2a").best_trial.user_attrs["checkpoint"]
    sweep = runner.prepare(parsed.sweep, [*parsed.train_overrides, f"init_from={start}"])
    studies = {stage: load(staged, stage) for stage in ("2a", "3")}
    line = shlex.split(summarize(sweep, studies)["train_command"])
    cfg = compose(line[2:])
    assert cfg.init_from == start and list(cfg.stages) == ["s2a", "s3"]


def test_compare_lists_the_trials_of_the_sweep(staged: Path) -> None:
    out = staged.parent / "compare"
    assert compare.main([str(staged.parent), "--sweep", "tiny", "--out", str(out)]) == 0
    with (out / "runs.csv").open() as fh:
        rows = {row["run"]: row for row in csv.DictReader(fh)}
    for stage in ("2a", "3"):
        for trial in load(staged, stage).trials:
            row = rows.pop(f"tiny/trials/{stage}/{trial.number}")
            assert (row["kind"], row["sweep"], row["stage"]) == ("sweep trial", "tiny", stage)
            assert row["status"] == {TrialState.COMPLETE: "finished", TrialState.PRUNED: "pruned"}[trial.state]
            assert int(row["epochs"]) == len(trial.intermediate_values)
    assert not rows


def test_rerunning_a_finished_sweep_repeats_nothing(staged: Path) -> None:
    before = {stage: (len(load(staged, stage).trials), mtimes(load(staged, stage))) for stage in ("2a", "3")}
    run_sweep(sweep_args(staged.parent, *STAGED))
    after = {stage: (len(load(staged, stage).trials), mtimes(load(staged, stage))) for stage in ("2a", "3")}
    assert after == before


def sweep_command(root: Path, *extra: str) -> list[str]:
    return [sys.executable, str(REPO / "sweep.py"), *sweep_args(root, *extra)]


def start(command: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=log.parent, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def finish(process: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    assert process.wait(timeout=timeout) == 0, log.read_text()[-3000:]


@pytest.mark.slow  # CI time: test_sweep_workers' PostgreSQL test kills a sweep worker mid-trial in CI
def test_a_killed_sweep_resumes_without_repeating_finished_trials(tmp_path: Path) -> None:
    extra = ["sweep.stages=[2a]", "sweep.trials_per_stage=2", "sweep.pruner.name=none", "stages.s2a.epochs=3"]
    command = sweep_command(tmp_path, *extra)
    process = start(command, tmp_path / "first.log")
    killed_status = tmp_path / "tiny" / "trials" / "2a" / "1" / STATUS_FILE
    deadline = time.monotonic() + 300
    while not killed_status.is_file():
        assert process.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # mid-trial 1, as a crash or an OOM kill would
    process.wait()
    study = load(tmp_path / "tiny", "2a")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.RUNNING]
    done_before = mtimes(study)
    killed_lr = study.trials[1].params["stages.s2a.lr"]

    finish(start(command, tmp_path / "second.log"), tmp_path / "second.log")

    study = load(tmp_path / "tiny", "2a")
    states = [t.state for t in study.trials]
    assert states[1] == TrialState.FAIL
    assert states.count(TrialState.COMPLETE) == 2 and len(states) == 3  # the budget counts trial 0
    assert {n: m for n, m in mtimes(study).items() if n in done_before} == done_before
    retry = [t for t in study.trials if t.system_attrs.get("failed_trial") == 1]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].params["stages.s2a.lr"] == killed_lr
    assert read_json(killed_status)["status"] == "interrupted"


@pytest.mark.slow
def test_joint_mode_trains_the_whole_pipeline_per_trial_and_searches_extra_keys(tmp_path: Path) -> None:
    epochs = [f"stages.s{stage}.epochs=1" for stage in ("1", "2a", "2b", "3", "4")]
    args = [f"sweep.root={tmp_path}", "sweep.study_name=tiny", "sweep.mode=joint", "sweep.trials=2",
            "sweep.sampler.name=random", "sweep.sampler.seed=0", "sweep.pruner.name=none",
            'sweep.params={"data.batch_size": {type: categorical, choices: [4, 8]}}',
            f"paths.output_dir={tmp_path / 'outputs'}", *TINY_DATA[:-1], *epochs]
    sweep_dir = run_sweep(args)
    study = optuna.load_study(study_name="tiny.joint", storage=f"sqlite:///{sweep_dir / 'study.db'}")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    for trial in study.trials:
        run_dir = Path(trial.user_attrs["run_dir"])
        assert run_dir.parent == sweep_dir / "trials" / "all"
        config = OmegaConf.load(run_dir / "config.yaml")
        assert config.data.batch_size == trial.params["data.batch_size"]
        for stage in ("1", "2a", "2b", "3", "4"):
            assert config.stages[f"s{stage}"].lr == pytest.approx(trial.params[f"stages.s{stage}.lr"])
        assert read_json(run_dir / STATUS_FILE)["status"] == "finished"
        assert trial.user_attrs["checkpoint"].endswith("stage_4.pt") and Path(trial.user_attrs["checkpoint"]).is_file()
    line = shlex.split((sweep_dir / "best_overrides.txt").read_text())
    assert f"data.batch_size={study.best_trial.params['data.batch_size']}" in line
    assert compose(line[2:]).stages.s2b.lr == pytest.approx(study.best_trial.params["stages.s2b.lr"])


def test_searched_keys_the_training_config_lacks_are_refused_before_training(tmp_path: Path) -> None:
    args = sweep_args(tmp_path, 'sweep.params={"stages.s{stage}.dropout": {low: 0.0, high: 0.5}}')
    with pytest.raises(SweepConfigError, match=r"stages\.s2a\.dropout"):
        run_sweep(args)
    assert not (tmp_path / "tiny").exists()


def test_a_trial_numbered_past_the_budget_runs_nothing(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}")
    first, second, late = study.ask(), study.ask(), study.ask()  # as three processes asking at once
    refuse_surplus(first, budget=2)
    refuse_surplus(second, budget=2)
    with pytest.raises(SurplusTrial):
        refuse_surplus(late, budget=2)
    assert study.trials[2].user_attrs["surplus"] is True


def test_a_trial_of_another_machine_whose_heartbeat_stopped_is_failed_and_queued_again(tmp_path: Path) -> None:
    cfg = split_args(["sweep.heartbeat_interval=1", "sweep.grace_period=2"]).sweep
    storage = open_storage(cfg, f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    lr = trial.suggest_float("stages.s1.lr", 1e-5, 1e-2, log=True)
    trial.set_user_attr("host", "another-machine")
    trial.set_user_attr("pid", os.getpid())  # alive here, but on that host: only the heartbeat can tell
    storage.record_heartbeat(trial._trial_id)
    assert fail_dead_trials(study) == []
    time.sleep(3)
    assert fail_dead_trials(study) == [0]
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.WAITING]
    retry = study.trials[1]
    assert retry.params == {"stages.s1.lr": lr} and retry.system_attrs["failed_trial"] == 0
    assert "host" not in retry.user_attrs and "pid" not in retry.user_attrs


def test_a_damaged_or_deleted_study_db_is_one_line_and_recover_rebuilds_it_from_the_trial_folders(
        staged: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from facedyn.cli.sweep import main

    copy = tmp_path / "tiny"
    shutil.copytree(staged, copy)
    args = [a for a in sweep_args(staged.parent, *STAGED) if not a.startswith("sweep.root=")] + [f"sweep.root={tmp_path}"]

    def last_error_line(argv: list[str]) -> str:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        return err.strip().splitlines()[-1]

    (copy / "study.db").write_bytes(b"not a database " * 512)
    line = last_error_line(args)
    assert "study.db: the database is damaged" in line and "sweep.recover=true" in line
    (copy / "study.db").unlink()
    line = last_error_line(args)
    assert f"{copy / 'trials' / '2a'} holds 3 trial folders" in line and "sweep.recover=true" in line
    (copy / "study.db").write_bytes(b"not a database " * 512)
    finished = {p: p.stat().st_mtime_ns for p in copy.glob("trials/*/*/metrics.json")}

    assert main([*args, "sweep.recover=true"]) == 0
    assert len(list(copy.glob("study.db.damaged-*"))) == 1  # set aside, not deleted
    for stage in ("2a", "3"):
        before, after = load(staged, stage), load(copy, stage)
        assert [(t.number, t.state, t.params, t.value, t.intermediate_values) for t in after.trials] == \
               [(t.number, t.state, t.params, t.value, t.intermediate_values) for t in before.trials]
        assert after.user_attrs["init_from"] == before.user_attrs["init_from"]
    assert {p: p.stat().st_mtime_ns for p in copy.glob("trials/*/*/metrics.json")} == finished  # nothing retrained
    assert json.loads((copy / "summary.json").read_text())["stages"]["3"]["best"]["params"] == \
           json.loads((staged / "summary.json").read_text())["stages"]["3"]["best"]["params"]
