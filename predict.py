"""Grade patients with a trained run: `python predict.py [run=<run>] data.root=<dataset>` (or videos=<clips>).

The same as the console script `facedyn-predict` (facedyn/cli/predict.py). See README.md for the commands.
"""

from facedyn.cli.predict import main

if __name__ == "__main__":
    main()
