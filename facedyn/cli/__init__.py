"""Command-line entry points (console scripts facedyn-train, facedyn-sweep; train.py and sweep.py call them)."""

from __future__ import annotations

import logging
import sys
from typing import Optional


def arguments(argv: Optional[list[str]], doc: Optional[str]) -> Optional[list[str]]:
    """The command's arguments (default: sys.argv[1:]) with logging set up; None once -h/--help printed doc."""
    argv = sys.argv[1:] if argv is None else argv
    if any(arg in ("-h", "--help") for arg in argv):
        print(doc)
        return None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return argv
