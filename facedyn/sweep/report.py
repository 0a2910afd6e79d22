"""The sweep's results in its folder: summary.json, summary.md, trials.csv, best_overrides.txt, plots/.

best_overrides.txt is the train.py command line that trains the best pipeline found: the sweep's training
overrides plus every stage's best values.
"""

from __future__ import annotations

import csv
import io
import math
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
from optuna.trial import FrozenTrial, TrialState  # noqa: E402

from facedyn.utils.io import atomic_path, atomic_write_json, atomic_write_text  # noqa: E402
from facedyn.metrics import HEADLINE_METRICS  # noqa: E402
from facedyn.runs.results import format_number  # noqa: E402
from facedyn.sweep.search import RETRY_OF_ATTR, SURPLUS_ATTR, as_overrides  # noqa: E402
from facedyn.sweep.storage import HOST_ATTR, PID_ATTR, RUN_DIR_ATTR  # noqa: E402
from facedyn.sweep.trial import CHECKPOINT_ATTR, INIT_FROM_ATTR, METRICS_ATTR  # noqa: E402

if TYPE_CHECKING:
    from facedyn.sweep.runner import Sweep

SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
TRIALS_CSV = "trials.csv"
BEST_OVERRIDES = "best_overrides.txt"
PLOTS_DIR = "plots"


def write_report(sweep: "Sweep") -> dict:
    """Summarise every study of the sweep as it stands in the storage; returns summary.json's content."""
    studies = {}
    for stage in sweep.study_stages():
        try:
            studies[stage] = optuna.load_study(study_name=sweep.study_name(stage), storage=sweep.storage)
        except KeyError:
            continue  # not started yet
    summary = summarize(sweep, studies)
    out = sweep.sweep_dir
    atomic_write_json(out / SUMMARY_JSON, summary)
    atomic_write_text(out / TRIALS_CSV, _csv(summary["trials"]))
    atomic_write_text(out / SUMMARY_MD, _markdown(summary))
    if summary["best_overrides"] is not None:
        atomic_write_text(out / BEST_OVERRIDES, summary["train_command"] + "\n")
    for stage, study in studies.items():
        _plot_history(study, stage, out / PLOTS_DIR / f"history_{stage}.png", sweep.cfg.metric)
        _plot_params(study, stage, out / PLOTS_DIR / f"params_{stage}.png", sweep.cfg.metric)
    return summary


def summarize(sweep: "Sweep", studies: dict[str, optuna.Study]) -> dict:
    stages: dict[str, Any] = {}
    trials: list[dict] = []
    best_values: dict[str, Any] = {}
    complete = True
    for stage, study in studies.items():
        all_trials = study.get_trials(deepcopy=False)
        states = [t.state for t in all_trials]
        best = _best(study)
        stages[stage] = {
            "study": study.study_name,
            "budget": sweep.budget(),
            "init_from": study.user_attrs.get(INIT_FROM_ATTR),
            **{f"n_{s.name.lower()}": states.count(s) for s in TrialState},
            "best": _trial_row(stage, best) if best else None,
        }
        complete &= best is not None and stages[stage]["n_complete"] + stages[stage]["n_pruned"] >= sweep.budget()
        if best:
            best_values.update(best.params)
        trials.extend(_trial_row(stage, t) for t in all_trials)
    complete &= len(studies) == len(sweep.study_stages())
    overrides = list(sweep.base_overrides) + _pipeline(sweep) + as_overrides(best_values) if best_values else None
    return {
        "study_name": sweep.cfg.study_name,
        "mode": sweep.cfg.mode,
        "storage": sweep.storage_url,
        "metric": sweep.cfg.metric,
        "direction": sweep.cfg.direction,
        "complete": complete,
        "stages": stages,
        "best_overrides": overrides,
        "train_command": "python train.py " + " ".join(shlex.quote(o) for o in overrides) if overrides else None,
        "trials": trials,
    }


def _pipeline(sweep: "Sweep") -> list[str]:
    """What makes train.py run the pipeline the sweep tuned: its stages when they are not all five, and the
    checkpoint its first stage started from."""
    from facedyn.training.stages import STAGE_ORDER

    extra = []
    stages = [str(s) for s in sweep.cfg.stages]
    if sweep.cfg.mode == "staged" and tuple(stages) != STAGE_ORDER:
        extra.append(f"stage=[{','.join(stages)}]" if len(stages) > 1 else f"stage={stages[0]}")
    if sweep.init_from:
        extra.append(f"init_from={sweep.init_from}")
    return extra


def _best(study: optuna.Study) -> FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:
        return None


