"""The clinic's folder layout: find the sample folders under a dataset root and the files they hold.

    <root>/<expression>/<video>_<frame>/optical_flow.jpg
                                       /expression_landmarks.npy
                                       /baseline_landmarks.npy
                                       /expression_g_column.json

Expressions are whatever folders lie under the root; <video> and <frame> are the parts of the sample
folder name before and after its last "_". Hidden entries (".*") and stray files are ignored.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple, Optional, Sequence

from facedyn.data.errors import DataError

FLOW_FILE = "optical_flow.jpg"
EXPRESSION_LANDMARKS_FILE = "expression_landmarks.npy"
BASELINE_LANDMARKS_FILE = "baseline_landmarks.npy"
LABELS_FILE = "expression_g_column.json"
SAMPLE_FILES = (FLOW_FILE, EXPRESSION_LANDMARKS_FILE, BASELINE_LANDMARKS_FILE, LABELS_FILE)
ROOT_NOT_SET = "data.root is not set; point it at the dataset folder: data.root=/path/to/dataset"
LAYOUT_HINT = f"expected <root>/<expression>/<video>_<frame>/{{{', '.join(SAMPLE_FILES)}}}"


class SampleFolder(NamedTuple):
    expression: str
    name: str  # "<video>_<frame>"
    path: str
    file_stats: tuple[tuple[str, int, int], ...]  # (file name, size, mtime_ns) of the sample files present

    @property
    def relative(self) -> str:
        return f"{self.expression}/{self.name}"

    @property
    def missing_files(self) -> list[str]:
        present = {name for name, _, _ in self.file_stats}
        return [name for name in SAMPLE_FILES if name not in present]

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def video_and_frame(self) -> Optional[tuple[str, str]]:
        """The folder name split at its last "_", or None when either part would be empty."""
        video, sep, frame = self.name.rpartition("_")
        return (video, frame) if sep and video and frame else None


def _subfolders(path: str) -> list[tuple[str, str]]:
    """(name, path) of the non-hidden folders in `path`, sorted by name."""
    try:
        with os.scandir(path) as entries:
            return sorted((e.name, e.path) for e in entries if not e.name.startswith(".") and e.is_dir())
    except OSError as exc:
        raise DataError(f"cannot list the dataset folder {path}: {exc.strerror or exc}") from None


def _file_stats(folder: str, dir_fd: Optional[int]) -> tuple[tuple[str, int, int], ...]:
    """(name, size, mtime_ns) of the sample files in `folder` (relative to dir_fd when given).

    Runs 4x per sample on every start (the cache key), so it is kept lean: a stat relative to the open
    expression folder saves the kernel walking the whole path each time.
    """
    stats = []
    for name in SAMPLE_FILES:
        try:
            st = os.stat(f"{folder}/{name}", dir_fd=dir_fd)
        except FileNotFoundError:
            continue
        except OSError:  # present but not stat-able: the reader reports why it cannot be read
            stats.append((name, -1, -1))
            continue
        stats.append((name, st.st_size, st.st_mtime_ns))
    return tuple(stats)


def _sample_folders(expression: str, expression_dir: str) -> list[SampleFolder]:
    if os.stat not in os.supports_dir_fd:
        return [SampleFolder(expression, name, path, _file_stats(path, None)) for name, path in _subfolders(expression_dir)]
    dir_fd = os.open(expression_dir, os.O_RDONLY)
    try:
        return [SampleFolder(expression, name, path, _file_stats(name, dir_fd)) for name, path in _subfolders(expression_dir)]
    finally:
        os.close(dir_fd)


def check_root(root: str | os.PathLike | None) -> Path:
    if root is None or str(root).strip() == "":
        raise DataError(ROOT_NOT_SET)
    path = Path(root).expanduser()
    if not path.exists():
        raise DataError(f"dataset root {path} does not exist (data.root)")
    if not path.is_dir():
        raise DataError(f"dataset root {path} is not a folder (data.root)")
    return path


def scan(root: Path, expressions: Optional[Sequence[str]] = None) -> list[SampleFolder]:
    """Every sample folder under `root` (sorted), restricted to `expressions` when given."""
    expression_dirs = dict(_subfolders(str(root)))
    if expressions is not None:
        missing = [name for name in expressions if name not in expression_dirs]
        if missing:
            raise DataError(
                f"expression folder(s) {', '.join(missing)} not found under {root} (data.expressions); "
                f"present: {', '.join(expression_dirs) or 'none'}"
            )
        expression_dirs = {name: expression_dirs[name] for name in expressions}
    if not expression_dirs:
        raise DataError(f"dataset root {root} holds no expression folders; {LAYOUT_HINT}")
    if any((root / name / FLOW_FILE).is_file() for name in expression_dirs):
        raise DataError(
            f"{root} looks like one expression folder (its subfolders hold {FLOW_FILE}); "
            f"point data.root at the folder above it; {LAYOUT_HINT}"
        )
    folders = [folder for expression, path in expression_dirs.items() for folder in _sample_folders(expression, path)]
    if not folders:
        raise DataError(f"dataset root {root} holds no sample folders; {LAYOUT_HINT}")
    return folders
