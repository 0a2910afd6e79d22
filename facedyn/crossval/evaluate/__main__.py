"""python -m facedyn.crossval.evaluate: see facedyn.cli.evaluate."""

import sys

from facedyn.cli.evaluate import main

sys.exit(main())
