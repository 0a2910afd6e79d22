"""The decoded-dataset cache: reused while the files are unchanged, rebuilt when any of them changes."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import time
from pathlib import Path

import numpy as np

from facedyn.data import load_training_data
from facedyn.data.cache import CACHE_FORMAT
from facedyn.data.layout import FLOW_FILE, LABELS_FILE
from tests.test_data_fixtures import dataset_root, folder_config, write_sample  # noqa: F401


def _cache_folders(cache: Path) -> list[Path]:
    return sorted(p for p in cache.iterdir() if p.is_dir())


def _assert_same_samples(a, b) -> None:
    for name, array in a.samples.arrays().items():
        np.testing.assert_array_equal(array, getattr(b.samples, name), err_msg=name)


def test_second_run_reads_the_cache_not_the_files(dataset_root: Path, tmp_path: Path, caplog) -> None:
    cfg = folder_config(dataset_root, tmp_path / "cache")
    first = load_training_data(cfg, tmp_path / "run1")
    (cached,) = _cache_folders(tmp_path / "cache")

    caplog.clear()
    with caplog.at_level("INFO"):
        second = load_training_data(cfg, tmp_path / "run2")
    assert any("loaded 60 decoded samples from cache" in r.getMessage() for r in caplog.records)
    assert not any("decoding" in r.getMessage() for r in caplog.records)
    _assert_same_samples(first, second)
    assert _cache_folders(tmp_path / "cache") == [cached]
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_bad_samples_are_reported_from_the_cache_too(dataset_root: Path, tmp_path: Path) -> None:
    (dataset_root / "smile" / "patient01_0000" / LABELS_FILE).write_text('{"dynamics": 9, "synkinesis": 0}')
    cfg = folder_config(dataset_root, tmp_path / "cache")
    load_training_data(cfg, tmp_path / "run1")
    load_training_data(cfg, tmp_path / "run2")
    assert (tmp_path / "run1" / "bad_samples.csv").read_text() == (tmp_path / "run2" / "bad_samples.csv").read_text()
    assert "outside 0..5" in (tmp_path / "run2" / "bad_samples.csv").read_text()


def test_a_changed_file_rebuilds_the_cache_and_drops_the_stale_one(dataset_root: Path, tmp_path: Path) -> None:
    cfg = folder_config(dataset_root, tmp_path / "cache")
    load_training_data(cfg, None)
    (old,) = _cache_folders(tmp_path / "cache")

    # Same size, new content and modification time: a relabelled sample.
    labels_file = dataset_root / "smile" / "patient02_0001" / LABELS_FILE
    labels = json.loads(labels_file.read_text())
    labels["dynamics"] = (labels["dynamics"] + 1) % 6
    labels_file.write_text(json.dumps(labels))
    os.utime(labels_file, ns=(labels_file.stat().st_atime_ns, labels_file.stat().st_mtime_ns + 1_000_000_000))
    data = load_training_data(cfg, None)
    row = int(np.flatnonzero(data.samples.folder == "smile/patient02_0001")[0])
    assert data.samples.dynamics[row] == labels["dynamics"]
    (new,) = _cache_folders(tmp_path / "cache")
    assert new != old


def test_a_changed_symlink_target_rebuilds_the_cache(dataset_root: Path, tmp_path: Path) -> None:
    # Datasets assembled by linking files from elsewhere: the key follows the link to the file itself.
    labels_file = dataset_root / "smile" / "patient02_0001" / LABELS_FILE
    target = tmp_path / "elsewhere" / "labels.json"
    target.parent.mkdir()
    target.write_text('{"dynamics": 1, "synkinesis": 0}')
    labels_file.unlink()
    labels_file.symlink_to(target)
    cfg = folder_config(dataset_root, tmp_path / "cache")

    def dynamics() -> int:
        data = load_training_data(cfg, None)
        return int(data.samples.dynamics[np.flatnonzero(data.samples.folder == "smile/patient02_0001")[0]])

    assert dynamics() == 1
    target.write_text('{"dynamics": 4, "synkinesis": 0}')
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 1_000_000_000))
    assert dynamics() == 4
    target.unlink()  # a dangling link is a missing file
    data = load_training_data(cfg, None)
    assert len(data.samples) == 59 and "missing" in data.bad_samples[0].reason


def test_added_and_removed_samples_rebuild_the_cache(dataset_root: Path, tmp_path: Path) -> None:
    cfg = folder_config(dataset_root, tmp_path / "cache")
    assert len(load_training_data(cfg, None).samples) == 60
    write_sample(dataset_root, "smile", "patient50", "0000", np.random.default_rng(9))
    assert len(load_training_data(cfg, None).samples) == 61
    (dataset_root / "smile" / "patient50_0000" / FLOW_FILE).unlink()
    data = load_training_data(cfg, None)
    assert len(data.samples) == 60 and len(data.bad_samples) == 1


def test_reader_settings_are_part_of_the_key(dataset_root: Path, tmp_path: Path) -> None:
    (dataset_root / "smile" / "patient01_0000" / LABELS_FILE).write_text('{"dynamics": 0, "synkinesis": 0}')
    plain = load_training_data(folder_config(dataset_root, tmp_path / "cache"), None)
    ignoring = load_training_data(folder_config(dataset_root, tmp_path / "cache", **{"labels.dynamics_ignore": [0]}), None)
    assert plain.samples.dynamics_valid.all() and not ignoring.samples.dynamics_valid.all()
    assert len(_cache_folders(tmp_path / "cache")) == 2


def test_an_unreadable_cache_is_rebuilt(dataset_root: Path, tmp_path: Path, caplog) -> None:
    cfg = folder_config(dataset_root, tmp_path / "cache")
    first = load_training_data(cfg, None)
    (cached,) = _cache_folders(tmp_path / "cache")
    arrays, index = (cached / "arrays.bin").read_bytes(), (cached / "index.json").read_text()
    damages = {
        "truncated arrays": lambda: (cached / "arrays.bin").write_bytes(arrays[: len(arrays) // 2]),
        "garbage index": lambda: (cached / "index.json").write_bytes(b"garbage"),
        "missing index": lambda: (cached / "index.json").unlink(),
        "index of another format": lambda: (cached / "index.json").write_text(index.replace(f'"format": {CACHE_FORMAT}', f'"format": {CACHE_FORMAT - 1}')),
        "array outside the file": lambda: (cached / "index.json").write_text(
            index.replace('"offset": 0', f'"offset": {len(arrays)}', 1)),
    }
    for name, damage in damages.items():
        damage()
        with caplog.at_level(logging.WARNING):
            _assert_same_samples(first, load_training_data(cfg, None))
        assert "unreadable" in caplog.text, name
        caplog.clear()
        assert (cached / "arrays.bin").read_bytes() == arrays, f"{name}: not rebuilt"
        _assert_same_samples(first, load_training_data(cfg, None))


def test_cache_off_decodes_without_writing(dataset_root: Path, tmp_path: Path) -> None:
    data = load_training_data(folder_config(dataset_root, tmp_path / "cache", cache=False), None)
    assert len(data.samples) == 60 and not (tmp_path / "cache").exists()


def _prepare_and_report(cfg, queue) -> None:
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    log = logging.getLogger(f"facedyn.data.test.{os.getpid()}")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    data = load_training_data(cfg, None, log)
    queue.put((records, int(data.samples.dynamics.sum())))


def test_parallel_runs_decode_the_dataset_once(dataset_root: Path, tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    cfg = folder_config(dataset_root, tmp_path / "cache")
    workers = [context.Process(target=_prepare_and_report, args=(cfg, queue)) for _ in range(3)]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    decoded = [records for records, _ in results if any("decoding" in message for message in records)]
    assert len(decoded) == 1
    assert len({total for _, total in results}) == 1
    assert len(_cache_folders(tmp_path / "cache")) == 1


def test_a_label_edited_in_place_with_size_and_mtime_kept_is_read_anew(dataset_root: Path, tmp_path: Path) -> None:
    # A grade corrected by a tool that restores timestamps: stat alone cannot see it; the content key does.
    cfg = folder_config(dataset_root, tmp_path / "cache")
    load_training_data(cfg, None)
    labels_file = dataset_root / "smile" / "patient02_0001" / LABELS_FILE
    before = labels_file.stat()
    labels = json.loads(labels_file.read_text())
    labels["dynamics"] = (labels["dynamics"] + 1) % 6
    labels_file.write_text(json.dumps(labels))
    os.utime(labels_file, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (labels_file.stat().st_size, labels_file.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    data = load_training_data(cfg, None)
    row = int(np.flatnonzero(data.samples.folder == "smile/patient02_0001")[0])
    assert data.samples.dynamics[row] == labels["dynamics"]


def _die_while_writing(cache_root: str, dataset_root: str, ready) -> None:
    """A cache writer that gets as far as its temporary folder (half a cache written), then waits to be killed."""
    import facedyn.data.cache as cache

    def write_half_and_wait(fh_path, data):
        Path(fh_path).write_bytes(b"\0" * 1_000_000)
        ready.set()
        time.sleep(600)

    cache._write_synced = write_half_and_wait
    load_training_data(folder_config(Path(dataset_root), Path(cache_root)), None)


def test_a_killed_cache_writer_leaves_no_orphan_behind(dataset_root: Path, tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    writer = context.Process(target=_die_while_writing, args=(str(tmp_path / "cache"), str(dataset_root), ready))
    writer.start()
    assert ready.wait(timeout=120)
    os.kill(writer.pid, signal.SIGKILL)
    writer.join()
    orphans = [p for p in (tmp_path / "cache").iterdir() if p.name.endswith(".tmp")]
    assert len(orphans) == 1 and (orphans[0] / "arrays.bin").stat().st_size == 1_000_000
    cfg = folder_config(dataset_root, tmp_path / "cache")
    load_training_data(cfg, None)  # builds the cache, and removes what the dead writer left
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.endswith(".tmp")]
    orphans[0].mkdir()  # another dead writer's leftover, found by a run that only reads the cache
    load_training_data(cfg, None)
    assert not orphans[0].exists()
