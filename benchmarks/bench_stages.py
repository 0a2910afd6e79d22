"""Seconds per epoch of each training stage on the default synthetic dataset, and the 2a/3 speed-up.

    .venv/bin/python benchmarks/bench_stages.py [--epochs 3] [overrides ...]

Runs the default five-stage pipeline (every stage `--epochs` epochs) into a temporary folder and prints,
per stage: the median epoch time (training pass + validation), samples/s of the training pass, the
one-time cost of precomputing the frozen branches (stages 2a and 3), and how many 2a or 3 epochs a
stage-4 epoch costs (what precomputing the frozen branches saves). Extra arguments are Hydra overrides (e.g. trainer.threads=2).
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
from record import Recording  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    rec = Recording(__doc__)
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
    rec.note(f"default dataset: {train_samples} training / {metrics['val_samples']} validation samples; "
             f"torch threads {torch.get_num_threads()}, cores {os.cpu_count()}, device {cfg.trainer.device}, "
             f"precision {metrics['precision']}; {args.epochs} epochs per stage; whole run {metrics['seconds']:.1f} s")
    median, rows = {}, []
    for stage in STAGE_ORDER:
        seconds = [r["seconds"] for r in history if r["stage"] == stage]
        median[stage] = statistics.median(seconds)
        precompute = next(r["precompute_seconds"] for r in stage_rows if r["stage"] == stage)
        rows.append([stage, round(median[stage], 3), round(train_samples / median[stage]), round(precompute, 2)])
    rec.table("Seconds per epoch by stage", ["stage", "median epoch s", "training samples/s", "precompute s"], rows)
    rec.figures(**{f"stage4_vs_{stage}": round(median["4"] / median[stage]) for stage in ("2a", "3")})
    rec.note(", ".join(f"a stage-4 epoch costs {median['4'] / median[stage]:.0f} stage-{stage} epochs" for stage in ("2a", "3")))
    rec.save()


if __name__ == "__main__":
    main()
