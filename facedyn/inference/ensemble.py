"""An ensemble of a cross-validation's fold models: the mean of their grades, their spread, and the
out-of-fold residuals its intervals are calibrated on (facedyn.inference.conformal).

    predictor = load_run("outputs/crossval/<time>")        # or <time>/<variant>: every finished fold's model
    grades = predictor.predict(flow, landmarks, baseline, expressions)          # (N, 2): the folds' mean
    videos = predictor.predict_videos(flow, landmarks, baseline, expressions, video_names, level=0.9)

Backend-agnostic (members are any Predictor: torch from a cross-validation folder, ONNX Runtime from
exported fold graphs) and light on import, like facedyn.inference.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from facedyn.crossval.residuals import Residuals
from facedyn.inference.conformal import METHODS, centred, check_level, cv_plus
from facedyn.inference.predictor import ModelInfo, Predictor, RunError
from facedyn.metrics import MAX_GRADE, SCORES, video_groups

log = logging.getLogger(__name__)

# Data settings that decide how samples are read into a model's inputs and labels: members must agree on them.
INPUT_DATA_KEYS = ("image_size", "resize_flow", "landmarks", "flow", "labels")
# Model settings that do not change what a trained model computes (flow.weights: its initialisation only).
IGNORED_MODEL_KEYS = ("flow.weights",)


@dataclass(frozen=True)
class Calibration:
    """Per score, the out-of-fold residuals |true − pred| and the member (index into the ensemble) that
    predicted each: what CV+ needs."""

    member: tuple[np.ndarray, ...]  # per score, (n,) int
    residual: tuple[np.ndarray, ...]  # per score, (n,) float
    source: str  # where they come from, in words

    @classmethod
    def of(cls, residuals: Residuals, folds: Sequence[int], source: str) -> "Calibration":
        index = {fold: i for i, fold in enumerate(folds)}
        members, values = [], []
        for column in range(len(SCORES)):
            fold, residual = residuals.of_score(column)
            keep = np.isin(fold, list(index))
            members.append(np.array([index[int(k)] for k in fold[keep]], dtype=int))
            values.append(residual[keep])
        return cls(tuple(members), tuple(values), source)

    def counts(self) -> dict[str, int]:
        return {score: int(len(self.residual[c])) for c, score in enumerate(SCORES)}

    def intervals(self, member_predictions: np.ndarray, level: float, method: str = "cv_plus"
                  ) -> tuple[np.ndarray, np.ndarray]:
        """(low, high), each (G, 2): intervals of (K, G, 2) member predictions by `method` (cv_plus | centred,
        facedyn.inference.conformal), clipped to each score's grade range."""
        if method not in METHODS:
            raise ValueError(f"interval_method={method}: one of {', '.join(METHODS)}")
        ends = [cv_plus(member_predictions[:, :, c], self.member[c], self.residual[c], level) if method == "cv_plus"
                else centred(member_predictions[:, :, c].mean(axis=0), self.residual[c], level)
                for c in range(len(SCORES))]
        low = np.stack([np.clip(e[0], 0, MAX_GRADE[s]) for e, s in zip(ends, SCORES)], axis=1)
        high = np.stack([np.clip(e[1], 0, MAX_GRADE[s]) for e, s in zip(ends, SCORES)], axis=1)
        return low, high


@dataclass(frozen=True)
class VideoPrediction:
    """predict_videos' result: per (video, expression), the ensemble's grade, spread and interval."""

    keys: list[tuple[str, str]]
    mean: np.ndarray  # (G, 2) the members' mean of frames averaged per video and expression
    members: np.ndarray  # (K, G, 2) each member's
    low: Optional[np.ndarray]  # (G, 2) interval ends at `level`; None without calibration
    high: Optional[np.ndarray]
    level: Optional[float]


