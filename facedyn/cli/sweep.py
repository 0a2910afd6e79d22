"""Tune each training stage's learning rate with Optuna: facedyn-sweep (or python sweep.py) [sweep.<key>=<value> ...] [<train override> ...]

`sweep.*` keys set the sweep (facedyn/conf/sweep/default.yaml, or `sweep=<name>` for facedyn/conf/sweep/<name>.yaml); every
other `key=value` is a training override that each trial composes with, exactly as train.py takes it.
Rerunning the same command resumes the sweep; starting it on several machines against one
`sweep.storage=<database URL>` shares the work. Results: <sweep.root>/<sweep.study_name>/ (summary.md).
"""

from __future__ import annotations

import logging
import sys

from facedyn.cli.errors import user_errors
from facedyn.sweep.config import SweepConfigError, split_args


def main(argv: list[str] | None = None) -> int:
    """Run the sweep the arguments (default: sys.argv[1:]) describe; the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if any(arg in ("-h", "--help") for arg in argv):
        print(__doc__)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from facedyn.sweep import runner
    from facedyn.sweep.trial import SweepError, SweepInterrupted

    try:
        args = split_args(argv)
        sweep_dir = runner.run(runner.prepare(args.sweep, args.train_overrides))
    except SweepConfigError as exc:
        print(f"sweep.py: {exc}", file=sys.stderr)
        return 2
    except (SweepInterrupted, KeyboardInterrupt):
        print("sweep.py: interrupted; rerun the same command to resume (the trial cut short is retried)",
              file=sys.stderr)
        return 130
    except (SweepError, *user_errors()) as exc:
        print(f"sweep.py: error: {exc}", file=sys.stderr)
        return 1
    print(f"sweep finished: {sweep_dir / 'summary.md'}")
    print((sweep_dir / "best_overrides.txt").read_text().strip())
    return 0

