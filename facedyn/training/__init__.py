"""The trainer: `run(cfg, run_dir)` trains a config's stages into a run folder (facedyn.training.task).

Light on import (no torch) so that config schemas and command lines load fast; `run` loads on first use.
"""

from __future__ import annotations

from facedyn.utils.lazy import lazy_attributes

_LAZY = {"run": "facedyn.training.task"}

__all__ = [*_LAZY]

__getattr__ = lazy_attributes(__name__, _LAZY)
