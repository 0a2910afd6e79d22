"""trainer.precision=auto: bf16 autocast where the CPU computes bf16 natively (detected from its flags), fp32
elsewhere; what ran is what metrics.json says (checked on the end-to-end run in test_training.py)."""

from __future__ import annotations

from pathlib import Path

import torch

from facedyn.config import compose
from facedyn.runtime import CPUINFO, cpu_bf16_flags, make_runtime, resolve_precision

CPU = torch.device("cpu")
NATIVE_KERNELS = torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def _cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: some cpu\nflags\t\t: fpu sse2 avx2 {flags}\n\nprocessor\t: 1\n")
    return path


def test_auto_is_bf16_only_where_the_cpu_has_native_bf16(tmp_path: Path) -> None:
    assert resolve_precision("auto", CPU, _cpuinfo(tmp_path, "avx512f")) == "fp32"
    assert resolve_precision("auto", CPU, tmp_path / "no-such-file") == "fp32"  # cannot tell: not assumed
    for flag in ("avx512_bf16", "amx_bf16"):
        assert cpu_bf16_flags(_cpuinfo(tmp_path, f"avx512f {flag}")) == [flag]
        assert resolve_precision("auto", CPU, _cpuinfo(tmp_path, f"avx512f {flag}")) == ("bf16" if NATIVE_KERNELS else "fp32")
    assert resolve_precision("auto", torch.device("cuda"), _cpuinfo(tmp_path, "")) == "bf16"
    for forced in ("fp32", "bf16"):
        assert resolve_precision(forced, CPU, _cpuinfo(tmp_path, "avx512_bf16")) == forced


def test_this_machine_gets_what_its_flags_say() -> None:
    runtime = make_runtime(compose(["trainer.device=cpu"]).trainer)
    native = bool(cpu_bf16_flags(CPUINFO)) and NATIVE_KERNELS
    assert runtime.precision == ("bf16" if native else "fp32")
    assert runtime.autocast_dtype == (torch.bfloat16 if native else None)
    assert make_runtime(compose(["trainer.device=cpu", "trainer.precision=fp32"]).trainer).autocast_dtype is None
