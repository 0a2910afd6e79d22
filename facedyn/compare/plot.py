"""The compared runs' validation curves in one figure."""

from __future__ import annotations

import math
from pathlib import Path

from facedyn.compare.rows import Run, number
from facedyn.utils.io import atomic_path


def plot_curves(runs: list[Run], metric: str, path: Path) -> bool:
    """Each run's per-epoch `metric` (epochs counted across its stages); False when no run has one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = [(run, [number(e.get(metric)) for e in run.curve]) for run in runs]
    curves = [(run, values) for run, values in curves if any(v is not None for v in values)]
    if not curves:
        return False
    fig, ax = plt.subplots(figsize=(8, 5))
    for run, values in curves:
        ax.plot(range(1, len(values) + 1), [math.nan if v is None else v for v in values], marker=".",
                label=run.row["run"])
    ax.set(xlabel="epoch (across stages)", ylabel=metric, title=f"{metric} per epoch")
    if len(curves) <= 15:
        ax.legend(fontsize="small")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return True

