"""Choosing, ordering and writing the comparison's rows: filters, sort, the printed table and its CSV."""

from __future__ import annotations

import csv
import io
from typing import Sequence

from facedyn.compare.rows import COLUMNS, Run
from facedyn.config import override_key
from facedyn.runs.results import format_number

MAX_CELL = 60


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

