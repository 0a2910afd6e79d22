"""k-fold cross-validation by video of any training config: `python -m facedyn.crossval folds=5 <overrides>`.

plan: the command's settings and variants; layout: the folder; runner: the fold runs; summary: the mean ± std
table; residuals: the out-of-fold residuals an ensemble of the fold models is calibrated on
(facedyn.inference.ensemble); evaluate: that ensemble measured on data no fold model saw.
"""
