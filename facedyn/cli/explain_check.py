"""`python -m facedyn.explain.check [run=<run folder or checkpoint>] [out=<folder>] [root=<synthetic dataset>]`

Runs the sanity and localisation checks of facedyn.explain.checks on a trained run and writes
`<out>/explain_check.json` and the same figures as a markdown table, `<out>/explain_check.md`. The data are
the run's own validation videos (never trained on) unless `root=` names another synthetic dataset (its
labels must name the paralysed side). Settings are CheckConfig's fields as key=value; a wrong one, or data
without the paralysed side, is one line.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from facedyn.cli.errors import dotlist_settings, user_errors
from facedyn.explain.check import JSON_FILE, MARKDOWN_FILE, CheckConfig, markdown, run_check
from facedyn.inference.predictor import RunError


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = dotlist_settings(CheckConfig, argv)
    if cfg is None:
        return 2
    try:
        report = run_check(cfg, "python -m facedyn.explain.check " + " ".join(argv))
    except (*user_errors(), RunError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(markdown(report))
    print(f"written: {Path(cfg.out).expanduser().resolve() / JSON_FILE} and {MARKDOWN_FILE} ({report['seconds']:.0f} s)")
    return 0
