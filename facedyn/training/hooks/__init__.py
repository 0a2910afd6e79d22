"""Per-epoch and per-step behaviour of a stage, one hook each (the events: facedyn.training.hooks.base):
best-epoch selection and patience (selection), checkpoints (checkpointing), the history and status
(history), weight averaging (ema), gradient clipping (grad_clip). The experiment tracker
(facedyn.training.tracking) and the sweep's pruning (facedyn.sweep.trial) are hooks too."""
