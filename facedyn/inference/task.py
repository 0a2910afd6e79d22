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

import hashlib
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from omegaconf import DictConfig, OmegaConf

from facedyn.runs import plots
from facedyn.assets import cache_dir
from facedyn.utils.config import ConfigError
from facedyn.data import DataError
from facedyn.data.config import DataConfig
from facedyn.data.loading import SPLIT_FILE, read_checked
from facedyn.data.samples import Samples
from facedyn.inference import tables
from facedyn.inference.config import BACKENDS, PRECISIONS, SunnybrookConfig
from facedyn.inference.ensemble import EnsemblePredictor
from facedyn.inference.predictor import ModelInfo, Predictor
from facedyn.inference.uncertainty import ensemble_uncertainty, frame_columns, patient_columns, \
    patient_uncertainty, uncertainty_settings, video_columns
from facedyn.inference.run_loader import find_newest_finished_run, load_run
from facedyn.measurements import measure
from facedyn.measurements.table import measurements_csv
from facedyn.training.stages import FINAL_STAGE
from facedyn.utils.io import atomic_write_json, atomic_write_text
from facedyn.metrics import SCALE, SCORES, bland_altman, evaluate, scalar_items
from facedyn.runs import owned, read_json

log = logging.getLogger(__name__)


@dataclass
class PredictionData:
    samples: Samples
    root: Path
    bad: int
    source: str  # what was predicted, in words
    not_graded: list[tables.NotGraded]  # with videos=: the clips prepare.py skipped, and why


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



def _changed_settings(given: Any) -> dict:
    """The data.* settings that differ from the schema's defaults: what the user asked for."""
    defaults = OmegaConf.to_container(OmegaConf.structured(DataConfig))
    given = OmegaConf.to_container(given) if OmegaConf.is_config(given) else dict(given)

    def diff(default: Any, value: Any) -> Any:
        if isinstance(default, dict) and isinstance(value, dict):
            out = {k: diff(default.get(k), v) for k, v in value.items() if v != default.get(k)}
            return {k: v for k, v in out.items() if v != {}}
        return value

    return diff(defaults, given)


def _data_settings(cfg: Any, info: ModelInfo, root: Optional[str]) -> tuple[DictConfig, bool]:
    """(data settings, whether they are the run's own dataset): the run's settings, then the user's."""
    base = OmegaConf.structured(DataConfig)
    if info.data_settings:
        base = OmegaConf.merge(base, info.data_settings)
    changed = _changed_settings(cfg.data)
    if root is not None:
        changed["root"] = root
    if "root" in changed:
        changed["kind"] = "folder"
        changed.setdefault("expressions", None)  # every expression folder of the new dataset
    elif base.kind == "synthetic" and set(changed.get("synthetic", {})) - {"root"}:
        changed["synthetic"].setdefault("root", None)  # other generator settings: not the run's dataset folder
    try:
        merged = OmegaConf.merge(base, changed)
    except Exception as exc:
        raise DataError(f"invalid data settings: {str(exc).splitlines()[0]}") from None
    synthetic = [OmegaConf.to_container(c.synthetic) for c in (base, merged)]
    return merged, "root" not in changed and (base.kind != "synthetic" or synthetic[0] == synthetic[1])


def _prepared_videos(cfg: Any, out_dir: Path) -> tuple[str, list[tables.NotGraded]]:
    """videos=<folder>: prepare the clips (facedyn.videos) into a cache folder; returns the dataset root and
    the clips that were skipped, with prepare.py's reasons."""
    from facedyn.videos import PrepareConfig, prepare

    videos = Path(cfg.videos).expanduser().resolve()
    if not videos.is_dir():
        raise DataError(f"videos={cfg.videos}: no such folder")
    key = hashlib.sha256(str(videos).encode()).hexdigest()[:12]
    target = cache_dir() / "prepared" / f"{videos.name}-{key}"
    settings = OmegaConf.merge(OmegaConf.structured(PrepareConfig), cfg.prepare)
    settings.videos = str(videos)
    if OmegaConf.is_missing(settings, "out"):
        settings.out = str(target)
    log.info("preparing the clips under %s into %s", videos, settings.out)
    summary = prepare(settings)
    if Path(summary.report).is_file():
        shutil.copyfile(summary.report, out_dir / "prepare_report.csv")
    if not summary.samples:
        raise DataError(f"videos={cfg.videos}: no usable clip (see {out_dir / 'prepare_report.csv'})")
    return str(summary.out), [tables.NotGraded(o.patient, o.expression, o.relative, o.reason) for o in summary.skipped]


def prediction_data(cfg: Any, predictor: Predictor, out_dir: Path) -> PredictionData:
    """The samples `cfg` names (data.*, videos=), read with the predictor's data settings; DataError (one line)
    when they cannot be predicted."""
    info = predictor.info
    root, not_graded = _prepared_videos(cfg, out_dir) if cfg.videos else (None, [])
    settings, own = _data_settings(cfg, info, root)
    if own and isinstance(predictor, EnsemblePredictor):
        raise DataError(f"run={info.checkpoint}: each video of the cross-validation's dataset trained some of its "
                        "fold models; predict other data: data.root=<dataset>, videos=<clips>, or another synthetic "
                        "set (e.g. data.synthetic.seed=1)")
    if own and info.run_dir is None:
        raise DataError("data.root is not set; point it at the dataset folder: data.root=/path/to/dataset")
    # Labels are optional for prediction; the run's own (labelled) dataset keeps training's setting, so its
    # decoded cache is reused.
    read_cfg, data_root, result = read_checked(settings, out_dir, log, require_labels=own)
    samples = result.samples
    source = f"dataset {data_root}"
    if own:  # the run's own data: only the videos it validated on, never the ones it trained on
        split = read_json(info.run_dir / SPLIT_FILE)
        if not isinstance(split, dict) or "val_videos" not in split:
            raise DataError(f"{info.run_dir / SPLIT_FILE} missing: pass data.root=<dataset> to predict")
        rows = np.flatnonzero(np.isin(samples.video, [str(v) for v in split["val_videos"]]))
        if not len(rows):
            raise DataError(f"none of the run's validation videos ({info.run_dir / SPLIT_FILE}) is in {data_root}; "
                            f"pass data.root=<dataset> to predict")
        samples = Samples.from_arrays({k: v[rows] for k, v in samples.arrays().items()})
        source = f"the run's validation videos of {data_root}"
    if read_cfg.image_size != info.image_size:
        raise DataError(f"data.image_size={read_cfg.image_size}, but the model takes {info.image_size}×{info.image_size} flow images")
    if info.expressions is not None:
        unknown = sorted(set(samples.expression.tolist()) - set(info.expressions))
        if unknown:
            raise DataError(
                f"{data_root} holds expression(s) {', '.join(unknown)} that the run ({info.run_dir}) was not trained "
                f"on (it knows {', '.join(info.expressions)}); pick known ones with data.expressions=[…]")
    return PredictionData(samples, data_root, len(result.bad), source, not_graded)


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
