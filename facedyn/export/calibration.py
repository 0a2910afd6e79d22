"""A cross-validation fold's out-of-fold residuals, carried in its exported graph's metadata, so that
exported fold graphs make a calibrated ensemble without the cross-validation folder (load_onnx_ensemble).

The record: {"crossval", "variant", "folds", "fold", "stage", "source", "rows": [[video, expression,
<score>_true or null, <score>_pred, ...]]}, the fold's rows of the variant's residuals.csv for the stage.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from facedyn.crossval.layout import RESIDUALS_FILE, fold_of
from facedyn.crossval.residuals import Residuals, ResidualsError, read_residuals
from facedyn.metrics import SCORES

log = logging.getLogger(__name__)
CALIBRATION_KEY = "facedyn.calibration"


def fold_record(run_dir: Optional[Path], stage: str) -> Optional[dict]:
    """The record for a graph of `run_dir`'s `stage` when the run is a cross-validation fold; else None."""
    found = fold_of(run_dir) if run_dir is not None else None
    if found is None:
        return None
    variant, fold = found
    try:
        residuals = read_residuals(variant, stage, [fold])
    except ResidualsError as exc:
        log.warning("%s; the graph is exported without them (an ONNX ensemble of it has no intervals)", exc)
        return None
    rows = [[str(v), str(e), *(x for c in range(len(SCORES)) for x in (
        None if np.isnan(t[c]) else float(t[c]), float(p[c])))]
        for v, e, t, p in zip(residuals.video, residuals.expression, residuals.true, residuals.pred)]
    return {"crossval": str(variant.root), "variant": variant.variant, "folds": variant.folds, "fold": fold,
            "stage": stage, "source": str(variant.path / RESIDUALS_FILE), "rows": rows}


def residuals_of(records: Sequence[dict]) -> Residuals:
    """The residuals carried by several graphs' records, as one set."""
    rows = [(record["fold"], row) for record in records for row in record["rows"]]
    scores = len(SCORES)
    true = np.array([[np.nan if row[2 + 2 * c] is None else row[2 + 2 * c] for c in range(scores)] for _, row in rows],
                    dtype=float).reshape(-1, scores)
    pred = np.array([[row[3 + 2 * c] for c in range(scores)] for _, row in rows], dtype=float).reshape(-1, scores)
    return Residuals(np.array([fold for fold, _ in rows], dtype=int), np.array([row[0] for _, row in rows]),
                     np.array([row[1] for _, row in rows]), true, pred)
