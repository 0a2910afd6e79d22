"""The cross-validation table: mean ± standard deviation over folds, per variant, for each branch.

A branch's figures in a fold are those of the last stage that predicts with it (flow: stage 1, landmarks:
2b, fused: 4 in the default pipeline), read from the fold runs' metrics.json (`per_stage`, computed from
the same validation predictions as predictions_stage_<s>_video.csv). The standard deviation is the sample
one (ddof=1) over folds. `python -m facedyn.crossval.summary <folder>` rewrites the table.
"""

from __future__ import annotations

import csv
import io
import math
import sys
from pathlib import Path

import numpy as np

from facedyn.model.config import Predict
from facedyn.training.stages import STAGE_ORDER
from facedyn.crossval.layout import CrossvalFolderError, fold_run_dirs, read_plan
from facedyn.utils.io import atomic_write_json, atomic_write_text
from facedyn.runs import CONFIG_FILE, HISTORY_FILE, METRICS_FILE, read_json

BRANCHES = tuple(Predict.names())  # what a stage can predict with: flow, landmarks, fused
BRANCH_LABELS = {"flow": "flow branch", "landmarks": "landmark branch", "fused": "fused", "baseline": "training mean"}
METRICS = ("val_loss", "val_video_mae_dynamics", "val_video_mae_synkinesis", "val_video_icc_dynamics",
           "val_video_icc_synkinesis")
METRIC_LABELS = ("val loss", "dynamics MAE", "synkinesis MAE", "dynamics ICC(2,1)", "synkinesis ICC(2,1)")
SUMMARY_FILES = ("crossval.md", "crossval.json", "crossval.csv")


class IncompleteCrossval(RuntimeError):
    """A fold run the table needs has not finished; the message names it."""


def _stage_predictions(run_dir: Path) -> dict[str, str]:
    """{stage: what it predicts} for the stages a run trained, from its config.yaml."""
    from omegaconf import OmegaConf

    stages = OmegaConf.load(run_dir / CONFIG_FILE).stages
    return {spec.name: spec.predict for spec in stages.values()}


def fold_result(run_dirs: list[Path]) -> dict:
    """One fold of one variant: per-stage metrics (with best and last val loss) and per-branch metrics."""
    per_stage, predicts, baseline = {}, {}, {}
    for run_dir in run_dirs:
        metrics = read_json(run_dir / METRICS_FILE)
        if metrics is None:
            raise IncompleteCrossval(f"{run_dir}: no {METRICS_FILE}; rerun the cross-validation to finish it")
        history = (read_json(run_dir / HISTORY_FILE) or {}).get("epochs", [])
        predicts.update(_stage_predictions(run_dir))
        baseline = metrics["baseline"]
        for stage, values in metrics["per_stage"].items():
            losses = [row["val_loss"] for row in history if row["stage"] == stage]
            per_stage[stage] = {**values, "best_val_loss": min(losses, default=values["val_loss"]),
                                "last_val_loss": losses[-1] if losses else values["val_loss"]}
    branches = {}
    for stage in sorted(per_stage, key=STAGE_ORDER.index):
        branches[predicts[stage]] = {"stage": stage, **{k: per_stage[stage].get(k) for k in METRICS}}
    branches["baseline"] = {"stage": None, **{k: baseline.get(k) for k in METRICS}}
    return {"stages": per_stage, "branches": branches}


def _stats(values: list[float | None]) -> dict:
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    return {"mean": float(np.mean(finite)) if finite else None,
            "std": float(np.std(finite, ddof=1)) if len(finite) > 1 else None,
            "n": len(finite), "values": values}


def _fused_gain(folds: list[dict]) -> list[float | None]:
    """Per fold, 1 − fused val loss / the better single branch's: how much fusion beats either branch."""
    gains = []
    for fold in folds:
        b = fold["branches"]
        if not all(name in b for name in BRANCHES):
            gains.append(None)
            continue
        best_single = min(b["flow"]["val_loss"], b["landmarks"]["val_loss"])
        gains.append(1.0 - b["fused"]["val_loss"] / best_single if best_single > 0 else None)
    return gains


