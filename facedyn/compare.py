"""Compare training runs: python -m facedyn.compare [PATH ...] [--stage S] [--sweep NAME] [--sort COL] ...

Finds every run folder under the paths (default outputs/): train.py runs, Hydra multirun jobs, sweep
trials. A run folder is a folder holding run_status.json, config.yaml or training_history.json (see
facedyn/runs.py). Prints one row per run, writes the table as CSV and a plot of the runs' validation
curves. Half-written folders and folders of older versions are listed with a note, never skipped silently.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf

from facedyn.config import STAGE_ORDER, override_key
from facedyn.io import atomic_path, atomic_write_text
from facedyn.metrics import HEADLINE_METRICS
from facedyn.results import format_number
from facedyn.runs import find_run_dirs, owner_alive, read_run_files

# One name per column: the table's header, the CSV's, and what --columns and --sort take.
COLUMNS = ("when", "run", "kind", "sweep", "stage", "overrides", "epochs", "best_val_loss", "best_epoch",
           *HEADLINE_METRICS, "duration_s", "status", "note")
MAX_CELL = 60
RUN_NAME_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})_(\d{2}-\d{2}-\d{2})")


@dataclass
class Run:
    """One run folder as read from disk; `row` is its line of the table."""

    path: Path
    row: dict[str, Any]
    overrides: list[str] = field(default_factory=list)
    curve: list[dict] = field(default_factory=list)


def read_run(run_dir: Path, root: Path, defaults: DictConfig | None) -> Run:
    """A run folder's table row; whatever is missing or broken becomes an empty cell and a note."""
    files = read_run_files(run_dir)
    notes = list(files.problems)
    epochs = files.history
    final = (files.metrics or {}).get("final") if isinstance((files.metrics or {}).get("final"), dict) else None
    final = final or (epochs[-1] if epochs else {})
    best = min((e for e in epochs if _number(e.get("val_loss")) is not None),
               key=lambda e: e["val_loss"], default=None)
    kind, sweep = _kind(run_dir)
    row = {
        "when": _when(run_dir, files.status),
        "run": _relative(run_dir, root),
        "kind": kind,
        "sweep": sweep,
        "stage": _stage(files.config, files.status, epochs),
        "overrides": " ".join(_differing(files.overrides, files.config, defaults)),
        "epochs": len(epochs),
        "best_val_loss": _number(best["val_loss"]) if best else None,
        "best_epoch": f"{best.get('stage', '?')}:{best.get('epoch', '?')}" if best else None,
        **{key: _number(final.get(key)) for key in HEADLINE_METRICS},
        "duration_s": _duration(files.status, epochs),
        "status": _status(files.status, notes),
        "note": "; ".join(notes),
    }
    return Run(run_dir, row, files.overrides, epochs)


def _differing(overrides: list[str], config: DictConfig | None, defaults: DictConfig | None) -> list[str]:
    """The overrides that changed something: a value equal to the default is left out; the stage has its column."""
    kept = []
    for override in overrides:
        key = override_key(override)
        if key == "stage":
            continue
        if config is not None and defaults is not None and _same(config, defaults, key):
            continue
        kept.append(override)
    return kept


def _same(config: DictConfig, defaults: DictConfig, key: str) -> bool:
    try:
        ran_with = OmegaConf.select(config, key, default=None)
        default = OmegaConf.select(defaults, key, default=None)
    except Exception:  # a key OmegaConf cannot select (another version's config): keep the override
        return False
    return ran_with is not None and _plain(ran_with) == _plain(default)


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value) if isinstance(value, DictConfig) else value


def _kind(run_dir: Path) -> tuple[str, str]:
    parts = run_dir.resolve().parts
    if "trials" in parts[:-1]:
        at = len(parts) - 1 - parts[::-1].index("trials")
        if at >= 1 and at + 1 < len(parts):
            return "sweep trial", parts[at - 1]
    if "multirun" in parts[:-1]:
        return "multirun", ""
    return "run", ""


def _stage(config: DictConfig | None, status: dict | None, epochs: list[dict]) -> str:
    names: list[str] = []
    if config is not None and isinstance(config.get("stages"), DictConfig):
        names = [str(s.get("name", k)) for k, s in config.stages.items() if isinstance(s, DictConfig)]
    if not names:
        names = list(dict.fromkeys(str(e["stage"]) for e in epochs if "stage" in e))
    if not names and status and status.get("stage"):
        names = [str(status["stage"])]
    if tuple(sorted(names, key=_stage_order)) == STAGE_ORDER:
        return "all"
    return "+".join(sorted(names, key=_stage_order))


def _stage_order(name: str) -> int:
    return STAGE_ORDER.index(name) if name in STAGE_ORDER else len(STAGE_ORDER)


def _when(run_dir: Path, status: dict | None) -> str:
    started = _time(status.get("started")) if status else None
    if started is None:
        match = RUN_NAME_TIME.match(run_dir.name) or RUN_NAME_TIME.match(run_dir.parent.name)
        started = dt.datetime.strptime(" ".join(match.groups()), "%Y-%m-%d %H-%M-%S") if match else None
    if started is None:
        started = dt.datetime.fromtimestamp(run_dir.stat().st_mtime)
    return started.strftime("%Y-%m-%d %H:%M:%S")


def _time(text: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(text)) if text else None
    except ValueError:
        return None


def _duration(status: dict | None, epochs: list[dict]) -> float | None:
    if status:
        started, ended = _time(status.get("started")), _time(status.get("ended"))
        if started and ended and (started.tzinfo is None) == (ended.tzinfo is None):
            return round((ended - started).total_seconds(), 1)
    seconds = [_number(e.get("seconds")) for e in epochs]
    return round(sum(s for s in seconds if s is not None), 1) if any(s is not None for s in seconds) else None


