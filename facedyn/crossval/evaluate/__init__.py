"""A cross-validation's ensemble measured on data no fold model saw: agreement of the ensemble and of each
fold model, and the prediction intervals' coverage and width. The command and what it writes: facedyn.cli.evaluate.
"""

from __future__ import annotations

import itertools
import json
import tempfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from facedyn.metrics import SCORES, icc_2_1, video_groups

OWN_KEYS = ("out", "preset", "levels", "stage", "folds", "batch_size")
LEVELS = (0.8, 0.9)
GRADES_HELD = ("0", "1", "2", "3+")  # how many whole grades an interval holds: what flag.grades acts on
HOLDOUT_FILES = ("holdout.json", "holdout.md")


class EvaluationError(ValueError):
    """A setting of the evaluation that makes no sense; the message names it."""


def _agreement(pred: np.ndarray, true: np.ndarray) -> dict:
    return {"mae": float(np.mean(np.abs(pred - true))), "icc": float(icc_2_1(np.stack([true, pred], axis=1)))}


def _fold_summary(per_fold: dict[int, dict]) -> dict:
    maes, iccs = [f["mae"] for f in per_fold.values()], [f["icc"] for f in per_fold.values()]
    return {"best_fold": {"mae": min(maes), "icc": max(iccs)},
            "median_fold": {"mae": float(np.median(maes)), "icc": float(np.median(iccs))}}


def _coverage(low: np.ndarray, high: np.ndarray, true: np.ndarray) -> dict:
    inside = (low <= true + 1e-9) & (true <= high + 1e-9)
    return {"n": int(len(true)), "coverage": float(inside.mean()) if len(true) else None,
            "mean_width": float((high - low).mean()) if len(true) else None}


def evaluate(folder: str, settings: Sequence[str] = (), levels: Sequence[float] = LEVELS, stage: Optional[str] = None,
             folds: str = "finished", batch_size: int = 128) -> tuple[dict, Path]:
    """(the measurements, the dataset's root) of the ensemble of `folder` on the data `settings` describe."""
    from omegaconf import OmegaConf

    from facedyn.inference import load_run, tables
    from facedyn.inference.data import prediction_data
    from facedyn.inference.config import FlagConfig, compose_predict
    from facedyn.inference.conformal import METHODS, check_level, whole_grades
    from facedyn.inference.ensemble import EnsemblePredictor, member_video_means
    from facedyn.inference.uncertainty import FlagRule, IntervalSettings, ensemble_uncertainty, patient_uncertainty

    for level in levels:
        check_level(level)
    predictor = load_run(folder, stage=stage, folds=folds, batch_size=batch_size)
    if not isinstance(predictor, EnsemblePredictor):
        raise EvaluationError(f"{folder}: not a cross-validation folder (or one of its variant folders)")
    cfg = compose_predict([f"run={folder}", *settings])
    with tempfile.TemporaryDirectory(prefix="facedyn-holdout-") as scratch:
        data = prediction_data(cfg, predictor, Path(scratch))
    s = data.samples
    members = predictor.predict_members(s.flow, s.expression_landmarks, s.baseline_landmarks, s.expression)
    table = tables.video_grades(s, members.mean(axis=0))
    ids, _ = video_groups(s.video, s.expression)
    per_video = member_video_means(members, ids, len(table.keys))
    scores = {}
    for c, score in enumerate(SCORES):
        valid = table.valid[:, c]
        if not valid.any():
            continue
        true = table.true[valid, c]
        per_fold = {fold: _agreement(per_video[i, valid, c], true) for i, fold in enumerate(predictor.folds)}
        spread = per_video[:, valid, c].max(axis=0) - per_video[:, valid, c].min(axis=0)
        scores[score] = {"n": int(valid.sum()), "ensemble": _agreement(table.mean[valid, c], true),
                         "folds": {str(k): v for k, v in per_fold.items()}, **_fold_summary(per_fold),
                         "models_disagree": float((spread > FlagConfig.spread).mean())}
    mapping = OmegaConf.to_container(cfg.sunnybrook)
    patients = tables.patient_rows(table, mapping)
    intervals: dict = {method: {} for method in METHODS}
    for method, level in itertools.product(METHODS, levels):
        u = ensemble_uncertainty(predictor, members, table, IntervalSettings(level, method), FlagRule(1, float("inf")))
        first, last = whole_grades(u.low, u.high)
        entry = {}
        for c, score in enumerate(SCORES):
            valid = table.valid[:, c]
            held = np.minimum(np.maximum(last[valid, c] - first[valid, c] + 1, 0), 3)  # whole grades inside: 0–3+
            entry[score] = {**_coverage(u.low[valid, c], u.high[valid, c], table.true[valid, c]),
                            "grades_held": {label: float((held == k).mean()) for k, label in enumerate(GRADES_HELD)}}
        per_patient = patient_uncertainty(u, table, mapping)
        for subtotal in ("voluntary_movement", "synkinesis"):  # PatientUncertainty's and PatientRow's fields
            pairs = [(getattr(per_patient[p.video], subtotal), getattr(p, f"{subtotal}_true")) for p in patients]
            pairs = [(bounds, true) for bounds, true in pairs if bounds is not None and true is not None]
            entry[f"{subtotal}_score"] = _coverage(np.array([b[0] for b, _ in pairs], float), np.array([b[1] for b, _ in pairs], float),
                                    np.array([t for _, t in pairs], float))
        intervals[method][f"{level:g}"] = entry
    result = {
        "crossval": str(predictor.info.checkpoint), "stage": predictor.info.stage, "folds": predictor.folds,
        "left_out": {str(k): why for k, why in predictor.left_out.items()},
        "data": {"root": str(data.root), "source": data.source, "samples": int(len(s)),
                 "videos": int(len(set(s.video.tolist()))), "videos_x_expressions": len(table.keys),
                 "settings": list(settings)},
        "calibration": {"source": predictor.calibration.source, "residuals": predictor.calibration.counts()},
        "scores": scores, "intervals": intervals,
    }
    return result, Path(data.root)


