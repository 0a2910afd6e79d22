"""The default run, `python train.py`, as a new machine runs it: wall time and where it goes.

    .venv/bin/python benchmarks/bench_default_run.py [--warm CACHE] [overrides ...]

Starts the real `train.py` in a fresh process with an empty facedyn cache (FACEDYN_CACHE_DIR in a temporary
folder: the synthetic dataset is generated and decoded, the blendshape model converted, as on a first
`make train`) and a temporary output folder, and prints the wall time from the process start to its exit,
then a profile from the run's own records: start-up (imports, config), data (generation, decoding, split),
model (build, blendshape conversion), each stage's training passes, validation passes, precomputing of
frozen branches, and the rest of the stage (checkpoint writes, loader start-up), then the end of the run
(final predictions, metrics, plots). Ends with the run's validation figures, the final model against
predicting the training mean. `--warm CACHE` reuses (and fills) a cache folder instead: the second
run of a machine. `--keep DIR` keeps the run folder (e.g. for bench_predict.py --run DIR). Extra
arguments are train.py overrides. The machine's load average is printed too: a figure taken beside other
work is not the machine's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facedyn.runs import stage_checkpoint  # noqa: E402
from facedyn.training.stages import FINAL_STAGE  # noqa: E402
from record import Recording  # noqa: E402

LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]\[[^]]*\]\[\w+\] - (.*)$")
# The validation figures the README's results table shows: (label, key in metrics.json's final / baseline).
QUALITY = [("val loss", "val_loss"),
           ("dynamics MAE, video level", "val_video_mae_dynamics"),
           ("synkinesis MAE, video level", "val_video_mae_synkinesis"),
           ("dynamics ICC(2,1), video level", "val_video_icc_dynamics"),
           ("synkinesis ICC(2,1), video level", "val_video_icc_synkinesis"),
           ("dynamics QWK, video level", "val_video_qwk_dynamics"),
           ("synkinesis QWK, video level", "val_video_qwk_synkinesis")]


def log_events(log_file: Path) -> list[tuple[float, str]]:
    """(epoch seconds, message) of every line of train.log that starts a record."""
    events = []
    for line in log_file.read_text().splitlines():
        match = LOG_TIME.match(line)
        if match:
            stamp = dt.datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            events.append((stamp, match[2]))
    return events


def first(events: list[tuple[float, str]], prefix: str) -> float:
    return next(t for t, message in events if message.startswith(prefix))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warm", type=Path, help="a cache folder to reuse instead of an empty one")
    parser.add_argument("--keep", type=Path, help="write the run folder here (a new folder) and keep it")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    rec = Recording(__doc__)
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.warm or Path(tmp) / "cache"
        run_dir = args.keep.resolve() if args.keep else Path(tmp) / "run"
        env = {**os.environ, "FACEDYN_CACHE_DIR": str(cache)}
        command = [sys.executable, str(REPO / "train.py"), f"hydra.run.dir={run_dir}",
                   f"paths.output_dir={tmp}/outputs", "trainer.progress=false", *args.overrides]
        started = time.time()
        result = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True)
        ended = time.time()
        if result.returncode != 0:
            sys.exit(f"train.py failed ({result.returncode}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
        events = log_events(run_dir / "train.log")
        history = json.loads((run_dir / "training_history.json").read_text())["epochs"]
        metrics = json.loads((run_dir / "metrics.json").read_text())
        stage_rows = torch.load(stage_checkpoint(run_dir, FINAL_STAGE), weights_only=True)["progress"]["stage_rows"]

    wall = ended - started
    t_precision = first(events, "Precision:")
    starts = {m.split()[1]: t for t, m in events if re.match(r"stage \S+ starts:", m)}
    done = {m.split()[1]: t for t, m in events if re.match(r"stage \S+ done in", m)}
    order = [row["stage"] for row in stage_rows]
    t_data_end = max(t for t, m in events if t < starts[order[0]] and m.startswith(("data:", "Precision:")))
    profile: list[tuple[str, float]] = [
        ("start-up: interpreter, imports, config, run folder", t_precision - started),
        ("data: generate (empty cache) or map the cache, split", t_data_end - t_precision),
        ("model: build, blendshape conversion (empty cache)", starts[order[0]] - t_data_end),
    ]
    for i, row in enumerate(stage_rows):
        stage = row["stage"]
        epochs = [r for r in history if r["stage"] == stage]
        val = sum(r["val_seconds"] for r in epochs)
        train = sum(r["seconds"] for r in epochs) - val
        # to the next stage's start: its checkpoints and prediction files included; the last stage's are in "end"
        block = (starts[order[i + 1]] if i + 1 < len(order) else done[stage]) - starts[stage]
        precompute = row["precompute_seconds"]
        profile += [(f"stage {stage}: {len(epochs)} training passes", train),
                    (f"stage {stage}: {len(epochs)} validation passes and metrics", val),
                    (f"stage {stage}: precomputing frozen branches", precompute),
                    (f"stage {stage}: checkpoints, prediction files, loader start", block - train - val - precompute)]
    profile.append(("end: last checkpoints, final predictions, metrics, plots, exit", ended - done[order[-1]]))

    rec.note(f"python train.py {' '.join(args.overrides)} ({'warm cache' if args.warm else 'empty cache'}): "
             f"{wall:.1f} s wall = {int(wall // 60)} min {wall % 60:.0f} s; precision {metrics['precision']} on "
             f"{metrics['device']}; {metrics['train_samples']} training / {metrics['val_samples']} validation samples")
    rec.table("Where the time goes", ["part", "seconds", "share"],
              [[name, round(seconds, 1), f"{seconds / wall:.1%}"] for name, seconds in profile]
              + [["(sum of the parts)", round(sum(s for _, s in profile), 1), ""]])
    final, baseline = metrics["final"], metrics["baseline"]
    rec.table("Validation split, final model against predicting the training mean", ["figure", "model", "training mean"],
              [[label, round(final[key], 4), round(baseline[key], 4) if baseline.get(key) is not None else None]
               for label, key in QUALITY if key in final])
    rec.figures(wall_seconds=round(wall, 1), precision=metrics["precision"], device=metrics["device"],
                warm_cache=bool(args.warm), overrides=args.overrides,
                final={key: final[key] for _, key in QUALITY if key in final},
                baseline={key: baseline.get(key) for _, key in QUALITY if key in final})
    rec.save()


if __name__ == "__main__":
    main()
