"""Clinic videos + grading sheet -> the training layout: `python prepare.py videos=... grades=... out=...`.

The same as the console script `facedyn-prepare` (facedyn/cli/prepare.py). See README.md for the commands.
"""

from facedyn.cli.prepare import main

if __name__ == "__main__":
    main()
