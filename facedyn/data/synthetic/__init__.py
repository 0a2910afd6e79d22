"""The built-in synthetic dataset: rendered faces with graded palsy, in the training layout."""

from facedyn.data.synthetic.config import EXPRESSIONS, PRESETS, SyntheticConfig, preset
from facedyn.data.synthetic.generator import MARKER, default_root, ensure_dataset, generate_dataset

__all__ = ["EXPRESSIONS", "MARKER", "PRESETS", "SyntheticConfig", "default_root", "ensure_dataset",
           "generate_dataset", "preset"]
