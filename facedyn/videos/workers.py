"""The prepare pool's worker processes: they die with their parent and keep the C++ libraries' messages
out of the console."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

import cv2

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent() -> None:
    """On Linux, a worker is killed with its parent: a killed prepare.py leaves no orphan writing into
    `out` after the lock is gone (a rerun could otherwise race it)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(1)


def init_worker(threads: int, log_file: str) -> None:
    """Pool initializer: OpenCV's own threads only when the pool does not already fill the CPUs; the C++
    libraries' messages (MediaPipe's start-up lines, FFmpeg's complaints about bad files) go to `log_file`
    instead of the console, where the report says per clip what went wrong."""
    _die_with_parent()
    cv2.setNumThreads(threads)
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
