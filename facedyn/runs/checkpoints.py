"""Checkpoints: written atomically, read with weights_only=True, and found for `init_from`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from facedyn.utils.io import atomic_path
from facedyn.runs import CHECKPOINT_DIR, stage_checkpoint

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """No usable starting weights; the message names init_from."""


def save(path: Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which and why
        raise CheckpointError(f"{path}: not a readable facedyn checkpoint ({exc})") from None


def state_mismatch(model: torch.nn.Module, state: dict[str, Any]) -> str | None:
    """Why the state dict `state` does not fit `model` (counts and a first example of each kind), or None."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if not (missing or unexpected or shapes):
        return None
    parts = [f"{len(missing)} missing (e.g. {missing[0]})" if missing else "",
             f"{len(unexpected)} unexpected (e.g. {unexpected[0]})" if unexpected else "",
             f"{len(shapes)} of another shape (e.g. {shapes[0]}: checkpoint vs model)" if shapes else ""]
    return ", ".join(p for p in parts if p)


def load_weights(model: torch.nn.Module, path: Path, setting: str) -> dict[str, Any]:
    """Load the checkpoint at `path` into `model`; a CheckpointError naming `setting` (e.g. init_from=…) when
    its weights were made for another model shape (model.landmark_hidden, share_weights, flow.arch...)."""
    payload = load(path)
    state = payload.get("model") if isinstance(payload, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{setting}: {path} is not a facedyn checkpoint (no model weights in it)")
    problem = state_mismatch(model, state)
    if problem:
        raise CheckpointError(f"{setting}: {path} holds weights of another model shape ({problem}); "
                              f"its run's model.* settings differ from this run's")
    model.load_state_dict(state)
    return payload


def find_init_checkpoint(init_from: str | None, previous_stage: str, output_dir: Path) -> Path:
    """The checkpoint a single-stage run starts from: `init_from` (run folder or file), else the newest
    run under output_dir that finished the stage before."""
    if init_from:
        path = Path(init_from).expanduser()
        if path.is_file():
            return path
        if path.is_dir():
            candidate = stage_checkpoint(path, previous_stage)
            if candidate.is_file():
                return candidate
            raise CheckpointError(f"init_from={init_from}: that run has no checkpoint of stage {previous_stage} ({candidate})")
        raise CheckpointError(f"init_from={init_from}: no such run folder or checkpoint file")
    candidates = sorted(Path(output_dir).glob(f"**/{CHECKPOINT_DIR}/stage_{previous_stage}.pt"),
                        key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise CheckpointError(
            f"stage {previous_stage} must run before this stage: no run under {output_dir} finished it. "
            f"Run it first, or pass init_from=<run folder or checkpoint>."
        )
    log.info("Starting from the newest run that finished stage %s: %s (set init_from to choose another)",
             previous_stage, candidates[-1])
    return candidates[-1]
