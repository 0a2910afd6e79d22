"""python -m facedyn.explain.check: see facedyn.cli.explain_check."""

import sys

from facedyn.cli.explain_check import main

sys.exit(main(sys.argv[1:]))
