"""A cross-validation's fold models as one predictor: predict.py run=<crossval folder> on data no fold saw, the
spread and CV+ intervals in the tables checked against the fold models themselves and the definition, the
flags, the report in a real browser, exported fold graphs under ONNX Runtime, the evaluation command, and the
one-line refusals. All on the session's one tiny cross-validation (tests/conftest.py: tiny_crossval)."""

from __future__ import annotations

import html
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from omegaconf import OmegaConf

from facedyn.utils.config import ConfigError
from facedyn.cli import evaluate as evaluate_cli
from facedyn.crossval import evaluate, residuals
from facedyn.crossval.layout import RESIDUALS_FILE
from facedyn.data import DataError
from facedyn.data.synthetic.config import PRESETS
from facedyn.inference import RunError, load_run, task
from facedyn.inference.config import FlagConfig
from facedyn.inference.data import prediction_data
from facedyn.inference.ensemble import EnsemblePredictor
from facedyn.inference.tables import SUNNYBROOK_ITEMS
from facedyn.metrics import MAX_GRADE, SCORES
from tests.conftest import CROSSVAL_FOLDS, REPO
from tests.test_predict import _predict_cfg, _rows
from tests.test_report_browser import _chromium, _pixels_near

VARIANT = "stage-1-2a-2b-3"  # the variant folder the stage selection names
FLAGGED_RGB = (0xFD, 0xE8, 0xE8)  # report_uncertainty.STYLE's .flagged rows
ONNX_TOLERANCE = 1e-4  # grades
SPREAD = 0.0001  # flag.spread of the predictions below


def _predict(tiny_crossval, out: Path, *overrides: str, run: Path | None = None) -> dict:
    """predict.py's task with the cross-validation folder (or `run`) on the fresh synthetic set."""
    return task.run(_predict_cfg(f"run={run or tiny_crossval.root}", *tiny_crossval.fresh_data, *overrides), out)


@pytest.fixture(scope="module")
def ensemble_predictions(tiny_crossval, tmp_path_factory):
    """predict.py with the cross-validation folder on a fresh synthetic set, with the report; a spread
    threshold any two different grades exceed, so that every video and expression is flagged."""
    out = tmp_path_factory.mktemp("ensemble") / "predictions"
    return out, _predict(tiny_crossval, out, f"flag.spread={SPREAD}")


@pytest.fixture(scope="module")
def fold_grades(tiny_crossval, ensemble_predictions):
    """(samples, (K, N, 2) grades): the samples predict.py read, graded by each fold's final model loaded as a
    single run."""
    out, _ = ensemble_predictions
    models = [load_run(tiny_crossval.root / VARIANT / f"fold_{k}", stage="3") for k in range(CROSSVAL_FOLDS)]
    samples = prediction_data(OmegaConf.load(out / "predict_config.yaml"), models[0], out.parent / "reread").samples
    inputs = (samples.flow, samples.expression_landmarks, samples.baseline_landmarks, samples.expression)
    return samples, np.stack([m.predict(*inputs) for m in models])


def _floats(rows: list[dict], key: str) -> np.ndarray:
    return np.array([float(r[key]) for r in rows])


def test_the_ensemble_is_the_mean_of_the_fold_models_with_their_spread(ensemble_predictions, fold_grades, tiny_crossval):
    out, summary = ensemble_predictions
    samples, members = fold_grades
    frames = _rows(out / "predictions.csv")
    assert [f["video"] for f in frames] == samples.video.tolist() and len(frames) == summary["samples"]
    assert np.abs(members[0] - members[1]).max() > 1e-3  # two different models
    for c, score in enumerate(SCORES):
        np.testing.assert_allclose(_floats(frames, f"{score}_pred"), members[:, :, c].mean(axis=0), atol=2e-6)
        np.testing.assert_allclose(_floats(frames, f"{score}_fold_sd"), members[:, :, c].std(axis=0, ddof=1), atol=2e-6)
        np.testing.assert_allclose(_floats(frames, f"{score}_fold_min"), members[:, :, c].min(axis=0), atol=2e-6)
        np.testing.assert_allclose(_floats(frames, f"{score}_fold_max"), members[:, :, c].max(axis=0), atol=2e-6)
    model = json.loads((out / "model.json").read_text())
    assert model["ensemble"]["folds"] == list(range(CROSSVAL_FOLDS)) and model["ensemble"]["left_out"] == {}
    assert model["stage"] == "3" and model["checkpoint"] == str(tiny_crossval.root / VARIANT)
    assert summary["ensemble"]["interval"] == 0.9 and summary["ensemble"]["folds"] == list(range(CROSSVAL_FOLDS))


