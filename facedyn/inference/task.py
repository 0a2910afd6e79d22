"""The prediction task: a trained run applied to a dataset (or clinic videos), into a prediction folder.

  predictions.csv, predictions_video.csv, patients.csv   the grades (see facedyn.inference.tables)
  metrics.json                                          with labels: training's validation metrics
                                                        (facedyn.metrics.evaluate) and the agreement table
  bland_altman_<score>.png                              with labels
  measurements.csv                                      facial measurements per sample, side and measurement
                                                        (facedyn.measurements)
  report.html                                           for a clinician (facedyn.inference.report), with the
                                                        explanations of the frames it shows (facedyn.explain)
  bad_samples.csv, model.json, predict_config.yaml      what went in
An ensemble (a cross-validation folder, or several exported fold graphs) adds its fold models' spread,
calibrated intervals and flags to the tables and the report (facedyn.inference.uncertainty).
`predict.py` is its thin Hydra entry point; tests call `run()` directly.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from omegaconf import OmegaConf

from facedyn.runs import plots
from facedyn.utils.config import ConfigError
from facedyn.data.samples import Samples
from facedyn.inference import tables
from facedyn.inference.config import BACKENDS, PRECISIONS, SunnybrookConfig
from facedyn.inference.ensemble import EnsemblePredictor
from facedyn.inference.data import prediction_data
from facedyn.inference.predictor import Predictor
from facedyn.inference.uncertainty import ensemble_uncertainty, frame_columns, patient_columns, \
    patient_uncertainty, uncertainty_settings, video_columns
from facedyn.inference.run_loader import find_newest_finished_run, load_run
from facedyn.measurements import measure
from facedyn.measurements.table import measurements_csv
from facedyn.training.stages import FINAL_STAGE
from facedyn.utils.io import atomic_write_json, atomic_write_text
from facedyn.metrics import SCALE, SCORES, bland_altman, evaluate, scalar_items
from facedyn.runs import owned

log = logging.getLogger(__name__)


def run(cfg: Any, out_dir: str | os.PathLike) -> dict:
    """Predict per cfg (a PredictConfig node) into out_dir; returns a summary (and metrics with labels)."""
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    with owned(out_dir):  # a second predict.py writing into it is refused (facedyn.runs.RunFolderInUse)
        return _run(cfg, out_dir)


def _run(cfg: Any, out_dir: Path) -> dict:
    started = time.perf_counter()
    if cfg.model not in BACKENDS:
        raise ConfigError(f"model={cfg.model!r} is not one of: {', '.join(BACKENDS)}")
    if cfg.precision not in PRECISIONS:
        raise ConfigError(f"precision={cfg.precision!r} is not one of: {', '.join(PRECISIONS)}")
    intervals, rule = uncertainty_settings(cfg)
    predictor = _predictor(cfg, intervals.level)
    info = predictor.info
    ensemble = predictor if isinstance(predictor, EnsemblePredictor) else None
    data = prediction_data(cfg, predictor, out_dir)
    s = data.samples
    log.info("predicting %d samples of %d videos (%s)", len(s), len(set(s.video)), data.source)
    predicting = time.perf_counter()
    inputs = (s.flow, s.expression_landmarks, s.baseline_landmarks, s.expression)
    member_grades = ensemble.predict_members(*inputs) if ensemble else None
    grades = member_grades.mean(axis=0) if ensemble else predictor.predict(*inputs)
    prediction_seconds = time.perf_counter() - predicting

    video_table = tables.video_grades(s, grades)
    mapping = OmegaConf.to_container(cfg.sunnybrook) if OmegaConf.is_config(cfg.sunnybrook) else dict(cfg.sunnybrook)
    patients = tables.patient_rows(video_table, mapping, data.not_graded)
    for clip in data.not_graded:
        log.warning("not graded: %s %s", clip.video, clip.text())
    disagreeing = np.flatnonzero(video_table.disagreeing)
    for g in disagreeing:
        frames = np.flatnonzero(video_table.group_of_row == g)
        log.warning("check %s %s: its frames disagree (dynamics per frame %s)", *video_table.keys[g],
                    ", ".join(f"{grades[i, 0]:.2f}" for i in frames))
    labelled = bool(s.dynamics_valid.any() or s.synkinesis_valid.any())
    uncertainty = ensemble_uncertainty(ensemble, member_grades, video_table, intervals, rule) if ensemble else None
    per_patient = patient_uncertainty(uncertainty, video_table, mapping) if uncertainty else None
    extra = [None, None, None]  # an ensemble's columns in predictions.csv, predictions_video.csv, patients.csv
    if uncertainty is not None:
        extra = [frame_columns(uncertainty), video_columns(uncertainty),
                 patient_columns(per_patient, [p.video for p in patients], intervals.level is not None)]
    atomic_write_text(out_dir / "predictions.csv", tables.frames_csv(s, grades, extra[0]))
    atomic_write_text(out_dir / "predictions_video.csv", tables.videos_csv(video_table, extra[1]))
    atomic_write_text(out_dir / "patients.csv", tables.patients_csv(patients, labelled, extra[2]))
    atomic_write_json(out_dir / "model.json", {**info.as_dict(), **({"ensemble": ensemble.describe()} if ensemble else {})})
    atomic_write_text(out_dir / "predict_config.yaml", OmegaConf.to_yaml(cfg) if OmegaConf.is_config(cfg) else str(cfg))

    metrics: dict = {}
    agreement: dict = {}
    if labelled:
        true = np.stack([s.dynamics, s.synkinesis], axis=1)
        valid = np.stack([s.dynamics_valid, s.synkinesis_valid], axis=1)
        metrics = evaluate(grades / SCALE, true, valid, s.video, s.expression)  # training's validation metrics
        agreement = _agreement(metrics, video_table, out_dir)
        atomic_write_json(out_dir / "metrics.json", {"samples": int(len(s)), "labelled_samples": int(valid.any(1).sum()),
                                                     "metrics": metrics, "agreement": agreement})
    measured = measure(s.baseline_landmarks, s.expression_landmarks, _sunnybrook_names(s.expression, mapping))
    atomic_write_text(out_dir / "measurements.csv", measurements_csv(measured, s.video, s.expression, s.frame, s.folder))
    explained: dict = {}
    explain_seconds = 0.0
    if cfg.report:
        from facedyn.inference.report import ReportContent, write_report

        shown = tables.frames_shown(s, video_table)
        in_report = {p.video for p in patients[:int(cfg.report_max_patients)]}
        rows = [int(shown[g]) for g, (video, _) in enumerate(video_table.keys) if video in in_report]
        explained, note, explain_seconds = _explanations(cfg, predictor, s, rows)
        write_report(out_dir / "report.html", ReportContent(
            s, video_table, patients, agreement, metrics, info, data.source, data.bad, mapping,
            int(cfg.report_max_patients), data.root, shown, dict(enumerate(measured)), explained, note,
            data.not_graded, uncertainty, per_patient))
    summary = {"out_dir": str(out_dir), "samples": int(len(s)), "videos": len(patients), "bad_samples": data.bad,
               "not_graded": len(data.not_graded), "frames_disagree": len(disagreeing),
               "labelled": labelled, "seconds": time.perf_counter() - started,
               "prediction_seconds": prediction_seconds, "explained_frames": len(explained),
               "explanation_seconds": explain_seconds, "agreement": agreement,
               **scalar_items(metrics)}
    if uncertainty is not None:
        summary["ensemble"] = uncertainty.summary(per_patient)
    log.info("predictions of %d samples, %d patients in %s", len(s), len(patients), out_dir)
    return summary


def _sunnybrook_names(expressions: np.ndarray, mapping: dict) -> list[str]:
    """Each sample's expression under the name facedyn gives it by default (sunnybrook.<item> maps folders to
    items), so that measurements know which movement it is graded by."""
    default = SunnybrookConfig()
    canonical = {folder: getattr(default, item) for item, folder in mapping.items() if folder and hasattr(default, item)}
    return [canonical.get(str(e), str(e)) for e in expressions]


def _explanations(cfg: Any, predictor: Predictor, samples: Samples, rows: list[int]) -> tuple[dict, str, float]:
    """(explanations by sample row, why there are none, seconds) of the frames the report shows."""
    if not cfg.explain:
        return {}, "The maps and blendshape attributions were not computed (explain=false).", 0.0
    if isinstance(predictor, EnsemblePredictor):
        return {}, ("The maps and blendshape attributions explain one model, and these grades are the mean of "
                    f"{len(predictor.members)} fold models: predict with one fold's run folder for them."), 0.0
    model = getattr(predictor, "model", None)
    if model is None:
        return {}, f"The maps and blendshape attributions need the torch model; this report used model={cfg.model}.", 0.0
    from facedyn.explain import explain_frames

    explained, seconds = explain_frames(model, predictor.info.predict, samples, rows)
    log.info("explanations of %d frames in %.1f s", len(rows), seconds)
    return explained, "", seconds


def _agreement(metrics: dict, table: tables.VideoGrades, out_dir: Path) -> dict:
    """Per score, over videos × expressions: what clinical agreement studies report, and a Bland–Altman plot."""
    agreement = {}
    for column, score in enumerate(SCORES):
        valid = table.valid[:, column]
        if not valid.any():
            continue
        pred, true = table.mean[valid, column], table.true[valid, column]
        limits = bland_altman(pred, true)
        agreement[score] = {
            "n": int(valid.sum()),
            **{name: metrics.get(f"video_{key}_{score}") for name, key in (
                ("icc", "icc"), ("icc_low", "icc_low"), ("icc_high", "icc_high"), ("qwk", "qwk"), ("mae", "mae"),
                ("exact", "acc"), ("within_one", "within1"))},
            **limits,
        }
        plots.bland_altman(pred, true, limits, score, out_dir / f"bland_altman_{score}.png")
    return agreement


def _predictor(cfg: Any, level: Optional[float]) -> Predictor:
    stage = str(cfg.stage) if cfg.stage is not None else None
    if cfg.model == "onnx":
        if not cfg.onnx:
            raise ConfigError("model=onnx needs the exported file: onnx=/path/to/facedyn.onnx (or a list of fold graphs)")
        try:
            from facedyn.export import load_onnx, load_onnx_ensemble
        except ImportError:
            raise ConfigError("model=onnx: this version has no ONNX predictor (facedyn.export)") from None
        graphs = [str(g) for g in cfg.onnx] if isinstance(cfg.onnx, Sequence) and not isinstance(cfg.onnx, str) \
            else [str(cfg.onnx)]
        if len(graphs) == 1:
            return load_onnx(graphs[0], batch_size=int(cfg.batch_size))
        return load_onnx_ensemble(graphs, batch_size=int(cfg.batch_size), calibrate=level is not None)
    run_path = cfg.run or find_newest_finished_run(Path(cfg.paths.output_dir), stage or FINAL_STAGE)
    return load_run(run_path, stage=stage, device=cfg.device, batch_size=int(cfg.batch_size),
                    precision=str(cfg.precision), folds=str(cfg.folds), calibrate=level is not None)



def summary_text(summary: dict) -> str:
    """What a person reads at the end of predict.py: where the results are and, with labels, how they agree."""
    lines = [f"Predictions: {summary['out_dir']}",
             f"  {summary['samples']} samples of {summary['videos']} patients, {summary['bad_samples']} bad sample(s) "
             f"left out; report.html, patients.csv, predictions_video.csv, predictions.csv, measurements.csv"]
    agreement = summary.get("agreement") or {}
    for score, a in agreement.items():
        lines.append(f"  {score:<11} ICC(2,1) {a['icc']:.3f} [{a['icc_low']:.3f}, {a['icc_high']:.3f}]  QWK {a['qwk']:.3f}  "
                     f"MAE {a['mae']:.3f}  exact {a['exact']:.2f}  within one {a['within_one']:.2f}  (n = {a['n']})")
    if not summary["labelled"]:
        lines.append("  no labels: agreement not computed")
    if summary.get("not_graded") or summary.get("frames_disagree"):
        lines.append(f"  {summary['not_graded']} clip(s) not graded, {summary['frames_disagree']} with frames that "
                     f"disagree: listed above and in report.html (Not graded, to check)")
    ensemble = summary.get("ensemble")
    if ensemble:
        interval = f"{100 * ensemble['interval']:g} % intervals; " if ensemble["interval"] is not None else ""
        lines.append(f"  ensemble of {len(ensemble['folds'])} fold models (folds {', '.join(map(str, ensemble['folds']))}); "
                     f"{interval}{ensemble['flagged_groups']} of {ensemble['groups']} videos × expressions flagged "
                     f"({ensemble['flagged_patients']} patients) to check by hand")
    return "\n".join(lines)
