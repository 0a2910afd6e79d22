"""Train facedyn: `python train.py` runs all five stages; `python train.py stage=2b optimizer.lr=1e-3` one.

The same as the console script `facedyn-train` (facedyn/cli/train.py). See README.md for the commands.
"""

from facedyn.cli.train import main

if __name__ == "__main__":
    main()
