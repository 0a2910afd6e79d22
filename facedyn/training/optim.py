"""Optimizer and learning-rate schedule from conf/optimizer and conf/scheduler."""

from __future__ import annotations

import math

import torch
from torch import nn

from facedyn.training.config import OptimizerConfig, SchedulerConfig


def make_optimizer(cfg: OptimizerConfig, parameters: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    if cfg.name == "adam":
        return torch.optim.Adam(parameters, lr=lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    if cfg.name == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise ValueError(f"optimizer.name must be adam, adamw or sgd, not {cfg.name!r}")


def make_scheduler(cfg: SchedulerConfig, optimizer: torch.optim.Optimizer, total_steps: int,
                   warmup_fraction: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """Stepped after every optimizer step over the stage's `total_steps`.

    A linear warm-up over the first `warmup_fraction` of the steps (a stage setting) keeps Adam's first, badly scaled
    updates from wrecking pretrained weights (the blendshape model in stage 2b); then cosine decays the
    lr to lr·min_factor (cosine) or holds it (constant).
    """
    if cfg.name not in ("cosine", "constant"):
        raise ValueError(f"scheduler.name must be cosine or constant, not {cfg.name!r}")
    warmup = int(warmup_fraction * total_steps)
    decay_steps = max(total_steps - warmup - 1, 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if cfg.name == "constant":
            return 1.0
        progress = min(step - warmup, decay_steps) / decay_steps
        return cfg.min_factor + (1 - cfg.min_factor) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
