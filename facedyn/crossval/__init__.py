"""k-fold cross-validation by video of any training config: `python -m facedyn.crossval folds=5 <overrides>`.

plan: the command's settings and variants; runner: the fold runs; summary: the mean ± std table.
"""