def _cv_plus_by_hand(member_video: np.ndarray, folds: np.ndarray, res: np.ndarray, level: float) -> tuple[float, float]:
    """The CV+ ends of one test point read off the definition: the ⌊α(n+1)⌋-th smallest of μ_k(i) − R_i and
    the ⌈(1−α)(n+1)⌉-th smallest of μ_k(i) + R_i, over the calibration residuals i of folds k(i)."""
    n = len(res)
    lows = sorted(member_video[folds[i]] - res[i] for i in range(n))
    highs = sorted(member_video[folds[i]] + res[i] for i in range(n))
    low_rank, high_rank = math.floor((1 - level) * (n + 1) + 1e-9), math.ceil(level * (n + 1) - 1e-9)
    return (lows[low_rank - 1] if low_rank >= 1 else -np.inf), (highs[high_rank - 1] if high_rank <= n else np.inf)


def test_video_intervals_are_cv_plus_on_the_out_of_fold_residuals(ensemble_predictions, fold_grades, tiny_crossval):
    out, _ = ensemble_predictions
    samples, members = fold_grades
    videos = _rows(out / "predictions_video.csv")
    calibration = [r for r in _rows(tiny_crossval.root / VARIANT / RESIDUALS_FILE) if r["stage"] == "3"]
    for c, score in enumerate(SCORES):
        labelled = [r for r in calibration if r[f"{score}_true"] != ""]
        folds = np.array([int(r["fold"]) for r in labelled])
        res = np.abs(_floats(labelled, f"{score}_residual"))
        assert len(labelled) >= 40 and set(folds) == set(range(CROSSVAL_FOLDS))
        for video in videos:
            rows = (samples.video == video["video"]) & (samples.expression == video["expression"])
            member_video = members[:, rows, c].mean(axis=1)  # each fold model's grade of this video and expression
            assert float(video[f"{score}_fold_min"]) == pytest.approx(member_video.min(), abs=2e-6)
            assert float(video[f"{score}_fold_max"]) == pytest.approx(member_video.max(), abs=2e-6)
            low, high = np.clip(_cv_plus_by_hand(member_video, folds, res, 0.9), 0, MAX_GRADE[score])
            assert float(video[f"{score}_low"]) == pytest.approx(low, abs=2e-6)
            assert float(video[f"{score}_high"]) == pytest.approx(high, abs=2e-6)
            grades = [int(g) for g in video[f"{score}_interval_grades"].split()]
            assert grades == [g for g in range(MAX_GRADE[score] + 1) if low - 1e-9 <= g <= high + 1e-9]


def test_residuals_are_each_folds_own_validation_predictions(tiny_crossval):
    rows = [r for r in _rows(tiny_crossval.root / VARIANT / RESIDUALS_FILE) if r["stage"] == "3"]
    for fold in range(CROSSVAL_FOLDS):
        run = tiny_crossval.root / VARIANT / f"fold_{fold}"
        own = _rows(run / "predictions_stage_3_video.csv")
        mine = [r for r in rows if r["fold"] == str(fold)]
        assert [(r["video"], r["expression"], r["dynamics_pred"]) for r in mine] == \
            [(r["video"], r["expression"], r["dynamics_pred"]) for r in own]
        val_videos = set(json.loads((run / "split.json").read_text())["val_videos"])
        assert {r["video"] for r in mine} == val_videos  # out of fold: the videos the model never trained on
        for r in mine:
            assert float(r["dynamics_residual"]) == pytest.approx(int(r["dynamics_true"]) - float(r["dynamics_pred"]), abs=1e-6)
    assert {r["stage"] for r in _rows(tiny_crossval.root / VARIANT / RESIDUALS_FILE)} == {"1", "2a", "2b", "3"}


