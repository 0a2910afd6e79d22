"""The clinic's folder layout: find the sample folders under a dataset root and the files they hold.

    <root>/<expression>/<video>_<frame>/optical_flow.jpg
                                       /expression_landmarks.npy
                                       /baseline_landmarks.npy
                                       /expression_g_column.json
                                       /baseline_face.jpg, expression_face.jpg   (optional)

The two face images, when present, are the rest and the expression frame cut to the flow image's field of
view (the expression frame registered onto the rest frame's pose): what a person looks at beside the flow
image. The model never reads them. Expressions are whatever folders lie under the root; <video> and
<frame> are the parts of the sample folder name before and after its last "_". Hidden entries (".*") and
stray files are ignored. Sample folders are found with `scan` and written with `write_sample` (prepare.py
and the synthetic generator).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from stat import S_ISLNK
from typing import Any, Mapping, NamedTuple, Optional, Sequence

import cv2
import numpy as np

from facedyn.data.errors import DataError

FLOW_FILE = "optical_flow.jpg"
EXPRESSION_LANDMARKS_FILE = "expression_landmarks.npy"
BASELINE_LANDMARKS_FILE = "baseline_landmarks.npy"
LABELS_FILE = "expression_g_column.json"
# Optional, for people: the frames the flow image was computed from, over the same field of view.
BASELINE_FACE_FILE = "baseline_face.jpg"
EXPRESSION_FACE_FILE = "expression_face.jpg"
SAMPLE_FILES = (FLOW_FILE, EXPRESSION_LANDMARKS_FILE, BASELINE_LANDMARKS_FILE, LABELS_FILE)
ROOT_NOT_SET = "data.root is not set; point it at the dataset folder: data.root=/path/to/dataset"
_SUFFIXES = tuple(f"/{name}" for name in SAMPLE_FILES)
LAYOUT_HINT = f"expected <root>/<expression>/<video>_<frame>/{{{', '.join(SAMPLE_FILES)}}}"


class SampleFolder(NamedTuple):
    expression: str
    name: str  # "<video>_<frame>"
    path: str
    file_stats: tuple[Optional[tuple[int, int]], ...]  # per SAMPLE_FILES: (size, mtime_ns), None when missing

    @property
    def relative(self) -> str:
        return f"{self.expression}/{self.name}"

    @property
    def missing_files(self) -> list[str]:
        return [name for name, stat in zip(SAMPLE_FILES, self.file_stats) if stat is None]

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


def _file_stat(path: str, dir_fd: Optional[int]) -> Optional[tuple[int, int]]:
    """(size, mtime_ns) of a file (of its target, for a symlink); None when missing; (-1, -1) when not stat-able."""
    try:
        st = os.stat(path, dir_fd=dir_fd)
    except FileNotFoundError:  # missing, or a dangling link: the reader reports it missing
        return None
    except OSError:  # present but not stat-able: the reader reports why it cannot be read
        return (-1, -1)
    return st.st_size, st.st_mtime_ns


def _file_stats(paths: list[str], dir_fd: Optional[int]) -> list[Optional[tuple[int, int]]]:
    """_file_stat of every path (relative to dir_fd when given), in order.

    This runs for every sample file on every start (the cache key) and is most of a warm start, so the
    common case takes a lean path: one lstat per file (cheaper than stat, and relative to the open
    expression folder, which spares the kernel walking the whole path); only a symlink, rare, costs a
    second call, and a missing or unreadable file sends the folder down the careful path.
    """
    lstat = os.lstat
    try:
        results = [lstat(path, dir_fd=dir_fd) for path in paths]
    except OSError:
        return [_file_stat(path, dir_fd) for path in paths]
    return [_file_stat(path, dir_fd) if S_ISLNK(st.st_mode) else (st.st_size, st.st_mtime_ns)
            for path, st in zip(paths, results)]


def _sample_folders(expression: str, expression_dir: str) -> list[SampleFolder]:
    subfolders = _subfolders(expression_dir)
    use_fd = os.stat in os.supports_dir_fd
    dir_fd = os.open(expression_dir, os.O_RDONLY) if use_fd else None
    try:
        stats = _file_stats([(name if use_fd else path) + suffix for name, path in subfolders for suffix in _SUFFIXES], dir_fd)
    finally:
        if dir_fd is not None:
            os.close(dir_fd)
    n = len(SAMPLE_FILES)
    return [SampleFolder(expression, name, path, tuple(stats[i * n:i * n + n])) for i, (name, path) in enumerate(subfolders)]


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


def write_sample(folder: Path, flow_rgb: np.ndarray, expression_landmarks: np.ndarray,
                 baseline_landmarks: np.ndarray, labels: Optional[dict], jpeg_quality: int,
                 extra_json: Optional[Mapping[str, Any]] = None,
                 faces: Optional[tuple[np.ndarray, np.ndarray]] = None) -> None:
    """Write one sample folder `<root>/<expression>/<video>_<frame>`: the flow image (uint8 RGB) as JPEG,
    both landmark sets as .npy, the labels (None: no label file, a sample to predict), `extra_json`
    (file name -> value) as one JSON line each, and `faces` (the rest and the expression frame over the flow
    image's field of view, BGR or grey) as JPEG.

    Written into a hidden folder beside it and renamed into place (replacing a folder of that name), so a
    killed writer never leaves a half-written sample where the reader looks.
    """
    folder = Path(folder)
    tmp = folder.parent / f".tmp-{folder.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    images = {FLOW_FILE: cv2.cvtColor(flow_rgb, cv2.COLOR_RGB2BGR),
              **(dict(zip((BASELINE_FACE_FILE, EXPRESSION_FACE_FILE), faces)) if faces is not None else {})}
    for name, image in images.items():
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        if not ok:
            raise OSError(f"could not encode {folder / name}")
        (tmp / name).write_bytes(jpeg.tobytes())
    np.save(tmp / EXPRESSION_LANDMARKS_FILE, expression_landmarks)
    np.save(tmp / BASELINE_LANDMARKS_FILE, baseline_landmarks)
    files = {**({LABELS_FILE: labels} if labels is not None else {}), **(extra_json or {})}
    for name, value in files.items():
        (tmp / name).write_text(json.dumps(value) + "\n")
    if folder.exists():
        shutil.rmtree(folder)
    os.rename(tmp, folder)