def _status(status: dict | None, notes: list[str]) -> str:
    if status is None:
        return "incomplete"
    state = str(status.get("status", "unknown"))
    if state == "running" and not _still_running(status):
        notes.append(f"process {status.get('pid')} is gone")
        return "interrupted"
    return state


def _still_running(status: dict) -> bool:
    return owner_alive(status.get("pid"), status.get("host"))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve())) or "."
    except ValueError:
        return str(path)


def default_config() -> DictConfig | None:
    """train.py's defaults, to tell which overrides changed something; None when conf/ cannot compose."""
    try:
        from facedyn.config import compose

        return compose([])
    except Exception:  # an older or broken conf/: overrides are then shown as given
        return None


def select(runs: list[Run], stage: str | None, sweep: str | None, overrides: Sequence[str],
           status: str | None) -> list[Run]:
    """The runs that match every filter; an override filter `key=value` matches that override,
    `key` any override of that key."""
    chosen = []
    for run in runs:
        if stage and run.row["stage"] != stage:
            continue
        if sweep and run.row["sweep"] != sweep:
            continue
        if status and run.row["status"] != status:
            continue
        if not all(_has_override(run.overrides, wanted) for wanted in overrides):
            continue
        chosen.append(run)
    return chosen


def _has_override(overrides: list[str], wanted: str) -> bool:
    if "=" in wanted:
        return wanted in overrides
    return any(override_key(o) == wanted for o in overrides)


def sort_runs(runs: list[Run], column: str) -> list[Run]:
    """Sorted by a column (`-column`: descending); empty cells last either way."""
    descending = column.startswith("-")
    name = column.lstrip("-")
    if name not in COLUMNS:
        raise ValueError(f"--sort {column}: no such column (columns: {', '.join(COLUMNS)})")
    present = [r for r in runs if r.row[name] not in (None, "")]
    missing = [r for r in runs if r.row[name] in (None, "")]
    return sorted(present, key=lambda r: r.row[name], reverse=descending) + missing


def table_text(runs: list[Run], columns: Sequence[str]) -> str:
    """The table as printed: long cells (overrides, notes) cut at MAX_CELL characters; the CSV has them whole."""
    headers = list(columns)
    cells = [[_cut(format_number(r.row[c], missing="-")) for c in columns] for r in runs]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def table_csv(runs: list[Run]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["path", *COLUMNS], lineterminator="\n")
    writer.writeheader()
    for run in runs:
        writer.writerow({"path": str(run.path), **{k: ("" if v is None else v) for k, v in run.row.items()}})
    return buffer.getvalue()


def plot_curves(runs: list[Run], metric: str, path: Path) -> bool:
    """Each run's per-epoch `metric` (epochs counted across its stages); False when no run has one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = [(run, [_number(e.get(metric)) for e in run.curve]) for run in runs]
    curves = [(run, values) for run, values in curves if any(v is not None for v in values)]
    if not curves:
        return False
    fig, ax = plt.subplots(figsize=(8, 5))
    for run, values in curves:
        ax.plot(range(1, len(values) + 1), [math.nan if v is None else v for v in values], marker=".",
                label=run.row["run"])
    ax.set(xlabel="epoch (across stages)", ylabel=metric, title=f"{metric} per epoch")
    if len(curves) <= 15:
        ax.legend(fontsize="small")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return True


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m facedyn.compare", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, default=[Path("outputs")],
                        help="folders to search for runs (default: outputs/)")
    parser.add_argument("--stage", help="only runs of this stage (1, 2a, 2b, 3, 4, all)")
    parser.add_argument("--sweep", help="only the trials of this sweep (its study name)")
    parser.add_argument("--override", action="append", default=[], metavar="KEY[=VALUE]",
                        help="only runs with this override (repeatable)")
    parser.add_argument("--status", help="only runs in this status (finished, interrupted, failed, pruned, ...)")
    parser.add_argument("--sort", default="when", help="column to sort by; --sort=-column sorts descending")
    parser.add_argument("--columns", help=f"comma-separated columns to print (of: {', '.join(COLUMNS)})")
    parser.add_argument("--metric", default="val_loss", help="the per-epoch metric the plot shows")
    parser.add_argument("--out", type=Path, default=Path("outputs") / "compare",
                        help="where runs.csv and val_curves.png go (default: outputs/compare)")
    parser.add_argument("--no-files", action="store_true", help="print the table only")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    columns = args.columns.split(",") if args.columns else list(COLUMNS)
    unknown = [c for c in columns if c not in COLUMNS] + ([args.sort] if args.sort.lstrip("-") not in COLUMNS else [])
    if unknown:
        print(f"compare: unknown column(s) {', '.join(unknown)}; columns: {', '.join(COLUMNS)}", file=sys.stderr)
        return 2
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        print(f"compare: no such folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    defaults = default_config()
    root = args.paths[0] if len(args.paths) == 1 else Path.cwd()
    runs = [read_run(d, root, defaults) for d in find_run_dirs(args.paths)]
    runs = sort_runs(select(runs, args.stage, args.sweep, args.override, args.status), args.sort)
    print(table_text(runs, columns) if runs else "no runs found")
    if runs and not args.no_files:
        atomic_write_text(args.out / "runs.csv", table_csv(runs))
        plotted = plot_curves(runs, args.metric, args.out / "val_curves.png")
        print(f"\n{len(runs)} runs; table: {args.out / 'runs.csv'}"
              + (f"; curves: {args.out / 'val_curves.png'}" if plotted else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