def markdown(result: dict) -> str:
    """The two tables of holdout.json: ensemble vs single fold models, and the intervals' coverage."""
    from facedyn.inference.conformal import METHODS

    lines = [f"# Ensemble of {len(result['folds'])} fold models on data no model saw",
             "",
             f"Cross-validation: `{result['crossval']}` (stage {result['stage']}); data: {result['data']['source']} "
             f"({result['data']['videos']} videos, {result['data']['videos_x_expressions']} videos × expressions); "
             f"command: `{result.get('command', '')}`.",
             "",
             "| score | n | ensemble MAE | best fold MAE | median fold MAE | ensemble ICC | best fold ICC | median fold ICC "
             "| fold models > 1 grade apart |",
             "|---|---|---|---|---|---|---|---|---|"]
    for score, s in result["scores"].items():
        lines.append(f"| {score} | {s['n']} | {s['ensemble']['mae']:.3f} | {s['best_fold']['mae']:.3f} | "
                     f"{s['median_fold']['mae']:.3f} | {s['ensemble']['icc']:.3f} | {s['best_fold']['icc']:.3f} | "
                     f"{s['median_fold']['icc']:.3f} | {100 * s['models_disagree']:.0f} % |")
    lines += ["", "Prediction intervals on the cross-validation's out-of-fold residuals ("
              f"{', '.join(f'{k} {v}' for k, v in result['calibration']['residuals'].items())}): CV+ (each residual "
              "around the fold model that did not see it; predict.py's default) and centred (around the ensemble's "
              "grade, interval_method=centred). Coverage = share of true grades inside; width in grades (subtotals: "
              "in points):", "",
              "| method | level | grade | n | coverage | mean width | intervals holding 0 / 1 / 2 / ≥ 3 whole grades |",
              "|---|---|---|---|---|---|---|"]
    for method, by_level in result["intervals"].items():
        for level, entry in by_level.items():
            for name, c in entry.items():
                if c["coverage"] is None:
                    continue
                held = " / ".join(f"{100 * c['grades_held'][k]:.0f} %" for k in GRADES_HELD) \
                    if "grades_held" in c else "—"
                lines.append(f"| {METHODS[method]} | {100 * float(level):.0f} % | {name} | {c['n']} | "
                             f"{100 * c['coverage']:.1f} % | {c['mean_width']:.2f} | {held} |")
    return "\n".join(lines) + "\n"


def own_settings(argv: list[str]) -> tuple[str, dict, list[str]]:
    folder, own, settings = None, {}, []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep:
            if folder is not None:
                raise EvaluationError(f"{arg}: one cross-validation folder only (already {folder})")
            folder = arg
        elif key in OWN_KEYS:
            own[key] = value
        else:
            settings.append(arg)
    if folder is None:
        raise EvaluationError("name the cross-validation folder: python -m facedyn.crossval.evaluate <folder> ...")
    if "preset" in own:
        from facedyn.data.synthetic.config import PRESETS

        if own["preset"] not in PRESETS:
            raise EvaluationError(f"preset={own['preset']}: one of {', '.join(sorted(PRESETS))}")
        given = {a.partition("=")[0] for a in settings}
        settings = [f"data.synthetic.{k}={json.dumps(v)}" for k, v in PRESETS[own["preset"]].items()
                    if f"data.synthetic.{k}" not in given] + settings
    return folder, own, settings


def parse_levels(text: Optional[str]) -> list[float]:
    if text is None:
        return list(LEVELS)
    try:
        levels = [float(v) for v in text.strip("[]").split(",") if v.strip()]
    except ValueError:
        raise EvaluationError(f"levels={text}: a list of interval levels, e.g. levels=[0.8,0.9]") from None
    if not levels:
        raise EvaluationError(f"levels={text}: a list of interval levels, e.g. levels=[0.8,0.9]")
    return levels
