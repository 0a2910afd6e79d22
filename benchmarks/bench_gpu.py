"""Training on a GPU: the default run's samples/s per stage, its share of time waiting for data, its wall time.

    python benchmarks/bench_gpu.py [--host] [--cache DIR] [overrides ...]   # the default run (train.py)
    python benchmarks/bench_gpu.py --blendshapes [--batches 256 4096]      # the blendshape module alone

The run: `python train.py` in a fresh process (trainer.device=cuda; data.on_device's default keeps the
decoded dataset in GPU memory and augments there, facedyn.data.resident), after a one-epoch warm-up run
that fills the cache (the synthetic dataset, its decoded copy, the blendshape model's conversion), so the
timed run is one "after the first model conversion". Prints the wall time from the process start to its
exit and, per stage, training and validation samples/s and the share of the stage's time spent waiting
for data (the training loop's own records: training_history.json). `--host` also times stage 1 with
data.on_device=false (loader workers, pinned batches copied over) for comparison. Extra arguments are
train.py overrides (e.g. data.batch_size=256). `--device cpu` runs it all on the CPU: a dry run of the
script, not a GPU figure, and not recorded. Without a CUDA device it says so and measures nothing.

--blendshapes: the torch blendshape module on CUDA: the largest |GPU - CPU| of the 52 scores in fp32 and
under bf16 autocast, and the median samples/s of forward and forward + backward per batch size.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from record import REPO, Recording  # noqa: E402

sys.path.insert(0, str(REPO))


def train_py(run_dir: Path, outputs: Path, cache: Path, overrides: list[str]) -> float:
    """Run train.py into run_dir; its wall time in seconds."""
    command = [sys.executable, str(REPO / "train.py"), f"hydra.run.dir={run_dir}", f"paths.output_dir={outputs}",
               "trainer.progress=false", *overrides]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=outputs.parent, env={**os.environ, "FACEDYN_CACHE_DIR": str(cache)},
                            capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"train.py failed ({result.returncode}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return wall


def stage_figures(run_dir: Path) -> list[dict]:
    """Per stage: epochs, training and validation samples/s, and the share of its time waiting for data."""
    history = json.loads((run_dir / "training_history.json").read_text())["epochs"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    rows = []
    for stage in dict.fromkeys(row["stage"] for row in history):
        epochs = [row for row in history if row["stage"] == stage]
        seconds = sum(row["seconds"] for row in epochs)
        validating = sum(row["val_seconds"] for row in epochs)
        rows.append({"stage": stage, "epochs": len(epochs), "seconds": seconds,
                     "train_per_s": metrics["train_samples"] * len(epochs) / max(seconds - validating, 1e-9),
                     "val_per_s": metrics["val_samples"] * len(epochs) / max(validating, 1e-9),
                     "wait_share": sum(row["data_wait_seconds"] for row in epochs) / max(seconds, 1e-9)})
    return rows


def print_run(rec: Recording, title: str, wall: float, run_dir: Path) -> list[dict]:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    final = metrics["final"]
    rows = stage_figures(run_dir)
    rec.table(f"{title}: {wall:.1f} s wall ({metrics['seconds']:.1f} s in the trainer), {metrics['device']}, "
              f"{metrics['precision']}; video MAE dynamics {final.get('val_video_mae_dynamics', float('nan')):.3f}, "
              f"synkinesis {final.get('val_video_mae_synkinesis', float('nan')):.3f}",
              ["stage", "epochs", "seconds", "training samples/s", "validation samples/s", "waiting for data"],
              [[r["stage"], r["epochs"], round(r["seconds"], 2), round(r["train_per_s"]), round(r["val_per_s"]),
                f"{r['wait_share']:.1%}"] for r in rows])
    return rows


def stage_1_only(overrides: list[str]) -> list[str]:
    """`overrides` for a stage-1-only run (its config has no other stage to override)."""
    return [o for o in overrides if not o.startswith("stages.") or o.startswith("stages.s1.")] + ["stage=1"]


def bench_run(args: argparse.Namespace) -> None:
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_gpu.py: no CUDA device here; nothing measured (--device cpu for a dry run on the CPU)")
        return
    rec = Recording(__doc__)
    overrides = [f"trainer.device={args.device}", *args.overrides]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cache = args.cache or work / "cache"
        wall = train_py(work / "warm-up", work / "outputs", cache, [*stage_1_only(overrides), "stages.s1.epochs=1"])
        rec.note(f"warm-up run (dataset, its cache, blendshape conversion unless cached): {wall:.1f} s")
        wall = train_py(work / "run", work / "outputs", cache, overrides)
        rows = print_run(rec, "default run", wall, work / "run")
        stage_1 = next(row for row in rows if row["stage"] == "1")
        rec.figures(wall_seconds=round(wall, 1), stage_1_training_samples_per_s=round(stage_1["train_per_s"]))
        if args.host:
            wall = train_py(work / "host", work / "outputs", cache, [*stage_1_only(overrides), "data.on_device=false"])
            print_run(rec, "stage 1 with data.on_device=false (the host loading path)", wall, work / "host")
    if args.device == "cuda":
        rec.save()


def cuda_rates(step, batch: int, repeats: int) -> list[float]:
    step()
    torch.cuda.synchronize()
    measured = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        torch.cuda.synchronize()
        measured.append(batch / (time.perf_counter() - start))
    return measured


def bench_blendshapes(args: argparse.Namespace) -> None:
    """Needs a converted model in the cache (a machine without TensorFlow can use one built elsewhere: copy
    <facedyn cache>/models and set FACEDYN_CACHE_DIR)."""
    if not torch.cuda.is_available():
        print("bench_gpu.py: no CUDA device here; nothing measured")
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_blendshapes import face_like_landmarks

    from facedyn.blendshapes import load

    device = torch.device("cuda")
    rec = Recording(__doc__, name="bench_gpu_blendshapes")
    start = time.perf_counter()
    cpu_model = load()
    rec.note(f"cached load(): {time.perf_counter() - start:.2f} s; tensorflow imported: {'tensorflow' in sys.modules}")
    gpu_model = load().to(device)
    points = torch.from_numpy(face_like_landmarks(max(args.batches)))
    with torch.no_grad():
        expected = cpu_model(points)
        fp32 = gpu_model(points.to(device)).cpu()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf16 = gpu_model(points.to(device)).float().cpu()
    rec.note(f"max |GPU fp32 - CPU| over {len(points)} faces: {(fp32 - expected).abs().max():.2e}; "
             f"bf16 autocast: {(bf16 - expected).abs().max():.2e}")
    loss = gpu_model(points[:8].to(device)).sum()
    loss.backward()
    with_grad = sum(p.grad is not None for p in gpu_model.parameters())
    rec.note(f"parameters with a gradient on the GPU: {with_grad} of {len(list(gpu_model.parameters()))}")

    rows = []
    for batch in args.batches:
        on_device = points[:batch].to(device)

        def forward() -> None:
            with torch.no_grad():
                gpu_model(on_device)

        def forward_backward() -> None:
            gpu_model.zero_grad(set_to_none=True)
            gpu_model(on_device).sum().backward()

        for name, step in (("forward", forward), ("forward+backward", forward_backward)):
            rows.append([batch, name, round(statistics.median(cuda_rates(step, batch, args.repeats)))])
    rec.table("The blendshape module on the GPU, samples/s (median)", ["batch", "pass", "samples/s"], rows)
    rec.save()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blendshapes", action="store_true", help="measure the blendshape module alone")
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 4096], help="--blendshapes batch sizes")
    parser.add_argument("--repeats", type=int, default=15, help="--blendshapes timings per batch size")
    parser.add_argument("--host", action="store_true", help="also time stage 1 on the host loading path")
    parser.add_argument("--cache", type=Path, help="a facedyn cache folder to reuse (default: a fresh one)")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: a dry run of the script")
    parser.add_argument("overrides", nargs="*", help="train.py overrides")
    args = parser.parse_args()
    bench_blendshapes(args) if args.blendshapes else bench_run(args)


if __name__ == "__main__":
    main()