def _expected_reasons(video: dict, spread: float, grades: int) -> list[str]:
    reasons = []
    for score in SCORES:
        low, high = float(video[f"{score}_fold_min"]), float(video[f"{score}_fold_max"])
        if high - low > spread:
            reasons.append(f"{score}: the two models disagree: {low:.1f}–{high:.1f}")
        held = [int(g) for g in video[f"{score}_interval_grades"].split()]
        if len(held) > grades:
            reasons.append(f"{score}: the 90 % interval {float(video[f'{score}_low']):.1f}–"
                           f"{float(video[f'{score}_high']):.1f} holds grades {held[0]}–{held[-1]}")
    return reasons


def test_flags_and_their_reasons_in_the_video_table(ensemble_predictions):
    out, summary = ensemble_predictions
    videos = _rows(out / "predictions_video.csv")
    for video in videos:
        expected = _expected_reasons(video, SPREAD, FlagConfig.grades)
        assert video["flag_reason"] == "; ".join(expected)
        assert video["flag"] == str(int(bool(expected)))
    assert summary["ensemble"]["flagged_groups"] == sum(v["flag"] == "1" for v in videos) == len(videos)
    assert all("the two models disagree" in v["flag_reason"] for v in videos)


def test_patients_get_item_grade_sets_subtotal_intervals_and_flags(ensemble_predictions):
    out, summary = ensemble_predictions
    videos = {(v["video"], v["expression"]): v for v in _rows(out / "predictions_video.csv")}
    mapping = dict(_predict_cfg().sunnybrook)
    patients = _rows(out / "patients.csv")
    assert len(patients) == summary["videos"] == 4
    for patient in patients:
        items = [videos[(patient["video"], mapping[item])] for item in SUNNYBROOK_ITEMS]
        movement = [max(g, 1) for g in map(int, items[0]["dynamics_interval_grades"].split())]
        assert patient["brow_lift_movement_interval_grades"] == " ".join(map(str, sorted(set(movement))))
        assert patient["lip_pucker_synkinesis_interval_grades"] == items[4]["synkinesis_interval_grades"]
        low = sum(max(float(v["dynamics_low"]), 1) for v in items)
        high = sum(max(float(v["dynamics_high"]), 1) for v in items)
        assert int(patient["voluntary_movement_score_low"]) == 4 * math.floor(low + 1e-9)
        assert int(patient["voluntary_movement_score_high"]) == 4 * math.ceil(high - 1e-9)
        assert 20 <= int(patient["voluntary_movement_score_low"]) <= int(patient["voluntary_movement_score_high"]) <= 100
        assert int(patient["synkinesis_score_low"]) == math.floor(sum(float(v["synkinesis_low"]) for v in items) + 1e-9)
        assert int(patient["synkinesis_score_high"]) == math.ceil(sum(float(v["synkinesis_high"]) for v in items) - 1e-9)
        expected = [f"{v['expression']}, {r}" for v in videos.values() if v["video"] == patient["video"]
                    for r in v["flag_reason"].split("; ") if r]
        assert patient["flag_reason"] == "; ".join(expected) and patient["flag"] == "1"