def summarise(root: Path) -> dict:
    try:
        plan = read_plan(root)
    except CrossvalFolderError as exc:
        raise IncompleteCrossval(str(exc)) from None
    variants = {}
    for label, overrides in plan["variants"].items():
        folds = []
        for fold in range(plan["folds"]):
            run_dirs = fold_run_dirs(root, plan, label, fold)
            folds.append({"fold": fold, "runs": [str(d.relative_to(root)) for d in run_dirs], **fold_result(run_dirs)})
        names = [b for b in (*BRANCHES, "baseline") if all(b in f["branches"] for f in folds)]
        stages = sorted({s for f in folds for s in f["stages"]}, key=STAGE_ORDER.index)
        variants[label] = {
            "overrides": overrides,
            "folds": folds,
            "branches": {b: {"stage": folds[0]["branches"][b]["stage"],
                             **{m: _stats([f["branches"][b][m] for f in folds]) for m in METRICS}} for b in names},
            "stages": {s: {k: _stats([f["stages"].get(s, {}).get(k) for f in folds])
                           for k in ("best_val_loss", "last_val_loss")} for s in stages},
            "fused_gain": _stats(_fused_gain(folds)),
        }
    return {"folds": plan["folds"], "shared_stages": plan["shared_stages"], "common": plan["common"],
            "variants": variants}


def _pm(stats: dict, digits: int = 3) -> str:
    if stats["mean"] is None:
        return "—"
    std = f" ± {stats['std']:.{digits}f}" if stats["std"] is not None else ""
    return f"{stats['mean']:.{digits}f}{std}"


def markdown(summary: dict) -> str:
    lines = [f"# Cross-validation: {summary['folds']} folds by video",
             "",
             "Mean ± standard deviation over folds (ddof=1); MAE and ICC(2,1) at video level (frames averaged "
             "per video and expression); val loss = scaled MSE of the validation fold.",
             f"Common overrides: `{' '.join(summary['common']) or '(none)'}`"
             + (f"; stages {', '.join(summary['shared_stages'])} trained once per fold and shared by every variant."
                if summary["shared_stages"] else "."),
             "",
             "| variant | branch (stage) | " + " | ".join(METRIC_LABELS) + " |",
             "|---|---|" + "---|" * len(METRICS)]
    for label, variant in summary["variants"].items():
        for branch, stats in variant["branches"].items():
            digits = {m: 4 if m == "val_loss" else 3 for m in METRICS}
            stage = f" ({stats['stage']})" if stats["stage"] else ""
            lines.append(f"| {label} | {BRANCH_LABELS[branch]}{stage} | "
                         + " | ".join(_pm(stats[m], digits[m]) for m in METRICS) + " |")
    stages = [s for s in STAGE_ORDER if any(s in v["stages"] for v in summary["variants"].values())]
    lines += ["", "Validation loss per stage, best epoch / last epoch:", "",
              "| variant | " + " | ".join(stages) + " | fused vs better branch |",
              "|---|" + "---|" * (len(stages) + 1)]
    for label, variant in summary["variants"].items():
        cells = [f"{_pm(variant['stages'][s]['best_val_loss'], 4)} / {_pm(variant['stages'][s]['last_val_loss'], 4)}"
                 if s in variant["stages"] else "—" for s in stages]
        gain = variant["fused_gain"]
        gain_text = "—" if gain["mean"] is None else (
            f"{100 * gain['mean']:.1f} %" + (f" ± {100 * gain['std']:.1f}" if gain["std"] is not None else ""))
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {gain_text} |")
    return "\n".join(lines) + "\n"


def table_csv(summary: dict) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["variant", "branch", "stage", "metric", "mean", "std", "folds", "values"])
    for label, variant in summary["variants"].items():
        for branch, stats in variant["branches"].items():
            for metric in METRICS:
                s = stats[metric]
                writer.writerow([label, branch, stats["stage"] or "", metric, s["mean"], s["std"], s["n"],
                                 " ".join("" if v is None else f"{v:.6g}" for v in s["values"])])
    return buffer.getvalue()


def write_summary(root: Path) -> dict:
    summary = summarise(root)
    atomic_write_json(root / "crossval.json", summary)
    atomic_write_text(root / "crossval.md", markdown(summary))
    atomic_write_text(root / "crossval.csv", table_csv(summary))
    return summary


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print("usage: python -m facedyn.crossval.summary <cross-validation folder>", file=sys.stderr)
        return 2
    try:
        write_summary(Path(argv[0]))
    except IncompleteCrossval as exc:
        print(f"crossval: {exc}", file=sys.stderr)
        return 1
    print((Path(argv[0]) / "crossval.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
