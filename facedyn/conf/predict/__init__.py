"""predict.py's config, in a folder of its own: beside train.py's config groups `stage=3` would select a group."""