def test_the_report_states_the_calibration_and_marks_the_flagged_grades_in_a_browser(ensemble_predictions, tmp_path):
    out, summary = ensemble_predictions
    report = out / "report.html"
    text = html.unescape(report.read_text())
    assert "90 % prediction intervals</b> per video and expression, conformal (CV+)" in text
    assert f"{RESIDUALS_FILE}: the stage 3 fold models' grades of their own validation videos of" in text
    assert "the mean of the two fold models (folds 0, 1)" in text
    assert "explain one model, and these grades are the mean of 2 fold models" in text
    for patient in _rows(out / "patients.csv"):  # each patient's heading gives its subtotals' intervals
        assert (f"(90 % intervals: voluntary movement {patient['voluntary_movement_score_low']}–"
                f"{patient['voluntary_movement_score_high']}, synkinesis {patient['synkinesis_score_low']}–"
                f"{patient['synkinesis_score_high']})") in text
    dom = _chromium("--dump-dom", report.as_uri(), profile=tmp_path / "profile-dom").stdout
    flags = dom[dom.index('id="flags"'):]
    flags = flags[:flags.index("</table>")]
    assert flags.count("<tr") == summary["videos"] + 1 and flags.count('class="flagged"') == summary["videos"]
    assert f"{summary['videos']} of {summary['videos']} patients flagged" in dom
    assert dom.count('class="uncertainty" id="u-') == summary["videos"]  # one table under each patient's cards
    assert "the two models disagree" in dom
    shot = tmp_path / "report.png"
    _chromium(f"--screenshot={shot}", "--window-size=1280,2400", report.as_uri(), profile=tmp_path / "profile")
    rgb = cv2.cvtColor(cv2.imread(str(shot)), cv2.COLOR_BGR2RGB)
    assert _pixels_near(rgb, FLAGGED_RGB, 4) > 5000, "the flagged rows are not drawn"


def test_the_python_api_gives_the_same_intervals(tiny_crossval, ensemble_predictions, fold_grades):
    out, _ = ensemble_predictions
    samples, _ = fold_grades
    predictor = load_run(tiny_crossval.root)
    assert isinstance(predictor, EnsemblePredictor) and predictor.folds == list(range(CROSSVAL_FOLDS))
    result = predictor.predict_videos(samples.flow, samples.expression_landmarks, samples.baseline_landmarks,
                                      samples.expression, samples.video, level=0.9)
    videos = _rows(out / "predictions_video.csv")
    assert result.keys == [(v["video"], v["expression"]) for v in videos]
    for c, score in enumerate(SCORES):
        np.testing.assert_allclose(result.mean[:, c], _floats(videos, f"{score}_mean"), atol=2e-6)
        np.testing.assert_allclose(result.low[:, c], _floats(videos, f"{score}_low"), atol=2e-6)
        np.testing.assert_allclose(result.high[:, c], _floats(videos, f"{score}_high"), atol=2e-6)
    with pytest.raises(ValueError, match="interval=1.2: the interval level must lie strictly between 0 and 1"):
        predictor.intervals(result.members, 1.2)
    # interval_method=centred: the residuals' ⌈0.9(n+1)⌉-th smallest on both sides of the ensemble's grade
    low, high = predictor.intervals(result.members, 0.9, "centred")
    for c, score in enumerate(SCORES):
        res = np.sort(predictor.calibration.residual[c])
        radius = res[math.ceil(0.9 * (len(res) + 1) - 1e-9) - 1]
        np.testing.assert_allclose(low[:, c], np.clip(result.mean[:, c] - radius, 0, MAX_GRADE[score]))
        np.testing.assert_allclose(high[:, c], np.clip(result.mean[:, c] + radius, 0, MAX_GRADE[score]))