def _trial_row(stage: str, trial: FrozenTrial) -> dict[str, Any]:
    state = "surplus" if trial.user_attrs.get(SURPLUS_ATTR) else trial.state.name.lower()
    return {
        "stage": stage,
        "number": trial.number,
        "state": state,
        "value": trial.value,
        "params": dict(trial.params),
        "epochs": len(trial.intermediate_values),
        "metrics": trial.user_attrs.get(METRICS_ATTR, {}),
        "seconds": trial.duration.total_seconds() if trial.duration else None,
        "run_dir": trial.user_attrs.get(RUN_DIR_ATTR),
        "checkpoint": trial.user_attrs.get(CHECKPOINT_ATTR),
        "retry_of": trial.system_attrs.get(RETRY_OF_ATTR),
        "host": trial.user_attrs.get(HOST_ATTR),
        "pid": trial.user_attrs.get(PID_ATTR),
    }


def _csv(rows: list[dict]) -> str:
    param_keys = list(dict.fromkeys(k for r in rows for k in r["params"]))
    metric_keys = [m for m in HEADLINE_METRICS if any(m in r["metrics"] for r in rows)]
    fields = ["stage", "number", "state", "value", *param_keys, "epochs", *metric_keys, "seconds", "retry_of",
              "run_dir", "host", "pid"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, **row["params"], **row["metrics"]})
    return buffer.getvalue()


def _markdown(summary: dict) -> str:
    lines = [f"# Sweep {summary['study_name']} ({summary['mode']}, {summary['direction']} {summary['metric']})", "",
             f"Storage: `{summary['storage']}`" + ("" if summary["complete"] else " — **not finished yet**"), ""]
    if summary["train_command"]:
        lines += ["Best pipeline:", "", "```", summary["train_command"], "```", ""]
    metrics = list(HEADLINE_METRICS)
    lines += ["## Best trial per stage", "",
              "| stage | trial | params | " + " | ".join(metrics) + " | done/budget | pruned | failed |",
              "|---" * (len(metrics) + 6) + "|"]
    for stage, info in summary["stages"].items():
        best = info["best"] or {"number": "–", "params": {}, "metrics": {}}
        lines.append(f"| {stage} | {best['number']} | {_params(best['params'])} | "
                     + " | ".join(format_number(best["metrics"].get(m)) for m in metrics)
                     + f" | {info['n_complete'] + info['n_pruned']}/{info['budget']} | {info['n_pruned']} |"
                       f" {info['n_fail']} |")
    lines += ["", "## All trials", "", "| stage | trial | state | value | params | epochs | seconds | run folder |",
              "|---|---|---|---|---|---|---|---|"]
    for t in summary["trials"]:
        lines.append(f"| {t['stage']} | {t['number']} | {t['state']} | {format_number(t['value'])} | {_params(t['params'])} | "
                     f"{t['epochs']} | {format_number(t['seconds'])} | {t['run_dir'] or ''} |")
    return "\n".join(lines) + "\n"


def _params(params: dict) -> str:
    return ", ".join(f"{k}={format_number(v)}" for k, v in params.items())




def _plot_history(study: optuna.Study, stage: str, path: Path, metric: str) -> None:
    """Each trial's value by trial number (pruned: its last reported value) and the best so far."""
    trials = [t for t in study.get_trials(deepcopy=False) if _shown_value(t) is not None]
    if not trials:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for state, marker in ((TrialState.COMPLETE, "o"), (TrialState.PRUNED, "x")):
        chosen = [t for t in trials if t.state == state]
        ax.scatter([t.number for t in chosen], [_shown_value(t) for t in chosen], marker=marker,
                   label=state.name.lower())
    best_so_far, running = [], None
    complete = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.number)
    better = min if study.direction == optuna.study.StudyDirection.MINIMIZE else max
    for t in complete:
        running = t.value if running is None else better(running, t.value)
        best_so_far.append(running)
    ax.step([t.number for t in complete], best_so_far, where="post", label="best so far")
    ax.set(xlabel="trial", ylabel=metric, title=f"{study.study_name}: optimisation history")
    ax.legend()
    _save(fig, path)


def _plot_params(study: optuna.Study, stage: str, path: Path, metric: str) -> None:
    """The metric against each searched value (log axis for log-scale params): lr vs val loss."""
    trials = [t for t in study.get_trials(deepcopy=False) if _shown_value(t) is not None and t.params]
    keys = list(dict.fromkeys(k for t in trials for k in t.params))
    if not keys:
        return
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for state, marker in ((TrialState.COMPLETE, "o"), (TrialState.PRUNED, "x")):
            chosen = [t for t in trials if t.state == state and key in t.params]
            ax.scatter([t.params[key] for t in chosen], [_shown_value(t) for t in chosen], marker=marker,
                       label=state.name.lower())
        distribution = trials[0].distributions.get(key)
        if getattr(distribution, "log", False):
            ax.set_xscale("log")
        ax.set(xlabel=key, ylabel=metric)
        ax.legend()
    fig.suptitle(f"{study.study_name}: {metric} by parameter")
    _save(fig, path)


def _shown_value(trial: FrozenTrial) -> float | None:
    if trial.state == TrialState.COMPLETE:
        value = trial.value
    elif trial.state == TrialState.PRUNED and trial.intermediate_values:
        value = trial.intermediate_values[max(trial.intermediate_values)]
    else:
        return None
    return value if value is not None and math.isfinite(value) else None


def _save(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)

