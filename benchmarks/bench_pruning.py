"""Does pruning pay? The same staged sweep three times: without a pruner, with the median pruner, and with
plateau pruning (optuna's PatientPruner alone: a trial stops once its val loss has not improved by
min_delta for `patience` epochs).

Every arm uses the random sampler with one seed, so trial n draws the same learning rate in all of them
(see facedyn.sweep.search.TrialSeededSampler) and training is deterministic: the arms differ only in
which trials the pruner stops. Printed per stage and in total: epochs trained, the median epochs per trial,
the best validation loss found, wall time; and the goal: >= 30 % fewer epochs at an equal-or-better best.

    python benchmarks/bench_pruning.py [--stages 2a] [--trials 12] [--warmup 3] [--startup 3] [--patience 3]
                                       [--min-delta 0.001] [--seed 0] [override ...]

Default data (the default synthetic dataset). Stage 2a by default: it trains the landmark head
on precomputed blendshapes for 30 epochs, which a 2-core CPU sweeps in minutes; it starts from a fresh
model (stages.s2a.init=none: only the landmark path predicts, so the flow branch does not matter).
`--stages 2a 3` adds stage 3 (its trials start from each arm's best 2a checkpoint); stage 1 (ResNet-18 on
every image) works too but takes hours on CPU.
Results: benchmarks/results/pruning/<arm>/ (sweep folders; removed and rebuilt on every run).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import sys
import time
from pathlib import Path

import optuna

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facedyn.sweep import runner  # noqa: E402
from facedyn.sweep.config import split_args  # noqa: E402
from record import Recording  # noqa: E402

GOAL_SAVING = 0.30


def run_arm(name: str, args: argparse.Namespace, pruner: list[str], out: Path) -> dict:
    root = out / name
    shutil.rmtree(root, ignore_errors=True)
    sweep_args = [f"sweep.root={out}", f"sweep.study_name={name}", f"sweep.stages=[{','.join(args.stages)}]",
                  f"sweep.trials_per_stage={args.trials}", "sweep.sampler.name=random",
                  f"sweep.sampler.seed={args.seed}", *pruner, "stages.s2a.init=none", "model.flow.weights=none",
                  "trainer.progress=false",
                  f"paths.output_dir={out / 'outputs'}", *args.overrides]
    parsed = split_args(sweep_args)
    started = time.perf_counter()
    sweep = runner.prepare(parsed.sweep, parsed.train_overrides)
    runner.run(sweep)
    seconds = time.perf_counter() - started
    stages = {}
    for stage in args.stages:
        study = optuna.load_study(study_name=sweep.study_name(stage), storage=sweep.storage)
        epochs = [len(t.intermediate_values) for t in study.trials]
        stages[stage] = {
            "epochs": sum(epochs),
            "median_epochs": statistics.median(epochs),
            "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials),
            "best": study.best_value,
            "lrs": [t.params[f"stages.s{stage}.lr"] for t in study.trials],
        }
    return {"stages": stages, "seconds": seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", nargs="+", default=["2a"])
    parser.add_argument("--trials", type=int, default=12, help="trials per stage, both arms")
    parser.add_argument("--startup", type=int, default=3, help="median pruner: trials that are never pruned")
    parser.add_argument("--warmup", type=int, default=3, help="median pruner: epochs before a trial can be pruned")
    parser.add_argument("--patience", type=int, default=3, help="plateau pruner: epochs without improvement")
    parser.add_argument("--min-delta", type=float, default=0.001, help="plateau pruner: smallest improvement")
    parser.add_argument("--seed", type=int, default=0, help="sampler seed of every arm")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "pruning")
    parser.add_argument("overrides", nargs="*", help="training overrides for every trial (key=value)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rec = Recording(__doc__)

    arms = {
        "no_pruning": run_arm("no_pruning", args, ["sweep.pruner.name=none"], args.out),
        "median": run_arm("median", args, ["sweep.pruner.name=median", f"sweep.pruner.n_startup_trials={args.startup}",
                                           f"sweep.pruner.n_warmup_steps={args.warmup}"], args.out),
        "plateau": run_arm("plateau", args, ["sweep.pruner.name=none", f"sweep.pruner.patience={args.patience}",
                                             f"sweep.pruner.min_delta={args.min_delta}"], args.out),
    }
    base = arms["no_pruning"]
    same_lrs = all(arm["stages"][s]["lrs"] == base["stages"][s]["lrs"] for arm in arms.values() for s in args.stages)
    rec.note(f"stages {' '.join(args.stages)}, {args.trials} trials per stage, random sampler seed {args.seed} "
             f"(same lr per trial in every arm: {same_lrs}); median: MedianPruner(n_startup_trials={args.startup}, "
             f"n_warmup_steps={args.warmup}); plateau: PatientPruner(patience={args.patience}, min_delta={args.min_delta})")
    rec.table("Epochs trained and the best found, per stage and arm",
              ["stage", "arm", "epochs", "median per trial", "pruned", "best val loss"],
              [[stage, name, s["epochs"], s["median_epochs"], s["pruned"], round(s["best"], 6)]
               for stage in args.stages for name, arm in arms.items() for s in [arm["stages"][stage]]])
    last = args.stages[-1]
    epochs_base = sum(s["epochs"] for s in base["stages"].values())
    rows = []
    for name in ("median", "plateau"):
        arm = arms[name]
        epochs = sum(s["epochs"] for s in arm["stages"].values())
        best, best_base = arm["stages"][last]["best"], base["stages"][last]["best"]
        met = 1 - epochs / epochs_base >= GOAL_SAVING and best <= best_base
        rows.append([name, f"{1 - epochs / epochs_base:.0%}", round(arm["seconds"] / base["seconds"], 2),
                     round(best, 6), round(best_base, 6), "yes" if met else "no"])
    rec.table(f"Against no pruning (goal: at least {GOAL_SAVING:.0%} fewer epochs at an equal or better best val loss)",
              ["arm", "fewer epochs", "wall time ratio", f"best (stage {last})", "best without pruning", "goal met"], rows)
    rec.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
