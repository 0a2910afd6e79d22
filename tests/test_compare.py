"""`python -m facedyn.compare` over real run folders of the real trainer: a finished and a failed run, a
Hydra multirun job (train.py -m); then copies damaged the way crashes and old versions leave them.
Sweep trials are compared in tests/test_sweep.py, over a real sweep."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from facedyn import training
from facedyn.cli import compare
from facedyn.training.hooks.base import Hook
from facedyn.config import compose
from facedyn.metrics import HEADLINE_METRICS
from facedyn.runs import HISTORY_FILE, METRICS_FILE, STATUS_FILE, read_json

REPO = Path(__file__).resolve().parents[1]
TINY = ["stage=2a", "data.synthetic.videos=5", "data.synthetic.frames_per_video=1",
        "data.synthetic.expressions=[smile,eye_close]", "model.flow.weights=none", "trainer.progress=false",
        "stages.s2a.init=none", "stages.s2a.epochs=2"]


class Stop(RuntimeError):
    """Raised from a hook: a run that fails after its first epoch."""


class StopAfterAnEpoch(Hook):
    def epoch_end(self, loop, epoch) -> None:
        raise Stop("stopped on purpose")


def train(run_dir: Path, *overrides: str, fail: bool = False) -> None:
    args = [*TINY, *overrides]
    try:
        training.run(compose(args), run_dir, args, hooks=[StopAfterAnEpoch()] if fail else [])
    except Stop:
        assert fail


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("project") / "outputs"
    train(out / "runs" / "2026-01-02_10-00-00_good", "stages.s2a.lr=0.003", "optimizer=adam")
    train(out / "runs" / "2026-01-02_11-00-00", fail=True)
    subprocess.run([sys.executable, str(REPO / "train.py"), "-m", *TINY, "seed=1", f"paths.output_dir={out}"],
                   cwd=out.parent, check=True, capture_output=True, timeout=600)
    return out


def table(*args: str) -> list[dict]:
    """compare's CSV (the same rows it prints) for the arguments."""
    out_dir = Path(args[0]).parent / "compare"
    assert compare.main([*args, "--out", str(out_dir)]) == 0
    with (out_dir / "runs.csv").open() as fh:
        return list(csv.DictReader(fh))


def by_run(rows: list[dict]) -> dict[str, dict]:
    return {row["run"]: row for row in rows}


def test_every_run_folder_is_found_with_its_figures(outputs: Path) -> None:
    rows = by_run(table(str(outputs)))
    multirun = [r for r in rows if r.startswith("multirun/")]
    assert len(multirun) == 1 and rows[multirun[0]]["kind"] == "multirun" and multirun[0].endswith("/0")
    assert set(rows) == {"runs/2026-01-02_10-00-00_good", "runs/2026-01-02_11-00-00", *multirun}
    good = rows["runs/2026-01-02_10-00-00_good"]
    history = read_json(outputs / good["run"] / HISTORY_FILE)["epochs"]
    final = read_json(outputs / good["run"] / METRICS_FILE)["final"]
    assert (good["kind"], good["stage"], good["status"], int(good["epochs"])) == ("run", "2a", "finished", 2)
    assert float(good["best_val_loss"]) == pytest.approx(min(e["val_loss"] for e in history))
    for key in HEADLINE_METRICS:
        if final.get(key) is not None and final[key] == final[key]:  # nan: an empty cell
            assert float(good[key]) == pytest.approx(final[key])
    shown = good["overrides"].split()
    assert "stages.s2a.lr=0.003" in shown and "stages.s2a.epochs=2" in shown
    assert "optimizer=adam" not in shown and "stage=2a" not in shown  # a default; the stage has its column
    assert float(good["duration_s"]) > 0
    failed = rows["runs/2026-01-02_11-00-00"]
    assert (failed["status"], failed["epochs"]) == ("failed", "1") and failed["val_loss"] != ""
    assert "seed=1" in rows[multirun[0]]["overrides"].split()


def test_filters_and_sorting(outputs: Path) -> None:
    assert [r["run"] for r in table(str(outputs), "--status", "failed")] == ["runs/2026-01-02_11-00-00"]
    assert [r["kind"] for r in table(str(outputs), "--override", "seed=1")] == ["multirun"]
    assert [r["kind"] for r in table(str(outputs), "--override", "optimizer")] == ["run"]  # any optimizer override
    assert len(table(str(outputs), "--stage", "2a")) == 3
    assert compare.main([str(outputs), "--stage", "3", "--no-files"]) == 0  # prints "no runs found"
    losses = [float(r["best_val_loss"]) for r in table(str(outputs), "--sort=-best_val_loss")]
    assert losses == sorted(losses, reverse=True) and len(losses) == 3
    assert compare.main([str(outputs), "--sort", "colour", "--no-files"]) == 2


def test_writes_a_plot_of_the_validation_curves(outputs: Path) -> None:
    table(str(outputs), "--status", "finished")
    assert (outputs.parent / "compare" / "val_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_half_written_and_old_folders_are_listed_as_such(outputs: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "outputs"
    good = outputs / "runs" / "2026-01-02_10-00-00_good"
    for name in ("truncated", "no_metrics", "old", "killed"):
        shutil.copytree(good, damaged / name)
    for name in (STATUS_FILE, HISTORY_FILE):  # a crash in the middle of a (non-atomic) write
        text = (damaged / "truncated" / name).read_text()
        (damaged / "truncated" / name).write_text(text[: len(text) // 2])
    (damaged / "no_metrics" / METRICS_FILE).unlink()
    (damaged / "no_metrics" / "config.yaml").unlink()
    status = read_json(damaged / "old" / STATUS_FILE)
    del status["format"]
    (damaged / "old" / STATUS_FILE).write_text(json.dumps(status))
    (damaged / "old" / "overrides.yaml").unlink()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    status = read_json(damaged / "killed" / STATUS_FILE)
    status.update(status="running", pid=int(gone.stdout), ended=None)
    (damaged / "killed" / STATUS_FILE).write_text(json.dumps(status))
    (damaged / "empty").mkdir()
    (damaged / "empty" / "config.yaml").write_text("")

    rows = by_run(table(str(damaged)))

    assert set(rows) == {"truncated", "no_metrics", "old", "killed", "empty"}
    assert rows["truncated"]["status"] == "incomplete" and rows["truncated"]["epochs"] == "0"
    assert "run_status.json unreadable" in rows["truncated"]["note"]
    assert "training_history.json unreadable" in rows["truncated"]["note"]
    assert rows["no_metrics"]["status"] == "finished" and "no config.yaml" in rows["no_metrics"]["note"]
    history = read_json(good / HISTORY_FILE)["epochs"]
    assert float(rows["no_metrics"]["val_loss"]) == pytest.approx(history[-1]["val_loss"])  # the last epoch's
    assert rows["no_metrics"]["stage"] == "2a"  # from the history
    assert "run format none" in rows["old"]["note"] and rows["old"]["overrides"] == ""
    assert rows["killed"]["status"] == "interrupted"
    assert rows["empty"]["status"] == "incomplete" and rows["empty"]["epochs"] == "0"


def test_command_line(outputs: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "facedyn.compare", str(outputs), "--no-files",
                             "--columns", "run,stage,status,best_val_loss"],
                            capture_output=True, text=True, cwd=REPO, timeout=120, env={**os.environ})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["run", "stage", "status", "best_val_loss"]  # the names --columns takes
    assert any(line.split()[:3] == ["runs/2026-01-02_11-00-00", "2a", "failed"] for line in lines)
    assert len(lines) == 1 + 3
