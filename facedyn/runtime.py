"""Where and how a run computes: device, precision (autocast), memory format, threads, and seeding."""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facedyn.training.config import Device, Precision, TrainerConfig

Batch = dict[str, torch.Tensor]
# CPU flags (Linux /proc/cpuinfo names) of native bf16 arithmetic: without them bf16 autocast is emulated and slower.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO = Path("/proc/cpuinfo")


@dataclass
class Runtime:
    device: torch.device
    autocast_dtype: torch.dtype | None  # bf16, or None: fp32
    channels_last: bool
    progress: bool

    @property
    def precision(self) -> str:
        return "bf16" if self.autocast_dtype == torch.bfloat16 else "fp32"

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def to_device(self, batch: Batch) -> Batch:
        moved = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        if self.channels_last and "flow_image" in moved:  # not precomputed branch outputs
            moved["flow_image"] = moved["flow_image"].contiguous(memory_format=torch.channels_last)
        return moved


def cpu_bf16_flags(cpuinfo: Path = CPUINFO) -> list[str]:
    """The native-bf16 flags this CPU reports (empty where it has none or does not say, e.g. not Linux)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return [flag for flag in BF16_CPU_FLAGS if flag in flags]


def resolve_precision(precision: str, device: torch.device, cpuinfo: Path = CPUINFO) -> str:
    """fp32 or bf16. auto: bf16 on CUDA and on CPUs with native bf16 (AVX512-BF16/AMX, detected), else fp32."""
    if precision != Precision.auto:
        return str(precision)
    if device.type == "cuda":
        return "bf16"
    native = cpu_bf16_flags(cpuinfo) and torch.backends.cpu.get_cpu_capability().startswith("AVX512")
    return "bf16" if native else "fp32"


def make_runtime(trainer: TrainerConfig) -> Runtime:
    if trainer.device == Device.auto:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(str(trainer.device))
    if trainer.threads > 0:
        torch.set_num_threads(trainer.threads)
    precision = resolve_precision(trainer.precision, device)
    return Runtime(device=device, autocast_dtype=torch.bfloat16 if precision == "bf16" else None,
                   channels_last=trainer.channels_last and device.type == "cuda", progress=trainer.progress)


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
