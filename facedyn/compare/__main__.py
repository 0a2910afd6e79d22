"""python -m facedyn.compare: the command line of facedyn.cli.compare."""

import sys

from facedyn.cli.compare import main

sys.exit(main())
