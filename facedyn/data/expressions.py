"""The expression vocabulary a model is conditioned on, and each sample's index in it.

The expression of a sample is known (its folder). A model that uses it takes it as an index into its own
`model.expressions` list; any other folder name gets the index len(vocabulary), the model's slot for
"another expression", so a model still grades data with an expression it was not told about.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

# Sunnybrook's five voluntary movements, as the synthetic generator names its folders.
SUNNYBROOK_EXPRESSIONS: tuple[str, ...] = ("eye_close", "smile", "brow_raise", "snarl", "lip_pucker")


def expression_indices(names: Sequence[str], vocabulary: Sequence[str]) -> np.ndarray:
    """(N,) int64: each name's position in `vocabulary`, len(vocabulary) for names not in it."""
    position = {name: i for i, name in enumerate(vocabulary)}
    return np.array([position.get(str(name), len(vocabulary)) for name in names], dtype=np.int64)
