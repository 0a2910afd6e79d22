"""`python -m facedyn.crossval`: k folds by video through the real trainer, the mean ± std table checked
against the fold runs' own prediction files, stage 1 shared by variants, rerun and second-writer behaviour.

The table of the tiny run is kept as an artifact: $FACEDYN_ARTIFACTS (default <repo>/artifacts)/crossval_tiny/.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from facedyn.crossval import plan as cv_plan
from facedyn.crossval import runner
from facedyn.crossval.__main__ import main
from facedyn.crossval.summary import BRANCHES
from facedyn.metrics import icc_2_1
from facedyn.runs import RunFolderInUse
from tests.conftest import REPO, folder_held_by_another_process

FOLDS = 2
STAGES = "stage=[1,2a,2b,3]"  # stage 4 adds nothing the table treats differently, only minutes
EPOCHS = ["stages.s1.epochs=1", "stages.s2a.epochs=2", "stages.s2b.epochs=1", "stages.s3.epochs=2"]
VARIANTS = "model=seed,paired_expression"  # the seed, and a model conditioned on the expression
ARTIFACTS = Path(os.environ.get("FACEDYN_ARTIFACTS", REPO / "artifacts"))


@pytest.fixture(scope="module")
def tiny_cv(tmp_path_factory, tiny_data_overrides):
    out = tmp_path_factory.mktemp("crossval") / "cv"
    args = [f"folds={FOLDS}", "share=1", f"out={out}", STAGES, VARIANTS, "model.flow.weights=none",
            "trainer.progress=false", "trainer.threads=2", "data.num_workers=0",
            f"paths.output_dir={out.parent / 'outputs'}",
            *tiny_data_overrides, *EPOCHS]
    root = runner.run(cv_plan.parse_args(args))
    artifact = ARTIFACTS / "crossval_tiny"
    artifact.mkdir(parents=True, exist_ok=True)
    for name in ("crossval.md", "crossval.json", "crossval.csv", "plan.json"):
        shutil.copyfile(root / name, artifact / name)
    return root, args


def _video_rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow  # CI time (~50 s for the tiny folds): the argument and refusal tests below run in CI
def test_table_is_the_mean_and_std_of_each_folds_own_predictions(tiny_cv):
    root, _ = tiny_cv
    summary = json.loads((root / "crossval.json").read_text())
    assert set(summary["variants"]) == {"model-seed__stage-1-2a-2b-3", "model-paired_expression__stage-1-2a-2b-3"}
    for label, variant in summary["variants"].items():
        assert set(variant["branches"]) == {*BRANCHES, "baseline"}
        for branch, stage in (("flow", "1"), ("landmarks", "2b"), ("fused", "3")):
            assert variant["branches"][branch]["stage"] == stage
            maes, iccs = [], []
            for fold in range(FOLDS):
                group = "shared" if stage == "1" else label
                rows = _video_rows(root / group / f"fold_{fold}" / f"predictions_stage_{stage}_video.csv")
                true = np.array([float(r["dynamics_true"]) for r in rows])
                pred = np.array([float(r["dynamics_pred"]) for r in rows])
                maes.append(np.mean(np.abs(pred - true)))
                iccs.append(icc_2_1(np.stack([true, pred], axis=1)))
            mae = variant["branches"][branch]["val_video_mae_dynamics"]
            assert mae["mean"] == pytest.approx(np.mean(maes), abs=1e-5)
            assert mae["std"] == pytest.approx(np.std(maes, ddof=1), abs=1e-5)
            icc = variant["branches"][branch]["val_video_icc_dynamics"]
            assert icc["mean"] == pytest.approx(np.mean(iccs), abs=1e-5)
    table = (root / "crossval.md").read_text()
    assert "| model-paired_expression__stage-1-2a-2b-3 | landmark branch (2b) |" in table
    assert " ± " in table
    with open(root / "crossval.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 2 * 4 * 5  # variants × (3 branches + baseline) × metrics


@pytest.mark.slow  # shares the tiny folds above
def test_folds_partition_the_videos_and_variants_start_from_the_shared_stage_1(tiny_cv):
    root, _ = tiny_cv
    val_videos = [json.loads((root / "shared" / f"fold_{k}" / "split.json").read_text())["val_videos"]
                  for k in range(FOLDS)]
    train_0 = json.loads((root / "shared" / "fold_0" / "split.json").read_text())["train_videos"]
    assert not set(val_videos[0]) & set(val_videos[1])
    assert set(val_videos[0]) | set(val_videos[1]) == set(val_videos[0]) | set(train_0)
    label = "model-paired_expression__stage-1-2a-2b-3"
    for k in range(FOLDS):
        assert json.loads((root / label / f"fold_{k}" / "split.json").read_text())["val_videos"] == val_videos[k]
        shared = torch.load(root / "shared" / f"fold_{k}" / "checkpoints" / "stage_1.pt", weights_only=True)["model"]
        init = torch.load(root / label / "init" / f"fold_{k}.pt", weights_only=True)["model"]
        flow_keys = [key for key in shared if key.startswith("flow.")]
        assert flow_keys and all(torch.equal(init[key], shared[key]) for key in flow_keys)
        assert init["landmark_head.weight"].shape == (12, 216)  # the variant's own head, not the shared run's
        assert not (root / label / f"fold_{k}" / "checkpoints" / "stage_1.pt").exists()  # stage 1 not retrained


@pytest.mark.slow  # shares the tiny folds above; the lock it meets is tested in CI (test_run_folder)
def test_rerun_keeps_finished_folds_and_a_second_writer_is_refused(tiny_cv, caplog):
    root, args = tiny_cv
    metrics = sorted(root.glob("*/fold_*/metrics.json"))
    before = [p.stat().st_mtime_ns for p in metrics]
    with caplog.at_level("INFO", logger="facedyn.crossval.runner"):
        runner.run(cv_plan.parse_args(args))
    assert [p.stat().st_mtime_ns for p in metrics] == before
    assert caplog.text.count("kept (finished)") == FOLDS * 3
    with folder_held_by_another_process(root) as holder:
        with pytest.raises(RunFolderInUse, match=f"in use by process {holder.pid} .*another cross-validation"):
            runner.run(cv_plan.parse_args(args))


@pytest.mark.parametrize("args, message", [
    (["folds=1"], "folds=1: cross-validation needs at least 2 folds"),
    (["data.folds=3"], "the folds are the command's own"),
    (["init_from=x"], "every fold trains from the start"),
    (["share=9"], "share=9: not a stage"),
    (["stage=1,2a"], "stages are not variants"),
])
def test_bad_settings_are_one_line_errors(args, message, capsys):
    assert main(args) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_variant_that_changes_the_shared_stage_is_refused(tmp_path, capsys):
    assert main(["folds=2", "share=1", f"out={tmp_path / 'cv'}", "stages.s1.lr=1e-3,1e-4"]) == 1
    assert "changes stages.s1" in capsys.readouterr().err


@pytest.mark.parametrize("module", ["facedyn.crossval.summary", "facedyn.crossval.residuals", "facedyn.crossval.layout"])
def test_the_table_and_the_residuals_need_no_torch(module):
    """Rewriting the table or the residuals of a finished cross-validation is bookkeeping: no trainer, no torch."""
    probe = f"import sys, {module}\nprint('torch' in sys.modules, 'facedyn.crossval.runner' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.stdout.split() == ["False", "False"]
