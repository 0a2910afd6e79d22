"""The one exception of video preparation: a user error, reported as one line naming the file or setting."""

from __future__ import annotations


class PrepareError(ValueError):
    """Bad settings, an unreadable grading sheet or an unusable output folder; the message says what to fix."""
