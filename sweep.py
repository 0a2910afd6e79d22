"""Tune each training stage's learning rate with Optuna: `python sweep.py [sweep.<key>=<value> ...] [<train override> ...]`.

The same as the console script `facedyn-sweep` (facedyn/cli/sweep.py, whose docstring `--help` prints).
"""

import sys

from facedyn.cli.sweep import main

if __name__ == "__main__":
    sys.exit(main())
