"""Tune each training stage's learning rate with Optuna: facedyn-sweep (or python sweep.py) [sweep.<key>=<value> ...] [<train override> ...]

`sweep.*` keys set the sweep (facedyn/conf/sweep/default.yaml, or `sweep=<name>` for facedyn/conf/sweep/<name>.yaml); every
other `key=value` is a training override that each trial composes with, exactly as train.py takes it.
Rerunning the same command resumes the sweep; starting it on several machines against one
`sweep.storage=<database URL>` shares the work. Results: <sweep.root>/<sweep.study_name>/ (summary.md).
"""

from __future__ import annotations

import sys

from facedyn.cli import arguments
from facedyn.cli.errors import user_errors
from facedyn.sweep.config import SweepConfigError


def main(argv: list[str] | None = None) -> int:
    """Run the sweep the arguments (default: sys.argv[1:]) describe; the exit status."""
    argv = arguments(argv, __doc__)
    if argv is None:
        return 0
    from facedyn.sweep import task
    from facedyn.sweep.trial import SweepError, SweepInterrupted

    try:
        sweep_dir = task.run(argv)
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


if __name__ == "__main__":  # python -m facedyn.cli.sweep: how the local launcher starts its workers
    sys.exit(main())
