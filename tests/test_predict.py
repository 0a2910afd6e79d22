"""predict.py on a real tiny trained run: outputs, the shared metrics, unlabelled data, bad input."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from facedyn.inference.config import compose_predict
from facedyn.data import DataError
from facedyn.data.layout import LABELS_FILE
from facedyn.inference import RunError, task
from facedyn.runs import stage_checkpoint
from tests.conftest import REPO


def _predict_cfg(*overrides: str):
    return compose_predict(overrides)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _predict_py(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "predict.py"), *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}, timeout=300)


@pytest.fixture(scope="module")
def own_predictions(tiny_trained_run, tmp_path_factory):
    """predict on the run's own validation videos (no data.root), with labels."""
    out = tmp_path_factory.mktemp("own") / "predictions"
    summary = task.run(_predict_cfg(f"run={tiny_trained_run}", "precision=run"), out)  # as the run validated
    return out, summary


@pytest.fixture(scope="module")
def unlabelled_root(tiny_trained_run, tmp_path_factory) -> Path:
    """Three videos of the run's dataset, in a folder of their own, without label files (a new clinic's data)."""
    split = json.loads((tiny_trained_run / "split.json").read_text())
    source = Path(split["root"])
    root = tmp_path_factory.mktemp("clinic") / "dataset"
    videos = sorted(split["train_videos"] + split["val_videos"])[:3]
    for folder in sorted(source.glob("*/*")):
        if folder.is_dir() and folder.name.rsplit("_", 1)[0] in videos:
            target = root / folder.parent.name / folder.name
            shutil.copytree(folder, target)
            (target / LABELS_FILE).unlink()
    return root


