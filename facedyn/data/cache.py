"""A compact cache of a decoded dataset, so later runs skip decoding thousands of small files.

One folder per (dataset root, reader settings, files): the `Samples` arrays and the bad-sample list stored
back to back in one file (arrays.bin, each array 64-byte aligned) described by index.json (dtype, shape,
offset of each). The file is memory-mapped copy-on-write once on load and the arrays are views into it:
loading costs next to nothing, DataLoader workers share the pages, and the arrays are writable like
decoded ones without ever changing the cache.
Its name carries a hash of every sample file's path, size and modification time, and of the labels files'
content (they are tiny, and a grade edited in place with its size and modification time kept, e.g. by a
tool that restores timestamps, must not be read from the cache with its old value): any change to the
dataset gives a new name, so a stale cache is never read; stale ones are deleted. The folder is built
under a temporary name and renamed into place (atomic), and a file lock keeps parallel runs (a sweep)
from decoding the same dataset twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
from filelock import FileLock, Timeout

from facedyn.data.layout import LABELS_FILE, SampleFolder
from facedyn.data.reader import BadSample, ReadResult
from facedyn.data.settings import ReaderSettings
from facedyn.data.samples import Samples

CACHE_FORMAT = 4
_BAD_PATH, _BAD_REASON, _RESIZED, _HEAD_MOTION = "_bad_path", "_bad_reason", "_resized", "_head_motion"
INDEX_FILE, ARRAYS_FILE = "index.json", "arrays.bin"
_ALIGN = 64


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def cache_location(cache_root: Path, root: Path, folders: Sequence[SampleFolder], settings: ReaderSettings) -> Path:
    """The cache folder for this root, these settings and exactly these files (sizes, mtimes)."""
    setting_key = _digest(json.dumps([CACHE_FORMAT, str(root.resolve()), settings.as_dict()], sort_keys=True))
    # pickle: a deterministic byte string of plain tuples, made ~10x faster than their repr()
    files = hashlib.sha256(pickle.dumps([(f.expression, f.name, f.file_stats) for f in folders], protocol=5))
    for folder in folders:
        files.update(labels_content(folder.file(LABELS_FILE)))
    return cache_root / f"{root.name}-{setting_key}-{files.hexdigest()[:20]}"


def labels_content(path: str) -> bytes:
    """A labels file's content, length-prefixed (so file boundaries count); a marker when it cannot be read."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return b"-"
    return len(data).to_bytes(8, "little") + data


def _write_synced(path: Path, data: bytes | Sequence[np.ndarray]) -> None:
    with open(path, "wb") as fh:
        for part in [data] if isinstance(data, bytes) else data:
            fh.write(part if isinstance(part, bytes) else np.ascontiguousarray(part).reshape(-1).view(np.uint8))
        fh.flush()
        os.fsync(fh.fileno())


def _save(path: Path, result: ReadResult) -> None:
    arrays = result.samples.arrays()
    arrays[_BAD_PATH] = np.asarray([b.path for b in result.bad], dtype=str)
    arrays[_BAD_REASON] = np.asarray([b.reason for b in result.bad], dtype=str)
    arrays[_RESIZED] = np.asarray(result.resized)
    arrays[_HEAD_MOTION] = np.asarray(json.dumps(result.head_motion))  # the compensation's report (JSON null: none)
    index, parts, offset = {}, [], 0
    for name, array in arrays.items():
        index[name] = {"dtype": array.dtype.str, "shape": list(array.shape), "offset": offset}
        padding = -array.nbytes % _ALIGN
        parts += [array, bytes(padding)]
        offset += array.nbytes + padding
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        _write_synced(tmp / ARRAYS_FILE, parts)
        _write_synced(tmp / INDEX_FILE, json.dumps({"format": CACHE_FORMAT, "size": offset, "arrays": index}).encode())
        shutil.rmtree(path, ignore_errors=True)  # an unreadable cache being replaced
        os.rename(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _load(path: Path) -> ReadResult:
    """The cached result; ValueError when the folder's files are not a complete cache of this format."""
    try:
        index = json.loads((path / INDEX_FILE).read_bytes())
        entries, size = index["arrays"], index["size"]
        if index["format"] != CACHE_FORMAT or set(entries) != {*Samples.field_names(), _BAD_PATH, _BAD_REASON, _RESIZED, _HEAD_MOTION}:
            raise ValueError("not this version's set of arrays")
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{INDEX_FILE} is damaged ({exc.__class__.__name__})") from None
    if (path / ARRAYS_FILE).stat().st_size != size:
        raise ValueError(f"{ARRAYS_FILE} is not the {size} bytes {INDEX_FILE} lists")
    blob = np.memmap(path / ARRAYS_FILE, mode="c") if size else np.zeros(0, np.uint8)
    arrays = {}
    for name, entry in entries.items():
        dtype, shape, offset = np.dtype(entry["dtype"]), tuple(entry["shape"]), entry["offset"]
        count = int(np.prod(shape))
        if offset < 0 or offset + count * dtype.itemsize > size:
            raise ValueError(f"{name} lies outside {ARRAYS_FILE}")
        arrays[name] = blob[offset:offset + count * dtype.itemsize].view(dtype).reshape(shape)
    bad = [BadSample(str(p), str(r)) for p, r in zip(arrays[_BAD_PATH], arrays[_BAD_REASON])]
    samples = Samples.from_arrays(arrays)
    if len({len(array) for array in samples.arrays().values()}) != 1:
        raise ValueError("arrays of different lengths")
    try:
        head_motion = json.loads(str(arrays[_HEAD_MOTION]))
    except json.JSONDecodeError:
        raise ValueError(f"{_HEAD_MOTION} is damaged") from None
    return ReadResult(samples, bad, int(arrays[_RESIZED]), head_motion)


def _prefix(path: Path) -> str:
    """The part of a cache name naming root and settings, without the files' hash."""
    return path.name.rsplit("-", 1)[0]


def _remove_orphans(path: Path) -> None:
    """Delete temporary folders of writers of this cache that died mid-write (call with the lock held)."""
    for orphan in path.parent.glob(f".{_prefix(path)}-*.tmp"):
        shutil.rmtree(orphan, ignore_errors=True)


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
    lock = FileLock(str(path.parent / f"{_prefix(path)}.lock"))  # one per root and settings, kept in place
    result, damaged = _try_load(path, log)
    if result is not None:
        try:  # tidy up after a killed writer, unless another process is writing right now
            with lock.acquire(timeout=0):
                _remove_orphans(path)
        except Timeout:
            pass
        return result
    path.parent.mkdir(parents=True, exist_ok=True)
    with lock:
        _remove_orphans(path)
        if not damaged:
            result, _ = _try_load(path, log)  # another process may have built it meanwhile
        if result is None:
            result = build()
            _save(path, result)
            _remove_stale(path)
            log.info("data: cached %d decoded samples in %s", len(result.samples), path)
    return result