@pytest.fixture(scope="module")
def fold_graphs(tiny_crossval, tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("graphs")
    result = subprocess.run([sys.executable, "-m", "facedyn.export", f"run={tiny_crossval.root}", f"out={out}",
                             "batch_sizes=[7]"],  # the batch axis is test_export.py's; here the folds and their residuals
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("checked with ONNX Runtime") == CROSSVAL_FOLDS
    return [out / f"fold_{k}.onnx" for k in range(CROSSVAL_FOLDS)]


def test_exported_fold_graphs_make_the_same_ensemble_under_onnx_runtime(fold_graphs, ensemble_predictions,
                                                                       tiny_crossval, tmp_path):
    out, _ = ensemble_predictions
    onnx_out = tmp_path / "onnx"
    graphs = ",".join(str(g) for g in reversed(fold_graphs))  # any order: members are ordered by fold
    task.run(_predict_cfg("model=onnx", f"onnx=[{graphs}]", *tiny_crossval.fresh_data, "report=false"), onnx_out)
    for name, keys in (("predictions.csv", [f"{s}_{k}" for s in SCORES for k in ("pred", "fold_sd", "fold_min", "fold_max")]),
                       ("predictions_video.csv", [f"{s}_{k}" for s in SCORES for k in ("mean", "fold_sd", "low", "high")])):
        torch_rows, onnx_rows = _rows(out / name), _rows(onnx_out / name)
        assert len(torch_rows) == len(onnx_rows) > 0
        for key in keys:
            assert np.abs(_floats(torch_rows, key) - _floats(onnx_rows, key)).max() <= ONNX_TOLERANCE, (name, key)
    assert [v["flag"] for v in _rows(out / "predictions_video.csv")] == [v["flag"] for v in _rows(onnx_out / "predictions_video.csv")]
    model = json.loads((onnx_out / "model.json").read_text())
    assert model["backend"] == "onnx" and model["ensemble"]["folds"] == [0, 1]
    assert model["ensemble"]["calibration"]["residuals"] == json.loads((out / "model.json").read_text())[
        "ensemble"]["calibration"]["residuals"]


def test_fold_graphs_that_do_not_make_an_ensemble_are_one_line_errors(fold_graphs, tmp_path):
    import onnx

    from facedyn.export import load_onnx_ensemble
    from facedyn.export.calibration import CALIBRATION_KEY

    with pytest.raises(RunError, match=r"fold_0.onnx and .*fold_0.onnx are both fold 0; give each fold once"):
        load_onnx_ensemble([fold_graphs[0], fold_graphs[0]])
    graph = onnx.load(str(fold_graphs[1]))
    kept = [(p.key, p.value) for p in graph.metadata_props if p.key != CALIBRATION_KEY]
    del graph.metadata_props[:]
    for key, value in kept:
        graph.metadata_props.add(key=key, value=value)
    bare = tmp_path / "bare.onnx"
    onnx.save(graph, str(bare))
    with pytest.raises(RunError, match=r"onnx=.*bare.onnx: exported without calibration residuals .* interval=null$"):
        load_onnx_ensemble([fold_graphs[0], bare])
    assert load_onnx_ensemble([fold_graphs[0], bare], calibrate=False).calibration is None


def test_the_holdout_evaluation_measures_the_ensemble_against_each_fold(tiny_crossval, ensemble_predictions, tmp_path):
    out = tmp_path / "holdout"
    assert evaluate_cli.main([str(tiny_crossval.root), *tiny_crossval.fresh_data, f"out={out}"]) == 0
    result = json.loads((out / "holdout.json").read_text())
    assert result["folds"] == [0, 1] and set(result["intervals"]) == {"cv_plus", "centred"}
    assert all(set(by_level) == {"0.8", "0.9"} for by_level in result["intervals"].values())
    # The same data through predict.py (at 90 %): the ensemble's MAE and the coverage from its tables.
    videos = _rows(ensemble_predictions[0] / "predictions_video.csv")
    for score in SCORES:
        s = result["scores"][score]
        maes = [f["mae"] for f in s["folds"].values()]
        assert s["best_fold"]["mae"] == min(maes) and s["median_fold"]["mae"] == pytest.approx(np.median(maes))
        labelled = [v for v in videos if v[f"{score}_true"] != ""]
        true = _floats(labelled, f"{score}_true")
        assert s["n"] == len(labelled) == 20
        assert s["ensemble"]["mae"] == pytest.approx(np.mean(np.abs(_floats(labelled, f"{score}_mean") - true)), abs=1e-5)
        low, high = _floats(labelled, f"{score}_low"), _floats(labelled, f"{score}_high")
        entry = result["intervals"]["cv_plus"]["0.9"][score]
        assert entry["coverage"] == pytest.approx(np.mean((low <= true + 1e-9) & (true <= high + 1e-9)))
        assert entry["mean_width"] == pytest.approx(np.mean(high - low), abs=1e-5)
        assert result["intervals"]["cv_plus"]["0.8"][score]["mean_width"] <= entry["mean_width"] + 1e-9
        assert sum(entry["grades_held"].values()) == pytest.approx(1.0)
    table = (out / "holdout.md").read_text()
    assert "| score | n | ensemble MAE | best fold MAE | median fold MAE |" in table and "| CV+ | 90 % | dynamics | 20 |" in table
    assert "| centred | 80 % | synkinesis | 20 |" in table


def test_the_evaluation_applies_a_synthetic_preset_under_the_users_own_settings():
    folder, own, settings = evaluate.own_settings(["cv", "preset=hard", "data.synthetic.seed=2", "levels=[0.5]"])
    assert folder == "cv" and own == {"preset": "hard", "levels": "[0.5]"} and settings[-1] == "data.synthetic.seed=2"
    assert {f"data.synthetic.{k}={json.dumps(v)}" for k, v in PRESETS["hard"].items()} <= set(settings)
    folder, own, settings = evaluate.own_settings(["cv", "preset=hard", "data.synthetic.videos=4"])
    assert "data.synthetic.videos=80" not in settings and "data.synthetic.videos=4" in settings
    for argv, message in ((["cv", "preset=huge"], "preset=huge: one of"), (["a", "b"], "one cross-validation folder only"),
                          (["levels=[0.8]"], "name the cross-validation folder")):
        with pytest.raises(evaluate.EvaluationError, match=message):
            evaluate.own_settings(argv)


def _partial_copy(root: Path, target: Path, folds: dict[int, str], residuals_file: bool = True) -> Path:
    """A copy of the cross-validation's small files, its fold folders linked ('link'), or standing for a
    fold that stopped ('<status> <stage>'), or absent ('absent')."""
    target.mkdir(parents=True)
    shutil.copyfile(root / "plan.json", target / "plan.json")
    (target / VARIANT).mkdir()
    if residuals_file:
        shutil.copyfile(root / VARIANT / RESIDUALS_FILE, target / VARIANT / RESIDUALS_FILE)
    for fold, kind in folds.items():
        source, copy = root / VARIANT / f"fold_{fold}", target / VARIANT / f"fold_{fold}"
        if kind == "link":
            copy.symlink_to(source, target_is_directory=True)
        elif kind != "absent":
            status, stage = kind.split()
            copy.mkdir()
            shutil.copyfile(source / "config.yaml", copy / "config.yaml")
            (copy / "run_status.json").write_text(json.dumps({"status": status, "stage": stage}))
    return target


def test_a_crossval_without_a_finished_fold_is_one_line(tiny_crossval, tmp_path):
    copy = _partial_copy(tiny_crossval.root, tmp_path / "cv", {0: "interrupted 2b", 1: "absent"})
    result = subprocess.run([sys.executable, str(REPO / "predict.py"), f"run={copy}", *tiny_crossval.fresh_data,
                             f"hydra.run.dir={tmp_path / 'out'}"], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, timeout=300)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: run={copy / VARIANT}: no finished fold to predict with (fold 0: interrupted in stage 2b; "
        f"fold 1: not started); rerun the cross-validation with out={copy} to finish it")


def test_unfinished_folds_are_left_out_and_named_or_refused_with_folds_all(tiny_crossval, tmp_path):
    copy = _partial_copy(tiny_crossval.root, tmp_path / "cv", {0: "link", 1: "running 2b"})
    with pytest.raises(RunError, match=r"folds=all, but not every fold has finished \(fold 1: running in stage 2b\)"):
        _predict(tiny_crossval, tmp_path / "all", "folds=all", run=copy)
    summary = _predict(tiny_crossval, tmp_path / "finished", run=copy)
    assert summary["ensemble"]["folds"] == [0]
    model = json.loads((tmp_path / "finished" / "model.json").read_text())
    assert model["ensemble"]["left_out"] == {"1": "running in stage 2b"}
    assert "Left out: fold 1 (running in stage 2b)." in (tmp_path / "finished" / "report.html").read_text()


def test_missing_residuals_say_how_to_compute_them_and_that_command_does(tiny_crossval, tmp_path):
    copy = _partial_copy(tiny_crossval.root, tmp_path / "cv", {0: "link", 1: "link"}, residuals_file=False)
    with pytest.raises(RunError) as caught:
        _predict(tiny_crossval, tmp_path / "out", run=copy)
    assert str(caught.value) == (
        f"{copy / VARIANT / RESIDUALS_FILE} missing (a cross-validation from before its residuals were kept); compute "
        f"them from the folds' saved predictions, without retraining: python -m facedyn.crossval.residuals {copy}")
    summary = _predict(tiny_crossval, tmp_path / "no-intervals", "interval=null", "report=false", run=copy)
    header = _rows(tmp_path / "no-intervals" / "predictions_video.csv")[0]
    assert "dynamics_fold_sd" in header and "dynamics_low" not in header and summary["ensemble"]["interval"] is None
    assert residuals.main([str(copy)]) == 0
    assert (copy / VARIANT / RESIDUALS_FILE).read_text() == (tiny_crossval.root / VARIANT / RESIDUALS_FILE).read_text()


def test_fold_models_of_different_settings_are_refused(tiny_crossval, tmp_path):
    copy = _partial_copy(tiny_crossval.root, tmp_path / "cv", {0: "link", 1: "absent"})
    fold_1 = copy / VARIANT / "fold_1"
    fold_1.mkdir()
    for entry in (tiny_crossval.root / VARIANT / "fold_1").iterdir():
        if entry.name != "config.yaml":
            (fold_1 / entry.name).symlink_to(entry)
    cfg = OmegaConf.load(tiny_crossval.root / VARIANT / "fold_1" / "config.yaml")
    cfg.data.flow.compensate_head_motion = True
    OmegaConf.save(cfg, fold_1 / "config.yaml")
    with pytest.raises(RunError, match=r"fold 1 was made with other settings than fold 0 "
                                       r"\(data.flow.compensate_head_motion: False vs True\); an ensemble needs models of one config"):
        _predict(tiny_crossval, tmp_path / "out", run=copy)


def test_bad_settings_and_folders_are_one_line_errors(tiny_crossval, tmp_path):
    for level in ("1.5", "0.0"):
        with pytest.raises(ConfigError, match=f"interval={level}: the interval level must lie strictly between 0 and 1"):
            _predict(tiny_crossval, tmp_path / "out", f"interval={level}")
    with pytest.raises(ConfigError, match="interval_method=jackknife: one of cv_plus, centred"):
        _predict(tiny_crossval, tmp_path / "out", "interval_method=jackknife")
    with pytest.raises(DataError, match="each video of the cross-validation's dataset trained some of its fold models"):
        task.run(_predict_cfg(f"run={tiny_crossval.root}"), tmp_path / "own")
    copy = _partial_copy(tiny_crossval.root, tmp_path / "cv", {0: "link", 1: "link"})
    plan = json.loads((copy / "plan.json").read_text())
    plan["variants"]["model-seed"] = ["model=seed"]
    (copy / "plan.json").write_text(json.dumps(plan))
    with pytest.raises(RunError, match=f"holds 2 variants \\({VARIANT}, model-seed\\); name one: {copy / VARIANT}"):
        _predict(tiny_crossval, tmp_path / "out2", run=copy)
