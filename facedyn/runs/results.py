"""Prediction tables and the end-of-run summary."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from facedyn.utils.io import atomic_write_text
from facedyn.metrics import SCORES, aggregate_by_video, to_grades, video_groups

FRAME_COLUMNS = ["video", "expression", "frame"] + [f"{s}_{k}" for s in SCORES for k in ("true", "pred", "valid")]


def csv_text(rows: list[list], header: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_predictions(run_dir: Path, name: str, samples, rows: np.ndarray, pred_norm: np.ndarray) -> None:
    """`<name>.csv` (one row per frame) and `<name>_video.csv` (frames averaged per video and expression)."""
    pred = to_grades(pred_norm)
    true, valid = samples.targets(rows)
    videos, expressions, frames = samples.video[rows], samples.expression[rows], samples.frame[rows]
    frame_rows = [
        [v, e, f, int(true[i, 0]), f"{pred[i, 0]:.6f}", int(valid[i, 0]), int(true[i, 1]), f"{pred[i, 1]:.6f}", int(valid[i, 1])]
        for i, (v, e, f) in enumerate(zip(videos, expressions, frames))
    ]
    atomic_write_text(Path(run_dir) / f"{name}.csv", csv_text(frame_rows, FRAME_COLUMNS))
    ids, keys = video_groups(videos, expressions)
    video_pred, video_true, video_valid = aggregate_by_video(pred, true, valid, ids)
    counts = np.bincount(ids)
    video_rows = [
        [v, e, int(counts[g]), int(video_true[g, 0]), f"{video_pred[g, 0]:.6f}", int(video_valid[g, 0]),
         int(video_true[g, 1]), f"{video_pred[g, 1]:.6f}", int(video_valid[g, 1])]
        for g, (v, e) in enumerate(keys)
    ]
    header = ["video", "expression", "frames"] + FRAME_COLUMNS[3:]
    atomic_write_text(Path(run_dir) / f"{name}_video.csv", csv_text(video_rows, header))


def format_number(value: Any, spec: str = ".4g", missing: str = "") -> str:
    """A table cell: floats by `spec`, None and NaN as `missing`, anything else as str()."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return missing
    return format(value, spec) if isinstance(value, float) else str(value)


def summary_text(run_dir: Path, stage_rows: list[dict], final: dict, baseline: dict, flow_pretrained: bool) -> str:
    """One screen: per-stage timing and val loss, then final metrics against the training-mean baseline."""
    lines = [f"Run folder: {run_dir}", "",
             f"{'stage':<6}{'predicts':<10}{'epochs':>7}{'kept':>6}{'seconds':>9}{'train loss':>12}{'val loss':>10}"]
    for row in stage_rows:  # kept epoch 0: the stage handed on the weights it started from
        kept = row.get("kept_epoch", row["epochs"])
        lines.append(f"{row['stage']:<6}{row['predict']:<10}{row['epochs']:>7}{'start' if kept == 0 else kept:>6}"
                     f"{row['seconds']:>9.1f}{format_number(row['train_loss'], '.4f', '—'):>12}{row['val_loss']:>10.4f}")
    lines += ["", f"{'validation':<34}{'model':>9}{'baseline':>10}   (baseline: predict the training mean)"]
    keys = [("val_loss", "loss (scaled MSE)")]
    for score in SCORES:
        keys += [(f"val_mae_{score}", f"{score} MAE"), (f"val_acc_{score}", f"{score} accuracy"),
                 (f"val_qwk_{score}", f"{score} QWK"), (f"val_video_mae_{score}", f"{score} MAE, video level"),
                 (f"val_video_icc_{score}", f"{score} ICC(2,1), video level")]
    keys.append(("val_acc_both", "both scores right"))
    for key, label in keys:
        model, base = (format_number(m.get(key), ".3f", "—") for m in (final, baseline))
        lines.append(f"{label:<34}{model:>9}{base:>10}")
    if not flow_pretrained:
        lines += ["", "NOTE: the flow branch trained from scratch (no ImageNet weights); see the log."]
    return "\n".join(lines)