class EnsemblePredictor:
    """The members' mean grade (a Predictor); `predict_members` gives each one's."""

    def __init__(self, members: Sequence[Predictor], folds: Sequence[int], source: Path,
                 calibration: Optional[Calibration] = None, left_out: Optional[dict[int, str]] = None) -> None:
        if not members:
            raise RunError(f"{source}: an ensemble needs at least one model")
        check_same_model([m.info for m in members], [f"fold {k}" for k in folds], source)
        self.members, self.folds = list(members), list(folds)
        self.calibration = calibration
        self.left_out = dict(left_out or {})
        first = members[0].info
        self.info = replace(first, run_dir=None, checkpoint=Path(source))

    def predict_members(self, flow_images: np.ndarray, expression_landmarks: np.ndarray,
                        baseline_landmarks: np.ndarray, expressions: Sequence[str]) -> np.ndarray:
        """(K, N, 2) unrounded grades of each member, in the order of `folds`."""
        return np.stack([m.predict(flow_images, expression_landmarks, baseline_landmarks, expressions)
                         for m in self.members])

    def predict(self, flow_images: np.ndarray, expression_landmarks: np.ndarray, baseline_landmarks: np.ndarray,
                expressions: Sequence[str]) -> np.ndarray:
        return self.predict_members(flow_images, expression_landmarks, baseline_landmarks, expressions).mean(axis=0)

    def predict_videos(self, flow_images: np.ndarray, expression_landmarks: np.ndarray,
                       baseline_landmarks: np.ndarray, expressions: Sequence[str], videos: Sequence[str],
                       level: Optional[float] = 0.9, method: str = "cv_plus") -> VideoPrediction:
        """Frames averaged per video and expression, with the members' spread and the interval at `level`
        (None: no interval) by `method` (cv_plus | centred)."""
        members = self.predict_members(flow_images, expression_landmarks, baseline_landmarks, expressions)
        ids, keys = video_groups(videos, expressions)
        per_video = member_video_means(members, ids, len(keys))
        low = high = None
        if level is not None:
            low, high = self.intervals(per_video, level, method)
        return VideoPrediction(keys, per_video.mean(axis=0), per_video, low, high, level)

    def intervals(self, member_video: np.ndarray, level: float, method: str = "cv_plus"
                  ) -> tuple[np.ndarray, np.ndarray]:
        check_level(level)
        if self.calibration is None:
            raise RunError(f"{self.info.checkpoint}: no calibration residuals for intervals")
        return self.calibration.intervals(member_video, level, method)

    def describe(self) -> dict:
        """What model.json records beside ModelInfo."""
        return {"members": [str(m.info.checkpoint) for m in self.members], "folds": self.folds,
                "left_out": {str(k): why for k, why in self.left_out.items()},
                "calibration": None if self.calibration is None else
                {"source": self.calibration.source, "residuals": self.calibration.counts()}}


def member_video_means(members: np.ndarray, group_ids: np.ndarray, groups: int) -> np.ndarray:
    """(K, G, 2): each member's grades averaged over the frames of each (video, expression) group."""
    counts = np.bincount(group_ids, minlength=groups).astype(float)
    return np.stack([np.stack([np.bincount(group_ids, weights=m[:, c], minlength=groups) / counts
                               for c in range(m.shape[1])], axis=1) for m in members])


def _plain_differences(a: object, b: object, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for key in sorted(set(a) | set(b))
                for d in _plain_differences(a.get(key), b.get(key), f"{prefix}{key}.")]
    return [] if a == b else [f"{prefix.rstrip('.')}: {a} vs {b}"]


def _without(settings: Optional[dict], keys: Sequence[str]) -> dict:
    plain = dict(settings or {})
    for dotted in keys:
        head, _, tail = dotted.partition(".")
        if tail and isinstance(plain.get(head), dict):
            plain[head] = {k: v for k, v in plain[head].items() if k != tail}
        elif not tail:
            plain.pop(head, None)
    return plain


def check_same_model(infos: Sequence[ModelInfo], names: Sequence[str], source: object) -> None:
    """Members must be one model: the same stage output, inputs and model settings; RunError naming the
    first difference otherwise."""
    first = infos[0]
    for info, name in zip(infos[1:], names[1:]):
        differences = []
        for field in ("stage", "predict", "image_size", "expressions"):
            if getattr(info, field) != getattr(first, field):
                differences.append(f"{field}: {getattr(first, field)} vs {getattr(info, field)}")
        differences += [f"model.{d}" for d in _plain_differences(
            _without(first.model_settings, IGNORED_MODEL_KEYS), _without(info.model_settings, IGNORED_MODEL_KEYS))]
        first_data, data = first.data_settings or {}, info.data_settings or {}
        differences += [f"data.{d}" for key in INPUT_DATA_KEYS
                        for d in _plain_differences({key: first_data.get(key)}, {key: data.get(key)})]
        if differences:
            raise RunError(f"{source}: {name} was made with other settings than {names[0]} ({differences[0]}); "
                           "an ensemble needs models of one config")
