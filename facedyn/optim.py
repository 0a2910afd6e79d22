"""Optimizer and per-epoch learning-rate schedule from conf/optimizer and conf/scheduler."""

from __future__ import annotations

import math

import torch
from torch import nn

from facedyn.config import OptimizerConfig, SchedulerConfig


def make_optimizer(cfg: OptimizerConfig, parameters: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    if cfg.name == "adam":
        return torch.optim.Adam(parameters, lr=lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    if cfg.name == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise ValueError(f"optimizer.name must be adam, adamw or sgd, not {cfg.name!r}")


def make_scheduler(cfg: SchedulerConfig, optimizer: torch.optim.Optimizer, epochs: int
                   ) -> torch.optim.lr_scheduler.LambdaLR:
    """Stepped once per epoch; cosine decays from the stage's lr to lr·min_factor over its epochs."""
    if cfg.name == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)
    if cfg.name == "cosine":
        span = max(epochs - 1, 1)
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda epoch: cfg.min_factor + (1 - cfg.min_factor) * 0.5 * (1 + math.cos(math.pi * min(epoch, span) / span)),
        )
    raise ValueError(f"scheduler.name must be cosine or constant, not {cfg.name!r}")
