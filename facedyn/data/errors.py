"""The one error type of the data layer: a one-line message for people, printed without a traceback."""

from __future__ import annotations


class DataError(RuntimeError):
    """The dataset or its settings cannot be used; the message names the path or setting and the problem."""
