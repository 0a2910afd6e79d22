"""Command-line entry points (console scripts facedyn-train, facedyn-sweep; train.py and sweep.py call them)."""
