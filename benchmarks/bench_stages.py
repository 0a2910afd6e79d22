"""Seconds per epoch of each training stage on the default synthetic dataset, and the 2a/3 speed-up.

    .venv/bin/python benchmarks/bench_stages.py [--epochs 3] [overrides ...]

Runs the default five-stage pipeline (every stage `--epochs` epochs) into a temporary folder and prints,
per stage: the median epoch time (training pass + validation), samples/s of the training pass, the
one-time cost of precomputing the frozen branches (stages 2a and 3), and the ratio of a stage-4 epoch
to a 2a and a 3 epoch (goal: ≥ 10×). Extra arguments are Hydra overrides (e.g. trainer.threads=2).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facedyn import training  # noqa: E402
from facedyn.config import compose  # noqa: E402
from facedyn.runs import stage_checkpoint  # noqa: E402
from facedyn.training.stages import FINAL_STAGE, STAGE_ORDER, stage_key  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    overrides = ["trainer.progress=false", *[f"stages.{stage_key(s)}.epochs={args.epochs}" for s in STAGE_ORDER],
                 *args.overrides]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose([f"paths.output_dir={tmp}", *overrides])
        run_dir = Path(tmp) / "bench"
        training.run(cfg, run_dir, overrides)
        history = json.loads((run_dir / "training_history.json").read_text())["epochs"]
        stage_rows = torch.load(stage_checkpoint(run_dir, FINAL_STAGE), weights_only=True)["progress"]["stage_rows"]
        metrics = json.loads((run_dir / "metrics.json").read_text())
    train_samples = metrics["train_samples"]
    print(f"\ndefault dataset: {train_samples} training / {metrics['val_samples']} validation samples; "
          f"torch threads {torch.get_num_threads()}, cores {os.cpu_count()}, device {cfg.trainer.device}")
    print(f"{'stage':<6}{'median epoch s':>15}{'train samples/s':>17}{'precompute s':>14}")
    median = {}
    for stage in STAGE_ORDER:
        seconds = [r["seconds"] for r in history if r["stage"] == stage]
        median[stage] = statistics.median(seconds)
        precompute = next(r["precompute_seconds"] for r in stage_rows if r["stage"] == stage)
        print(f"{stage:<6}{median[stage]:>15.3f}{train_samples / median[stage]:>17.0f}{precompute:>14.2f}")
    for stage in ("2a", "3"):
        print(f"stage-4 epoch / stage-{stage} epoch: {median['4'] / median[stage]:.0f}x (goal >= 10x)")
    print(f"whole run: {metrics['seconds']:.1f} s")


if __name__ == "__main__":
    main()
