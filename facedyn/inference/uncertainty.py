"""How far to trust an ensemble's grades: the fold models' spread, the calibrated interval, and the flag on
grades to check by hand, per frame, per video and expression, and per patient (Sunnybrook subtotals).

A video and expression is flagged when its interval holds more whole grades than `flag.grades`, or when the
fold models' video grades lie further apart (max − min) than `flag.spread`; the reason is said in words.

Sunnybrook subtotals get the sum of their items' interval ends (voluntary movement: 4 × Σ, each item at
least 1): it covers the subtotal whenever every item's interval covers its item, and usually more often,
since the items' errors partly cancel: conservative. The items' errors of one patient are not independent
(one face, one model), so a narrower interval from adding them in quadrature would not be justified. Its
ends are rounded outwards to whole points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from facedyn.utils.config import ConfigError
from facedyn.inference.conformal import METHODS, check_level, whole_grades
from facedyn.inference.ensemble import EnsemblePredictor, member_video_means
from facedyn.inference.tables import SUNNYBROOK_ITEMS, SUNNYBROOK_MIN_MOVEMENT, VideoGrades
from facedyn.metrics import SCORES

NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


@dataclass(frozen=True)
class IntervalSettings:
    level: Optional[float]  # None: no intervals
    method: str  # cv_plus | centred (facedyn.inference.conformal)


@dataclass(frozen=True)
class FlagRule:
    grades: int  # flag an interval that holds more whole grades than this
    spread: float  # flag fold models whose video grades differ by more than this (max − min)


@dataclass
class Uncertainty:
    """An ensemble's spread (per frame and per video and expression group) and intervals (per group)."""

    folds: list[int]
    frame_sd: np.ndarray  # (N, 2) standard deviation over the fold models (ddof=1; 0 for one model)
    frame_min: np.ndarray  # (N, 2)
    frame_max: np.ndarray  # (N, 2)
    members: np.ndarray  # (K, G, 2) each model's grade of each group (frames averaged)
    level: Optional[float]  # the intervals' level; None: no intervals
    method: str  # how they are made (facedyn.inference.conformal.METHODS)
    low: Optional[np.ndarray]  # (G, 2) interval ends, clipped to the grade range
    high: Optional[np.ndarray]
    reasons: list[list[str]]  # per group, why it is flagged (empty: not flagged)
    calibration: str  # what the intervals are calibrated on, in words ('' without intervals)
    rule: FlagRule
    left_out: dict[int, str]  # folds not in the ensemble, and why

    @property
    def sd(self) -> np.ndarray:
        return _sd(self.members)

    @property
    def spread_low(self) -> np.ndarray:
        return self.members.min(axis=0)

    @property
    def spread_high(self) -> np.ndarray:
        return self.members.max(axis=0)

    def grade_range(self) -> tuple[np.ndarray, np.ndarray]:
        """(first, last) whole grade inside each group's interval, (G, 2) each; first > last: none."""
        return whole_grades(self.low, self.high)

    def summary(self, per_patient: dict[str, "PatientUncertainty"]) -> dict:
        """predict's summary of the ensemble: folds, level, how many groups and patients are flagged."""
        return {"folds": self.folds, "interval": self.level, "interval_method": self.method, "groups": len(self.reasons),
                "flagged_groups": sum(1 for r in self.reasons if r),
                "flagged_patients": sum(1 for p in per_patient.values() if p.reasons)}


def uncertainty_settings(cfg: Any) -> tuple[IntervalSettings, FlagRule]:
    """The intervals and the flag rule from predict's `interval`, `interval_method` and `flag.*`; ConfigError
    naming a bad one."""
    level = None
    if cfg.interval is not None:
        try:
            level = check_level(cfg.interval)
        except ValueError as exc:
            raise ConfigError(f"{exc}, or interval=null for none") from None
    if cfg.interval_method not in METHODS:
        raise ConfigError(f"interval_method={cfg.interval_method}: one of {', '.join(METHODS)}")
    if not cfg.flag.grades >= 1:
        raise ConfigError(f"flag.grades={cfg.flag.grades}: flag intervals holding more than this many whole grades; at least 1")
    if not cfg.flag.spread > 0:
        raise ConfigError(f"flag.spread={cfg.flag.spread}: the fold models' largest difference (grades) to flag; above 0")
    return IntervalSettings(level, str(cfg.interval_method)), FlagRule(int(cfg.flag.grades), float(cfg.flag.spread))


