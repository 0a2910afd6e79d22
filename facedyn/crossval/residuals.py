"""Out-of-fold residuals of a cross-validation: what its ensemble's prediction intervals are calibrated on.

Every fold run predicted its validation videos, which its model never trained on, with the weights each
stage handed on (predictions_stage_<s>_video.csv: frames averaged per video and expression, at the precision
the run validated with). `<variant>/residuals.csv` gathers them over folds and stages, one row per fold,
stage, video and expression:

  fold, stage, video, expression, <score>_true, <score>_pred, <score>_residual (true − pred; empty: unlabelled)

The cross-validation writes the file when it ends. `python -m facedyn.crossval.residuals <folder>` writes it
again from the folds' saved prediction files, without retraining and without the data: for a
cross-validation made before the file existed, or one whose last folds finished later.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facedyn.training.stages import STAGE_ORDER
from facedyn.crossval.layout import RESIDUALS_FILE, CrossvalFolderError, VariantFolder, read_plan
from facedyn.utils.io import atomic_write_text
from facedyn.metrics import SCORES
from facedyn.runs.results import csv_text

PREDICTIONS_PREFIX, PREDICTIONS_SUFFIX = "predictions_stage_", "_video.csv"  # facedyn.training's per-stage files
HEADER = ["fold", "stage", "video", "expression", *(f"{s}_{k}" for s in SCORES for k in ("true", "pred", "residual"))]


class ResidualsError(ValueError):
    """residuals.csv missing, unreadable or without a fold's rows; the message says how to compute it."""


@dataclass(frozen=True)
class Residuals:
    """The out-of-fold video predictions of one stage: row i was predicted by fold[i]'s model."""

    fold: np.ndarray  # (n,) int
    video: np.ndarray  # (n,) str
    expression: np.ndarray  # (n,) str
    true: np.ndarray  # (n, 2) float, NaN where unlabelled
    pred: np.ndarray  # (n, 2) float

    def of_score(self, column: int) -> tuple[np.ndarray, np.ndarray]:
        """(fold, |true − pred|) of the rows labelled for one score."""
        labelled = ~np.isnan(self.true[:, column])
        return self.fold[labelled], np.abs(self.true[labelled, column] - self.pred[labelled, column])


def recompute_command(root: Path) -> str:
    return f"python -m facedyn.crossval.residuals {root}"


def _fold_rows(fold: int, run_dir: Path) -> list[list]:
    rows = []
    for path in sorted(run_dir.glob(f"{PREDICTIONS_PREFIX}*{PREDICTIONS_SUFFIX}")):
        stage = path.name[len(PREDICTIONS_PREFIX):-len(PREDICTIONS_SUFFIX)]
        if stage not in STAGE_ORDER:
            continue
        with open(path, newline="") as fh:
            for record in csv.DictReader(fh):
                row = [fold, stage, record["video"], record["expression"]]
                for score in SCORES:
                    labelled = record[f"{score}_valid"] == "1"
                    pred = float(record[f"{score}_pred"])
                    true = float(record[f"{score}_true"])
                    row += [int(true) if labelled else "", record[f"{score}_pred"],
                            f"{true - pred:.6f}" if labelled else ""]
                rows.append(row)
    return rows


def collect(variant: VariantFolder) -> list[list]:
    """Rows of residuals.csv for every fold and stage the variant's fold runs predicted so far."""
    rows = []
    for fold in range(variant.folds):
        for run_dir in variant.run_dirs(fold):
            rows += _fold_rows(fold, run_dir)
    return rows


def write_residuals(root: Path) -> list[Path]:
    """Write residuals.csv of every variant that has out-of-fold predictions; the files written."""
    plan = read_plan(root)
    written = []
    for label in plan.get("variants", {}):
        rows = collect(VariantFolder(Path(root), label, plan))
        if rows:
            path = Path(root) / label / RESIDUALS_FILE
            atomic_write_text(path, csv_text(rows, HEADER))
            written.append(path)
    return written


def read_residuals(variant: VariantFolder, stage: str, folds: list[int]) -> Residuals:
    """The out-of-fold residuals of `stage` for `folds`; ResidualsError (saying how to compute them) when
    the file is missing or lacks one of those folds."""
    path = variant.path / RESIDUALS_FILE
    how = f"compute them from the folds' saved predictions, without retraining: {recompute_command(variant.root)}"
    try:
        with open(path, newline="") as fh:
            records = [r for r in csv.DictReader(fh) if r.get("stage") == stage]
    except FileNotFoundError:
        raise ResidualsError(f"{path} missing (a cross-validation from before its residuals were kept); {how}") from None
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise ResidualsError(f"{path}: unreadable ({exc}); {how}") from None
    try:
        fold = np.array([int(r["fold"]) for r in records], dtype=int)
        true = np.array([[float(r[f"{s}_true"]) if r[f"{s}_true"] != "" else np.nan for s in SCORES]
                         for r in records], dtype=float).reshape(-1, len(SCORES))
        pred = np.array([[float(r[f"{s}_pred"]) for s in SCORES] for r in records], dtype=float).reshape(-1, len(SCORES))
    except (KeyError, TypeError, ValueError) as exc:
        raise ResidualsError(f"{path}: not a residuals file ({exc}); {how}") from None
    missing = [k for k in folds if not (fold == k).any()]
    if missing:
        raise ResidualsError(f"{path} has no stage {stage} residuals of fold(s) {', '.join(map(str, missing))} "
                             f"(written before they finished); {how}")
    keep = np.isin(fold, folds)
    return Residuals(fold[keep], np.array([r["video"] for r in records])[keep],
                     np.array([r["expression"] for r in records])[keep], true[keep], pred[keep])


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print(f"usage: {recompute_command(Path('<cross-validation folder>'))}", file=sys.stderr)
        return 2
    root = Path(argv[0]).expanduser().resolve()
    try:
        written = write_residuals(root)
    except CrossvalFolderError as exc:
        print(f"crossval: error: {exc}", file=sys.stderr)
        return 1
    if not written:
        print(f"crossval: error: {root}: no fold has finished a stage yet; nothing to calibrate on", file=sys.stderr)
        return 1
    for path in written:
        with open(path, newline="") as fh:
            print(f"{path}: {sum(1 for _ in fh) - 1} out-of-fold video predictions")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
