"""Optuna sweeps over the staged training pipeline (see sweep.py)."""
