"""Figures for people: training curves across stages, per-stage losses, confusion matrices."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facedyn.utils.io import atomic_path
from facedyn.metrics import MAX_GRADE


def _pyplot():
    """matplotlib's pyplot, imported when a figure is drawn (2.5 s of every process's start otherwise)."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on servers
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)


def training_curves(history: list[dict], path: Path, kept_epochs: dict[str, int] | None = None) -> None:
    """All stages on one epoch axis: train and val loss, val accuracy; stage boundaries and each stage's
    kept epoch (the weights it handed on) marked."""
    fig, (loss_ax, acc_ax) = _pyplot().subplots(2, 1, figsize=(9, 6.5), sharex=True)
    x = np.arange(1, len(history) + 1)
    loss_ax.plot(x, [r["train_loss"] for r in history], label="train loss", color="tab:blue")
    loss_ax.plot(x, [r["val_loss"] for r in history], label="val loss", color="tab:orange")
    loss_ax.set_yscale("log")
    loss_ax.set_ylabel("loss (scaled MSE)")
    for key, label in (("val_acc_dynamics", "dynamics"), ("val_acc_synkinesis", "synkinesis"), ("val_acc_both", "both")):
        acc_ax.plot(x, [r.get(key, np.nan) for r in history], label=f"val accuracy: {label}")
    acc_ax.set_ylabel("accuracy (rounded grades)")
    acc_ax.set_xlabel("epoch (all stages)")
    acc_ax.set_ylim(0, 1)
    start = 0
    for i, row in enumerate(history + [{"stage": None}]):
        if i == len(history) or (i > 0 and row["stage"] != history[i - 1]["stage"]):
            if i < len(history):
                for ax in (loss_ax, acc_ax):
                    ax.axvline(i + 0.5, color="grey", linestyle=":", linewidth=1)
            loss_ax.text((start + i) / 2 + 0.5, 1.01, f"stage {history[i - 1]['stage']}", ha="center",
                         va="bottom", transform=loss_ax.get_xaxis_transform(), fontsize=9)
            start = i
    kept = [i + 1 for i, r in enumerate(history) if (kept_epochs or {}).get(r["stage"]) == r["epoch"]]
    if kept:
        loss_ax.scatter(kept, [history[i - 1]["val_loss"] for i in kept], marker="*", s=120, color="tab:red",
                        zorder=3, label="kept epoch")
    loss_ax.legend(loc="upper right")
    acc_ax.legend(loc="lower right", fontsize=8)
    _save(fig, path)


def stage_losses(history: list[dict], path: Path, kept_epochs: dict[str, int] | None = None) -> None:
    stages = list(dict.fromkeys(r["stage"] for r in history))
    fig, axes = _pyplot().subplots(1, len(stages), figsize=(3.2 * len(stages), 3), squeeze=False)
    for ax, stage in zip(axes[0], stages):
        rows = [r for r in history if r["stage"] == stage]
        epochs = [r["epoch"] for r in rows]
        ax.plot(epochs, [r["train_loss"] for r in rows], marker=".", label="train")
        ax.plot(epochs, [r["val_loss"] for r in rows], marker=".", label="val")
        kept = [r for r in rows if (kept_epochs or {}).get(stage) == r["epoch"]]
        if kept:
            ax.scatter([kept[0]["epoch"]], [kept[0]["val_loss"]], marker="*", s=120, color="tab:red", zorder=3,
                       label="kept")
        ax.set_title(f"stage {stage}")
        ax.set_xlabel("epoch")
    axes[0][0].set_ylabel("loss")
    axes[0][0].legend()
    fig.tight_layout()
    _save(fig, path)


def confusion(matrix: list[list[int]], score: str, path: Path) -> None:
    matrix_array = np.asarray(matrix)
    grades = range(MAX_GRADE[score] + 1)
    fig, ax = _pyplot().subplots(figsize=(4.2, 3.8))
    ax.imshow(matrix_array, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix_array):
        ax.text(j, i, str(count), ha="center", va="center",
                color="white" if count > matrix_array.max() / 2 else "black")
    ax.set_xticks(list(grades))
    ax.set_yticks(list(grades))
    ax.set_xlabel("predicted grade (rounded)")
    ax.set_ylabel("true grade")
    ax.set_title(f"{score} (validation frames)")
    _save(fig, path)


def bland_altman(pred: np.ndarray, true: np.ndarray, limits: dict[str, float], score: str, path: Path) -> None:
    """Difference (predicted − true) against the mean of both, per video and expression, with the bias and
    the 95 % limits of agreement (facedyn.metrics.bland_altman)."""
    pred, true = np.asarray(pred, float), np.asarray(true, float)
    fig, ax = _pyplot().subplots(figsize=(5.2, 3.8))
    ax.scatter((pred + true) / 2, pred - true, s=18, alpha=0.7, color="tab:blue", edgecolors="none")
    for key, label, style in (("bias", "bias", "-"), ("loa_low", "−1.96 SD", "--"), ("loa_high", "+1.96 SD", "--")):
        value = limits[key]
        if np.isfinite(value):
            ax.axhline(value, color="tab:red" if key == "bias" else "grey", linestyle=style, linewidth=1)
            ax.text(1.0, value, f" {label} {value:+.2f}", transform=ax.get_yaxis_transform(), va="center", fontsize=8)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_xlim(-0.25, MAX_GRADE[score] + 0.25)
    ax.set_xlabel(f"mean of predicted and true {score} grade")
    ax.set_ylabel("predicted − true")
    ax.set_title(f"Bland–Altman: {score} (n = {len(pred)} videos × expressions)")
    _save(fig, path)