def _sd(values: np.ndarray) -> np.ndarray:
    return values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros(values.shape[1:])


def count_words(count: int) -> str:
    return NUMBER_WORDS[count] if count < len(NUMBER_WORDS) else str(count)


def percent(level: float) -> str:
    return f"{100 * level:.0f} %" if math.isclose(100 * level, round(100 * level)) else f"{100 * level:g} %"


def grade_set(first: int, last: int) -> str:
    """A contiguous set of whole grades as text: '2–3', '2', 'none'."""
    if first > last:
        return "none"
    return str(first) if first == last else f"{first}–{last}"


def grade_list(first: int, last: int) -> str:
    """The same set as a CSV cell: '2 3', '2', '' (none)."""
    return " ".join(map(str, range(first, last + 1)))


def ensemble_uncertainty(predictor: EnsemblePredictor, member_grades: np.ndarray, table: VideoGrades,
                         intervals: IntervalSettings, rule: FlagRule) -> Uncertainty:
    """The uncertainty of (K, N, 2) member grades whose mean made `table`."""
    members = member_video_means(member_grades, table.group_of_row, len(table.keys))
    level = intervals.level
    low = high = None
    if level is not None:
        low, high = predictor.intervals(members, level, intervals.method)
    u = Uncertainty(predictor.folds, _sd(member_grades), member_grades.min(axis=0), member_grades.max(axis=0),
                    members, level, intervals.method, low, high, [[] for _ in table.keys],
                    predictor.calibration.source if level is not None else "", rule, predictor.left_out)
    _flag(u)
    return u


def _flag(u: Uncertainty) -> None:
    spread_low, spread_high = u.spread_low, u.spread_high
    first, last = u.grade_range() if u.level is not None else (None, None)
    models = f"the {count_words(len(u.folds))} models"
    for g, reasons in enumerate(u.reasons):
        for c, score in enumerate(SCORES):
            if spread_high[g, c] - spread_low[g, c] > u.rule.spread:
                reasons.append(f"{score}: {models} disagree: {spread_low[g, c]:.1f}–{spread_high[g, c]:.1f}")
            if first is not None and last[g, c] - first[g, c] + 1 > u.rule.grades:
                reasons.append(f"{score}: the {percent(u.level)} interval {u.low[g, c]:.1f}–{u.high[g, c]:.1f} "
                               f"holds grades {grade_set(first[g, c], last[g, c])}")


@dataclass
class PatientUncertainty:
    """Per patient: the items' whole-grade sets on Sunnybrook's scale, the subtotals' intervals, the flags."""

    # item → ((first, last) movement grade on Sunnybrook's 1–5, (first, last) synkinesis grade); None: missing
    items: dict[str, Optional[tuple[tuple[int, int], tuple[int, int]]]]
    voluntary_movement: Optional[tuple[int, int]]  # (low, high); None: an item is missing or no intervals
    synkinesis: Optional[tuple[int, int]]
    reasons: list[str]  # '<expression>, <reason>' for each flagged group of the patient
    flagged: list[str]  # the expressions flagged


