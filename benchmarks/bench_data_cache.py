"""Decoding the dataset vs loading the cache, and how long a stage-1 epoch waits for batches.

    .venv/bin/python benchmarks/bench_data_cache.py [--root DATASET] [--repeats 7] [--workers 0 1]

Without --root it uses the default synthetic dataset (generated into the user cache on first use).
Figures (medians over --repeats runs of facedyn.data.prepare_data, each in this process):
  cold, files cached by the OS : cache off, every file read and decoded (the files were read just before)
  cold, files not cached by OS : the same after evicting the files from the OS page cache (first run after boot)
  first run                    : cache on, decode + write the cache
  warm                         : cache on, the cache is valid (stat every file for the key, map the arrays)
Then one stage-1 epoch per worker count: torchvision resnet18(num_classes=2) on the augmented training flow
images, batch 32, forward + backward + Adam step; the share of the epoch spent waiting for the next batch.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facedyn.data.config import DataConfig  # noqa: E402
from facedyn.data.dataset import make_loader  # noqa: E402
from facedyn.data.layout import SAMPLE_FILES, scan  # noqa: E402
from facedyn.data.prepare import PreparedData, prepare_data  # noqa: E402

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


def _timed(cfg: DataConfig, before=None) -> tuple[float, float, PreparedData]:
    """(wall seconds, CPU seconds of this process, data) of one prepare_data call."""
    if before is not None:
        before()
    wall, cpu = time.perf_counter(), time.process_time()
    data = prepare_data(cfg, None, log=logging.getLogger("bench"))
    return time.perf_counter() - wall, time.process_time() - cpu, data


def _timed_scan(root: Path) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    scan(root)
    return time.perf_counter() - wall, time.process_time() - cpu


def _medians(cfg: DataConfig, repeats: int, before=None) -> tuple[float, float]:
    runs = [_timed(cfg, before)[:2] for _ in range(repeats)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def _epoch_wait_share(data: PreparedData, batch_size: int, workers: int) -> tuple[float, float, int]:
    """(epoch seconds, share waiting for batches, batches) of one stage-1 training epoch."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=2)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = make_loader(data.make_dataset(data.train_indices, augment=True), batch_size, shuffle=True, epoch=0, num_workers=workers)
    waiting, batches = 0.0, 0
    started = time.perf_counter()
    iterator = iter(loader)
    while True:
        asked = time.perf_counter()
        batch = next(iterator, None)
        waiting += time.perf_counter() - asked
        if batch is None:
            break
        loss = (model(batch["flow"]) - batch["target"]).pow(2).mul(batch["target_valid"]).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        batches += 1
    total = time.perf_counter() - started
    return total, waiting / total, batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", help="a dataset folder in the clinic's layout (default: the synthetic dataset)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--workers", type=int, nargs="*", default=[0, 1], help="DataLoader worker counts to time")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    if not os.environ.get("FACEDYN_LANDMARKER") and SHARED_BUNDLE.is_file():
        os.environ["FACEDYN_LANDMARKER"] = str(SHARED_BUNDLE)

    with tempfile.TemporaryDirectory(prefix="facedyn-bench-cache-") as cache_dir:
        cfg = DataConfig(kind="folder", root=args.root) if args.root else DataConfig()
        cfg.cache_dir = cache_dir
        cfg.cache = False
        started = time.perf_counter()
        data = _timed(cfg)[2]  # generates the synthetic dataset on first use; reads every file once
        root, n = data.root, len(data.samples)
        print(f"dataset: {root} ({n} samples, {len(set(data.samples.video))} videos); first read {time.perf_counter() - started:.1f} s")
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")

        figures = {"cold, files cached by the OS": _medians(cfg, args.repeats)}
        if _evict_from_page_cache(root):
            figures["cold, files not cached by OS"] = _medians(cfg, args.repeats, before=lambda: _evict_from_page_cache(root))
        cfg.cache = True
        figures["first run (decode + write)"] = _timed(cfg)[:2]
        figures["warm (cache)"] = warm = _medians(cfg, args.repeats)

        print(f"\nload of {n} samples, median of {args.repeats} (first run: once); wall and CPU time of this process:")
        for name, (wall, cpu) in figures.items():
            print(f"  {name:30s}: {wall * 1e3:8.1f} ms wall {cpu * 1e3:8.1f} ms CPU")
        scans = [_timed_scan(root) for _ in range(args.repeats)]
        print(f"  of warm, listing + stat of all {len(SAMPLE_FILES) * n} sample files (the cache key): "
              f"{statistics.median(w for w, _ in scans) * 1e3:.1f} ms wall {statistics.median(c for _, c in scans) * 1e3:.1f} ms CPU")
        for name in ("cold, files cached by the OS", "cold, files not cached by OS"):
            if name in figures:
                print(f"  warm vs {name}: {figures[name][0] / warm[0]:.1f}x (wall), {figures[name][1] / warm[1]:.1f}x (CPU); goal >= 20x")

        data = _timed(cfg)[2]
        print(f"\nstage-1 epoch: resnet18(num_classes=2), batch {args.batch_size}, {len(data.train_indices)} augmented training samples")
        for workers in args.workers:
            total, share, batches = _epoch_wait_share(data, args.batch_size, workers)
            print(f"  num_workers={workers}: epoch {total:6.1f} s ({batches} batches), waiting for batches {share:6.1%}")


if __name__ == "__main__":
    main()
