"""The torch blendshape module on a GPU: exactness against the CPU module and samples/s, in one run.

    python benchmarks/bench_gpu.py [--batches 256 4096] [--repeats 15]

Needs a CUDA device and a converted model in the cache (a machine without TensorFlow can use one built
elsewhere: copy <facedyn cache>/models and set FACEDYN_CACHE_DIR). Prints the largest |GPU - CPU| of the
52 scores in fp32 and under bf16 autocast (the CPU module matches TFLite within ~2.4e-6, see
bench_blendshapes.py), and the median samples/s of forward and forward + backward per batch size, timed
with CUDA synchronisation.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_blendshapes import face_like_landmarks  # noqa: E402  (this script's folder is on sys.path)
from facedyn.blendshapes import load  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 4096])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_gpu.py: no CUDA device here; nothing measured")
        return
    device = torch.device("cuda")
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}")

    start = time.perf_counter()
    cpu_model = load()
    print(f"cached load(): {time.perf_counter() - start:.2f} s; tensorflow imported: {'tensorflow' in sys.modules}")
    gpu_model = load().to(device)
    points = torch.from_numpy(face_like_landmarks(max(args.batches)))
    with torch.no_grad():
        expected = cpu_model(points)
        fp32 = gpu_model(points.to(device)).cpu()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf16 = gpu_model(points.to(device)).float().cpu()
    print(f"max |GPU fp32 - CPU| over {len(points)} faces: {(fp32 - expected).abs().max():.2e}; "
          f"bf16 autocast: {(bf16 - expected).abs().max():.2e}")
    loss = gpu_model(points[:8].to(device)).sum()
    loss.backward()
    with_grad = sum(p.grad is not None for p in gpu_model.parameters())
    print(f"parameters with a gradient on the GPU: {with_grad} of {len(list(gpu_model.parameters()))}")

    for batch in args.batches:
        on_device = points[:batch].to(device)

        def forward() -> None:
            with torch.no_grad():
                gpu_model(on_device)

        def forward_backward() -> None:
            gpu_model.zero_grad(set_to_none=True)
            gpu_model(on_device).sum().backward()

        for name, step in (("forward", forward), ("forward+backward", forward_backward)):
            rate = statistics.median(cuda_rates(step, batch, args.repeats))
            print(f"batch {batch:5d} {name:17s}: {rate:12,.0f} samples/s")


if __name__ == "__main__":
    main()
