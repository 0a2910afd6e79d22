"""Decoding the dataset vs loading the cache, and how long a stage-1 epoch waits for batches.

    .venv/bin/python benchmarks/bench_data_cache.py [--root DATASET] [--repeats 7] [--epochs 3] [overrides ...]

Without --root it uses the default synthetic dataset (generated into the user cache on first use).
Figures (medians over --repeats runs of facedyn.data.load_training_data, each in this process):
  cold, files cached by the OS : cache off, every file read and decoded (the files were read just before)
  cold, files not cached by OS : the same after evicting the files from the OS page cache (first run after boot)
  first run                    : cache on, decode + write the cache
  warm                         : cache on, the cache is valid (stat every file and read every labels file
                                 for the key, map the arrays); the key's parts are timed on their own too
Then stage 1 as `python train.py stage=1` runs it (--epochs epochs, the flow branch on augmented training
batches, validation after each epoch), once with batches loaded in the training loop (data.prefetch_batches=0
data.num_workers=0) and once as configured (default: worker processes, 1 on CPU and up to 8 on CUDA, and 4
batches taken ahead by a background thread): the median epoch time and
the share of it spent waiting for training and validation batches, as training_history.json records it.
Extra arguments are Hydra overrides for those runs (e.g. data.num_workers=2, trainer.device=cuda);
--no-stage1 measures the dataset load only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facedyn import training  # noqa: E402
from facedyn.config import compose  # noqa: E402
from facedyn.data.config import DataConfig  # noqa: E402
from facedyn.data.cache import labels_content  # noqa: E402
from facedyn.data.layout import LABELS_FILE, SAMPLE_FILES, scan  # noqa: E402
from facedyn.data.loading import TrainingData, load_training_data  # noqa: E402
from facedyn.runs import HISTORY_FILE  # noqa: E402
from record import Recording  # noqa: E402

SHARED_BUNDLE = Path(__file__).resolve().parents[2] / "shared" / "models" / "face_landmarker.task"


def _evict_from_page_cache(root: Path) -> bool:
    """Ask the OS to drop the dataset's file pages (no privileges needed for clean pages)."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for folder in scan(root):
        for name in SAMPLE_FILES:
            fd = os.open(folder.file(name), os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
    return True


def _timed(cfg: DataConfig, before=None) -> tuple[float, float, TrainingData]:
    """(wall seconds, CPU seconds of this process, data) of one load_training_data call."""
    if before is not None:
        before()
    wall, cpu = time.perf_counter(), time.process_time()
    data = load_training_data(cfg, None, log=logging.getLogger("bench"))
    return time.perf_counter() - wall, time.process_time() - cpu, data


def _timed_scan(root: Path) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    scan(root)
    return time.perf_counter() - wall, time.process_time() - cpu


def _timed_label_key(root: Path) -> tuple[float, float]:
    """What the labels' content adds to the key: reading and hashing every labels file."""
    folders = scan(root)
    wall, cpu = time.perf_counter(), time.process_time()
    digest = hashlib.sha256()
    for folder in folders:
        digest.update(labels_content(folder.file(LABELS_FILE)))
    return time.perf_counter() - wall, time.process_time() - cpu


def _medians(cfg: DataConfig, repeats: int, before=None) -> tuple[float, float]:
    runs = [_timed(cfg, before)[:2] for _ in range(repeats)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def _stage1_epochs(extra: list[str], epochs: int) -> tuple[list[float], list[float], str]:
    """(epoch seconds, seconds waiting for batches, device) of a stage-1 training run with these overrides."""
    overrides = ["stage=1", f"stages.s1.epochs={epochs}", "trainer.progress=false", *extra]
    with tempfile.TemporaryDirectory(prefix="facedyn-bench-stage1-") as tmp:
        cfg = compose([f"paths.output_dir={tmp}", *overrides])
        run_dir = Path(tmp) / "run"
        training.run(cfg, run_dir, overrides)
        history = json.loads((run_dir / HISTORY_FILE).read_text())["epochs"]
    device = "cuda" if torch.cuda.is_available() and cfg.trainer.device != "cpu" else "cpu"
    return [r["seconds"] for r in history], [r["data_wait_seconds"] for r in history], device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", help="a dataset folder in the clinic's layout (default: the synthetic dataset)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=3, help="stage-1 epochs per run")
    parser.add_argument("--no-stage1", action="store_true", help="measure the dataset load only")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for the stage-1 runs")
    args = parser.parse_args()
    rec = Recording(__doc__)
    if not os.environ.get("FACEDYN_LANDMARKER") and SHARED_BUNDLE.is_file():
        os.environ["FACEDYN_LANDMARKER"] = str(SHARED_BUNDLE)

    with tempfile.TemporaryDirectory(prefix="facedyn-bench-cache-") as cache_dir:
        cfg = DataConfig(kind="folder", root=args.root) if args.root else DataConfig()
        cfg.cache_dir = cache_dir
        cfg.cache = False
        started = time.perf_counter()
        data = _timed(cfg)[2]  # generates the synthetic dataset on first use; reads every file once
        root, n = data.root, len(data.samples)
        rec.note(f"dataset: {'the default synthetic dataset' if not args.root else root} ({n} samples, "
                 f"{len(set(data.samples.video))} videos); first read {time.perf_counter() - started:.1f} s; "
                 f"{torch.get_num_threads()} torch threads")

        figures = {"cold, files cached by the OS": _medians(cfg, args.repeats)}
        if _evict_from_page_cache(root):
            figures["cold, files not cached by OS"] = _medians(cfg, args.repeats, before=lambda: _evict_from_page_cache(root))
        cfg.cache = True
        figures["first run (decode + write)"] = _timed(cfg)[:2]
        figures["warm (cache)"] = warm = _medians(cfg, args.repeats)

        scans = [_timed_scan(root) for _ in range(args.repeats)]
        labels = [_timed_label_key(root) for _ in range(args.repeats)]
        rows = [[name, round(wall * 1e3, 1), round(cpu * 1e3, 1), round(figures[name][0] / warm[0], 1)]
                for name, (wall, cpu) in figures.items()]
        rows += [[f"of warm: listing and stat of the {len(SAMPLE_FILES) * n} sample files (the key)",
                  round(statistics.median(w for w, _ in scans) * 1e3, 1), round(statistics.median(c for _, c in scans) * 1e3, 1), None],
                 [f"of warm: reading and hashing the {n} labels files (the key's content part)",
                  round(statistics.median(w for w, _ in labels) * 1e3, 1), round(statistics.median(c for _, c in labels) * 1e3, 1), None]]
        rec.table(f"Loading {n} samples, median of {args.repeats} (first run: once), this process",
                  ["load", "ms wall", "ms CPU", "x warm (wall)"], rows)

    if not args.no_stage1:
        in_the_loop = ["data.prefetch_batches=0", "data.num_workers=0"]
        rows = []
        for name, extra in (("loading in the training loop", in_the_loop), ("as configured", [])):
            seconds, waits, device = _stage1_epochs([*args.overrides, *extra], args.epochs)
            shares = [w / s for w, s in zip(waits, seconds)]
            rows.append([name, device, round(statistics.median(seconds), 2), f"{statistics.median(shares):.2%}",
                         ", ".join(f"{x:.2%}" for x in shares)])
        rec.table(f"Stage 1, {args.epochs} epochs per run (overrides: {' '.join(args.overrides) or 'none'})",
                  ["loading", "device", "median epoch s", "waiting for batches", "per epoch"], rows)
    rec.save()


if __name__ == "__main__":
    main()
