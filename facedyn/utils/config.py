"""Config helpers every schema uses: enum-like options, the one-line config error, and its common checks."""

from __future__ import annotations

from enum import Enum
from typing import Any


class ConfigError(ValueError):
    """A config that composes but makes no sense; the message names the key."""


class Choice(str, Enum):
    """A config option that compares, prints and saves as its plain string (`Precision.bf16 == "bf16"`),
    so configs saved to YAML and read back without the schema behave the same. OmegaConf checks a value
    against the members and names them in its error."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @classmethod
    def names(cls) -> list[str]:
        return [member.value for member in cls]


def one_of(key: str, value: Any, choices: type[Choice]) -> None:
    """ConfigError unless `value` is one of the options of `choices`."""
    if str(value) not in choices.names():
        raise ConfigError(f"{key}={value!r} is not one of: {', '.join(choices.names())}")


def positive(key: str, value: Any) -> None:
    if not value > 0:
        raise ConfigError(f"{key}={value:g} must be positive")