def test_the_same_metrics_as_training_validation_through_one_code_path(tiny_trained_run, own_predictions):
    out, summary = own_predictions
    assert summary["labelled"]
    saved = json.loads((out / "metrics.json").read_text())
    final = json.loads((tiny_trained_run / "metrics.json").read_text())["final"]
    shared = [k for k in saved["metrics"] if f"val_{k}" in final]
    assert "video_icc_dynamics" in shared and "qwk_synkinesis" in shared and "within1_dynamics" in shared
    for key in shared:
        expected = final[f"val_{key}"]
        if isinstance(expected, float):
            assert saved["metrics"][key] == pytest.approx(expected, abs=1e-5, nan_ok=True), key
        else:  # confusion matrices, per-grade accuracies
            assert saved["metrics"][key] == expected, key
    agreement = saved["agreement"]
    for score in ("dynamics", "synkinesis"):
        a = agreement[score]
        assert {"icc", "icc_low", "icc_high", "qwk", "mae", "exact", "within_one", "bias", "loa_low", "loa_high"} <= set(a)
        assert a["mae"] == saved["metrics"][f"video_mae_{score}"]
        assert (out / f"bland_altman_{score}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_outputs_per_frame_video_and_patient(tiny_trained_run, own_predictions):
    out, summary = own_predictions
    split = json.loads((tiny_trained_run / "split.json").read_text())
    frames = _rows(out / "predictions.csv")
    assert len(frames) == summary["samples"] == split["val_samples"]
    assert {f["video"] for f in frames} == set(split["val_videos"])
    videos = _rows(out / "predictions_video.csv")
    assert sum(int(v["frames"]) for v in videos) == len(frames)
    patients = _rows(out / "patients.csv")
    assert [p["video"] for p in patients] == sorted(split["val_videos"])
    for patient in patients:  # the synthetic data has all five expressions: both subtotals are there
        assert 20 <= int(patient["voluntary_movement_score"]) <= 100
        assert 0 <= int(patient["synkinesis_score"]) <= 15
    assert (out / "report.html").is_file() and (out / "model.json").is_file()
    measured = _rows(out / "measurements.csv")  # 5 sided measures and commissure excursion per side, mouth width
    assert len(measured) == 13 * len(frames) and {m["unit"] for m in measured} <= {"mm", "IOD", "degrees"}
    assert {(m["video"], m["frame"]) for m in measured} == {(f["video"], f["frame"]) for f in frames}


def test_report_explains_each_frame_it_shows(own_predictions):
    """One card per patient and expression, each with its faces, both grades' maps, the measurements and both
    grades' top blendshapes; the page says what the model is, what it learnt from and how to read it."""
    out, summary = own_predictions
    groups = len(_rows(out / "predictions_video.csv"))
    assert summary["explained_frames"] == groups and summary["explanation_seconds"] > 0
    report = (out / "report.html").read_text()
    assert report.count('class="card"') == groups
    for caption in ("rest", "expression (registered)", "flow image", "flow branch: dynamics", "flow branch: synkinesis"):
        assert report.count(f'<img alt="{caption}"') == groups, caption
    assert report.count("class='measurements'") == groups and report.count("class='blendshapes'") == 2 * groups
    assert report.count("Affected side:") == groups and "iris diameter" in report
    assert "Research software, not a medical device" in report and "<b>synthetic</b>" in report
    assert "<b>1 / 1 (2 / 0)</b> means predicted movement 1 and synkinesis 1, graded movement 2" in report
    assert "alt='flow colour wheel'" in report


def test_explain_false_leaves_the_maps_out_but_not_the_measurements(tiny_trained_run, tmp_path):
    out = tmp_path / "plain"
    summary = task.run(_predict_cfg(f"run={tiny_trained_run}", "explain=false"), out)
    assert summary["explained_frames"] == 0
    report = (out / "report.html").read_text()
    assert "not computed (explain=false)" in report and "class='blendshapes'" not in report
    assert '<img alt="flow branch: dynamics"' not in report and report.count("class='measurements'") > 0


def test_predict_py_on_an_unlabelled_dataset(tiny_trained_run, unlabelled_root, tmp_path):
    out = tmp_path / "unlabelled"
    result = _predict_py(f"paths.output_dir={tiny_trained_run.parents[1]}", f"data.root={unlabelled_root}",
                         f"hydra.run.dir={out}")  # run= left out: the newest finished run
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no labels" in result.stdout
    frames = _rows(out / "predictions.csv")
    assert len(frames) == len(list(unlabelled_root.glob("*/*"))) and all(f["dynamics_true"] == "" for f in frames)
    assert len(_rows(out / "patients.csv")) == 3
    assert not (out / "metrics.json").exists()
    report = (out / "report.html").read_text()
    assert "Resting symmetry is not predicted" in report and "Agreement with the true grades" not in report
    assert json.loads((out / "model.json").read_text())["run_dir"] == str(tiny_trained_run)


def test_a_run_without_stage_4_is_one_line_that_offers_stage(tiny_trained_run, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(tiny_trained_run, partial)
    stage_checkpoint(partial, "4").unlink()
    result = _predict_py(f"run={partial}", f"hydra.run.dir={tmp_path / 'out'}")
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: run={partial} has not finished stage 4 (finished: 1, 2a, 2b, 3); pass stage=3 to predict with its weights")


def test_a_dataset_of_other_expressions_is_refused(tiny_trained_run, unlabelled_root, tmp_path):
    root = tmp_path / "other"
    shutil.copytree(unlabelled_root / "smile", root / "frown")
    with pytest.raises(DataError, match=r"holds expression\(s\) frown that the run .* was not trained on"):
        task.run(_predict_cfg(f"run={tiny_trained_run}", f"data.root={root}"), tmp_path / "out")


def test_a_checkpoint_of_another_model_config_is_refused(tiny_trained_run, tmp_path):
    other = tmp_path / "other_run"
    shutil.copytree(tiny_trained_run, other)
    cfg = OmegaConf.load(other / "config.yaml")
    cfg.model.blendshapes.share_weights = True
    OmegaConf.save(cfg, other / "config.yaml")
    with pytest.raises(RunError, match=r"does not fit the model of .* unexpected \(e.g. blendshapes.baseline"):
        task.run(_predict_cfg(f"run={other}"), tmp_path / "out")


def test_videos_are_prepared_then_predicted(tiny_trained_run, tmp_path, landmarker_task):
    from tests.face_videos import CLOSE_LEFT_EYE, SMILE_RIGHT, FaceClip

    clips = tmp_path / "clips"
    FaceClip().write(clips / "p1" / "smile.mp4", SMILE_RIGHT)
    FaceClip().write(clips / "p2" / "eye_close.mp4", CLOSE_LEFT_EYE)
    grades = tmp_path / "grades.csv"
    grades.write_text("patient,expression,dynamics,synkinesis\np1,smile,3,1\n")  # p2 is not graded
    out = tmp_path / "predictions"
    cfg = _predict_cfg(f"run={tiny_trained_run}", f"videos={clips}", f"prepare.grades={grades}",
                       f"prepare.out={tmp_path / 'prepared'}", "prepare.workers=1", "prepare.progress=false")
    summary = task.run(cfg, out)
    frames = _rows(out / "predictions.csv")
    assert {(f["video"], f["expression"]) for f in frames} == {("p1", "smile"), ("p2", "eye_close")}
    assert {f["dynamics_true"] for f in frames if f["video"] == "p1"} == {"3"}
    assert {f["dynamics_true"] for f in frames if f["video"] == "p2"} == {""}
    assert summary["labelled"] and (out / "prepare_report.csv").is_file()
    patients = {p["video"]: p for p in _rows(out / "patients.csv")}
    assert patients["p1"]["open_mouth_smile_movement"] != "" and patients["p1"]["voluntary_movement_score"] == ""
    report = (out / "report.html").read_text()  # the registered crops prepare.py kept, beside the flow images
    assert report.count('<img alt="rest"') == report.count('<img alt="expression (registered)"') == 2
    assert "Affected side: <b>left</b>" in report  # p1's smile warp moves the right mouth corner only


def test_clips_that_cannot_be_graded_are_named_everywhere(tiny_trained_run, tmp_path, landmarker_task):
    """videos= on a folder where some clips are skipped: every clip asked for is in the console, predict.log,
    patients.csv and report.html, graded or with the reason it is not."""
    from tests.face_videos import SMILE_RIGHT, FaceClip, two_faces_video

    clips = tmp_path / "clips"
    FaceClip().write(clips / "p1" / "smile.mp4", SMILE_RIGHT)
    (clips / "p1" / "snarl.mp4").write_bytes(b"")
    (clips / "p2").mkdir()
    (clips / "p2" / "smile.mp4").write_text("patient refused filming\n")
    two_faces_video(clips / "p3" / "smile.avi")
    out = tmp_path / "predictions"
    result = _predict_py(f"run={tiny_trained_run}", f"videos={clips}", f"prepare.out={tmp_path / 'prepared'}",
                         "prepare.workers=1", "prepare.progress=false", f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stdout + result.stderr
    reasons = {("p1", "snarl"): "p1/snarl.mp4): empty file (0 bytes)",
               ("p2", "smile"): "p2/smile.mp4): not a video file (no known video container at its start)",
               ("p3", "smile"): "p3/smile.avi): exactly one face in only 0% of frames"}
    log = (out / "predict.log").read_text()
    for (patient, expression), reason in reasons.items():
        assert f"not graded: {patient} {expression} ({reason}" in result.stdout + result.stderr
        assert f"not graded: {patient} {expression} ({reason}" in log
    patients = {p["video"]: p for p in _rows(out / "patients.csv")}
    assert set(patients) == {"p1", "p2", "p3"}
    assert patients["p1"]["open_mouth_smile_movement"] != "" and "snarl (p1/snarl.mp4): empty file" in patients["p1"]["not_graded"]
    assert patients["p2"]["open_mouth_smile_movement"] == "" and "not a video file" in patients["p2"]["not_graded"]
    report = (out / "report.html").read_text()
    assert "Not graded, to check" in report
    for reason in reasons.values():
        assert reason.partition("): ")[2] in report
    assert "3 clip(s) not graded" in result.stdout
