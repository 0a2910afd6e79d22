"""Compare training runs: facedyn-compare (or python -m facedyn.compare) [PATH ...] [--stage S] [--sweep NAME]
[--sort COL] ...

Finds every run folder under the paths (default outputs/): train.py runs, Hydra multirun jobs, sweep
trials. A run folder is a folder holding run_status.json, config.yaml or training_history.json (see
facedyn.runs). Prints one row per run, writes the table as CSV and a plot of the runs' validation curves.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from facedyn.compare.plot import plot_curves
from facedyn.compare.rows import COLUMNS, default_config, read_run
from facedyn.compare.table import select, sort_runs, table_csv, table_text
from facedyn.runs import find_run_dirs
from facedyn.utils.io import atomic_write_text


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="facedyn-compare", description=__doc__.splitlines()[0])
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