def patient_uncertainty(u: Uncertainty, table: VideoGrades, mapping: dict[str, Optional[str]]
                        ) -> dict[str, PatientUncertainty]:
    by_key = {key: g for g, key in enumerate(table.keys)}
    first, last = u.grade_range() if u.level is not None else (None, None)
    out = {}
    for video in dict.fromkeys(video for video, _ in table.keys):
        groups = {item: by_key.get((video, mapping.get(item))) if mapping.get(item) else None for item in SUNNYBROOK_ITEMS}
        items: dict[str, Optional[tuple[tuple[int, int], tuple[int, int]]]] = {}
        for item, g in groups.items():
            if g is None or first is None:
                items[item] = None
                continue
            movement = (int(first[g, 0]), int(last[g, 0]))
            if movement[0] <= movement[1]:  # a predicted grade below 1 counts as 1
                movement = (max(movement[0], SUNNYBROOK_MIN_MOVEMENT), max(movement[1], SUNNYBROOK_MIN_MOVEMENT))
            items[item] = (movement, (int(first[g, 1]), int(last[g, 1])))
        movement = synkinesis = None
        if u.level is not None and all(g is not None for g in groups.values()):
            rows = list(groups.values())
            low_m = np.maximum(u.low[rows, 0], SUNNYBROOK_MIN_MOVEMENT).sum()
            high_m = np.maximum(u.high[rows, 0], SUNNYBROOK_MIN_MOVEMENT).sum()
            movement = (4 * math.floor(low_m + 1e-9), 4 * math.ceil(high_m - 1e-9))
            synkinesis = (math.floor(u.low[rows, 1].sum() + 1e-9), math.ceil(u.high[rows, 1].sum() - 1e-9))
        reasons = [f"{table.keys[g][1]}, {reason}" for g, key in enumerate(table.keys) if key[0] == video
                   for reason in u.reasons[g]]
        flagged = [expression for g, (name, expression) in enumerate(table.keys) if name == video and u.reasons[g]]
        out[video] = PatientUncertainty(items, movement, synkinesis, reasons, flagged)
    return out


def frame_columns(u: Uncertainty) -> tuple[list[str], list[list[str]]]:
    """predictions.csv's extra columns: per score the fold models' SD, min and max of the frame."""
    header = [f"{s}_fold_{k}" for s in SCORES for k in ("sd", "min", "max")]
    rows = [[f"{a[i, c]:.6f}" for c in range(len(SCORES)) for a in (u.frame_sd, u.frame_min, u.frame_max)]
            for i in range(len(u.frame_sd))]
    return header, rows


def video_columns(u: Uncertainty) -> tuple[list[str], list[list[str]]]:
    """predictions_video.csv's extra columns: per score the fold models' SD, min and max, the interval and the
    whole grades in it; then the flag and its reasons."""
    header = [f"{s}_fold_{k}" for s in SCORES for k in ("sd", "min", "max")]
    if u.level is not None:
        header += [f"{s}_{k}" for s in SCORES for k in ("low", "high", "interval_grades")]
        first, last = u.grade_range()
    header += ["flag", "flag_reason"]
    sd, spread_low, spread_high = u.sd, u.spread_low, u.spread_high
    rows = []
    for g, reasons in enumerate(u.reasons):
        row = [f"{a[g, c]:.6f}" for c in range(len(SCORES)) for a in (sd, spread_low, spread_high)]
        if u.level is not None:
            row += [x for c in range(len(SCORES)) for x in (
                f"{u.low[g, c]:.6f}", f"{u.high[g, c]:.6f}", grade_list(first[g, c], last[g, c]))]
        rows.append(row + [int(bool(reasons)), "; ".join(reasons)])
    return header, rows


def patient_columns(patients: dict[str, PatientUncertainty], videos: list[str], with_intervals: bool
                    ) -> tuple[list[str], list[list[str]]]:
    """patients.csv's extra columns: with intervals each item's whole grades in its interval (Sunnybrook's
    scale) and the subtotals' intervals; then the flag and its reasons."""
    header = []
    if with_intervals:
        header += [f"{item}_{score}_interval_grades" for item in SUNNYBROOK_ITEMS for score in ("movement", "synkinesis")]
        header += [f"{name}_{k}" for name in ("voluntary_movement_score", "synkinesis_score") for k in ("low", "high")]
    header += ["flag", "flag_reason"]
    rows = []
    for video in videos:
        p = patients[video]
        row = []
        if with_intervals:
            row += [grade_list(*grades) if grades else "" for item in SUNNYBROOK_ITEMS
                    for grades in (p.items[item] or (None, None))]
            row += [x for pair in (p.voluntary_movement, p.synkinesis) for x in (pair or ("", ""))]
        rows.append(row + [int(bool(p.reasons)), "; ".join(p.reasons)])
    return header, rows

