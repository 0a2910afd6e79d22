"""What a stage trains: `requires_grad` per parameter group, and frozen groups kept in eval mode.

Eval mode matters as much as requires_grad: a frozen ResNet in train mode would still update its
BatchNorm running statistics.
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from facedyn.model import FaceDynModel


def apply_trainable(model: FaceDynModel, trainable: Sequence[str]) -> list[nn.Parameter]:
    """Set requires_grad by group; return the parameters that train."""
    parameters: list[nn.Parameter] = []
    for name, module in model.parameter_groups().items():
        train = name in trainable
        for parameter in module.parameters():
            parameter.requires_grad_(train)
            if train:
                parameters.append(parameter)
    return parameters


def set_train_mode(model: FaceDynModel, trainable: Sequence[str]) -> None:
    """model.train() for the groups that train, eval() for the frozen ones."""
    model.train()
    for name, module in model.parameter_groups().items():
        if name not in trainable:
            module.eval()
