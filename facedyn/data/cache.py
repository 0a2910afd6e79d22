"""A compact cache of a decoded dataset, so later runs skip decoding thousands of small files.

One folder of .npy files per (dataset root, reader settings): the `Samples` arrays and the bad-sample list.
The arrays are memory-mapped copy-on-write on load: loading costs next to nothing, DataLoader workers
share the pages, and the arrays are writable like decoded ones without ever changing the cache.
Its name carries a hash of every sample file's path, size and modification time: any change to the
dataset gives a new name, so a stale cache is never read; stale ones are deleted. The folder is built
under a temporary name and renamed into place (atomic), and a file lock keeps parallel runs (a sweep)
from decoding the same dataset twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
from filelock import FileLock

from facedyn.data.layout import SampleFolder
from facedyn.data.reader import BadSample, ReaderSettings, ReadResult
from facedyn.data.samples import Samples

CACHE_FORMAT = 2
_BAD_PATH, _BAD_REASON, _RESIZED = "_bad_path", "_bad_reason", "_resized"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def cache_location(cache_root: Path, root: Path, folders: Sequence[SampleFolder], settings: ReaderSettings) -> Path:
    """The cache folder for this root, these settings and exactly these files (sizes, mtimes)."""
    setting_key = _digest(json.dumps([CACHE_FORMAT, str(root.resolve()), settings.as_dict()], sort_keys=True))
    files_key = _digest(repr([(f.expression, f.name, f.file_stats) for f in folders]))
    return cache_root / f"{root.name}-{setting_key}-{files_key}"


def _save(path: Path, result: ReadResult) -> None:
    arrays = result.samples.arrays()
    arrays[_BAD_PATH] = np.asarray([b.path for b in result.bad], dtype=str)
    arrays[_BAD_REASON] = np.asarray([b.reason for b in result.bad], dtype=str)
    arrays[_RESIZED] = np.asarray(result.resized)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        for name, array in arrays.items():
            with open(tmp / f"{name}.npy", "wb") as fh:
                np.save(fh, array)
                fh.flush()
                os.fsync(fh.fileno())
        shutil.rmtree(path, ignore_errors=True)  # an unreadable cache being replaced
        os.rename(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _load(path: Path) -> ReadResult:
    arrays = {
        name: np.load(path / f"{name}.npy", mmap_mode="c", allow_pickle=False)
        for name in [*Samples.field_names(), _BAD_PATH, _BAD_REASON, _RESIZED]
    }
    bad = [BadSample(str(p), str(r)) for p, r in zip(arrays[_BAD_PATH], arrays[_BAD_REASON])]
    samples = Samples.from_arrays(arrays)
    if len({len(array) for array in samples.arrays().values()}) != 1:
        raise ValueError("arrays of different lengths")
    return ReadResult(samples, bad, int(arrays[_RESIZED]))


def _prefix(path: Path) -> str:
    """The part of a cache name naming root and settings, without the files' hash."""
    return path.name.rsplit("-", 1)[0]


def _remove_stale(path: Path) -> None:
    """Delete caches of the same root and settings made from older versions of the files."""
    for other in path.parent.glob(f"{_prefix(path)}-*"):
        if other != path and other.is_dir():
            shutil.rmtree(other, ignore_errors=True)


def _try_load(path: Path, log: logging.Logger) -> tuple[Optional[ReadResult], bool]:
    """(the cached result or None, whether a cache folder was there but unreadable)."""
    if not path.is_dir():
        return None, False
    try:
        result = _load(path)
    except (OSError, ValueError) as exc:
        log.warning("data: cache %s is unreadable (%s); rebuilding it", path, exc)
        return None, True
    log.info("data: loaded %d decoded samples from cache %s", len(result.samples), path)
    return result, False


def load_or_build(path: Path, build: Callable[[], ReadResult], log: logging.Logger) -> ReadResult:
    """The cached result at `path`, or `build()` written there (atomically, under a lock) and returned."""
    # A cache folder only ever appears complete (renamed into place), so reading needs no lock.
    result, damaged = _try_load(path, log)
    if result is not None:
        return result
    path.parent.mkdir(parents=True, exist_ok=True)
    # One lock per root and settings, kept in place: deleting a lock file others wait on breaks the lock.
    with FileLock(str(path.parent / f"{_prefix(path)}.lock")):
        if not damaged:
            result, _ = _try_load(path, log)  # another process may have built it meanwhile
        if result is None:
            result = build()
            _save(path, result)
            _remove_stale(path)
            log.info("data: cached %d decoded samples in %s", len(result.samples), path)
    return result
