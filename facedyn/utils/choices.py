"""Enum-like config fields: OmegaConf checks a value against the members and names them in its error."""

from __future__ import annotations

from enum import Enum


class Choice(str, Enum):
    """A config option that compares, prints and saves as its plain string (`Precision.bf16 == "bf16"`),
    so configs saved to YAML and read back without the schema behave the same."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @classmethod
    def names(cls) -> list[str]:
        return [member.value for member in cls]
