"""Wall time of one small sweep with 1, then K worker processes sharing its study, measured in one run.

    .venv/bin/python benchmarks/bench_sweep_workers.py [--workers 2] [--trials 4] [--epochs 8] [--stage 2b]

The same sweep (random sampler, fixed seed, no pruning; tiny generated dataset) runs as `python sweep.py`
with sweep.workers_per_device=1 and then =K, each in a fresh folder, so both find the same trials; prints
each wall time, trials per hour, the ratio and the load average before and after (on a shared machine a
change of load shows there). On a GPU, K workers share it; on a CPU, each gets cores / K torch threads.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from record import REPO, Recording


def sweep(root: Path, workers: int, args: argparse.Namespace) -> float:
    command = [sys.executable, str(REPO / "sweep.py"), f"sweep.root={root}", "sweep.study_name=bench",
               f"sweep.stages=[{args.stage}]", f"sweep.trials_per_stage={args.trials}", "sweep.sampler.name=random",
               "sweep.sampler.seed=0", "sweep.pruner.name=none", f"sweep.workers_per_device={workers}",
               f"paths.output_dir={root / 'outputs'}", f"data.cache_dir={args.cache}",
               f"data.synthetic.root={args.cache / 'dataset'}", "data.synthetic.videos=10",
               "data.synthetic.frames_per_video=2", "model.flow.weights=none", "trainer.progress=false",
               f"stages.s{args.stage}.init=none", f"stages.s{args.stage}.epochs={args.epochs}"]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    seconds = time.perf_counter() - started
    done = json.loads((root / "bench" / "summary.json").read_text())["stages"][args.stage]["n_complete"]
    assert done == args.trials, done
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--stage", default="2b", help="a loader-fed stage (1, 2b, 4) shows compute; 2a/3 take ms")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        args.cache = Path(tmp) / "cache"
        sweep(Path(tmp) / "warm-up", 1, argparse.Namespace(**{**vars(args), "trials": 1, "epochs": 1}))
        rec = Recording(__doc__)
        one = sweep(Path(tmp) / "one", 1, args)
        many = sweep(Path(tmp) / "many", args.workers, args)
    rec.table(f"A sweep of {args.trials} trials x {args.epochs} epochs of stage {args.stage}, tiny synthetic data",
              ["workers", "seconds", "trials per hour"],
              [[workers, round(seconds, 1), round(3600 * args.trials / seconds, 1)] for workers, seconds in ((1, one), (args.workers, many))])
    rec.figures(speed_up=round(one / many, 2))
    rec.note(f"{args.workers} workers against 1: {one / many:.2f}x")
    rec.save()


if __name__ == "__main__":
    main()
