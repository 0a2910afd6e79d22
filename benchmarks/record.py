"""What a benchmark records besides its figures: the machine, its load before and after, the code; as JSON.

    from record import Recording

    with Recording(__doc__) as rec:             # the machine and its load now
        rec.table("title", ["column", ...], rows) # printed, and kept
        rec.note("a line")                        # printed, and kept
        rec.figures(wall_seconds=309.4)           # named values other pages quote
    # on leaving: the load after, written to benchmarks/results/<script>.json

The docs' benchmark page is rendered from such files (`python -m facedyn.docs.render`) once they are copied
to docs/data/benchmarks/; the tables there have the columns and rows printed here.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
# The CPU features that decide which kernels torch, oneDNN and ONNX Runtime run (matrix products, bf16).
SPEED_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16",
               "amx_int8")


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def cpu() -> dict[str, Any]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"model": model, "cores": cores, "flags": [f for f in SPEED_FLAGS if f in flags]}


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"cpu": cpu(), "python": platform.python_version(), "system": platform.platform()}
    try:
        info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    if "torch" in sys.modules or _importable("torch"):
        import torch

        info["torch"] = torch.__version__
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return info


def _importable(name: str) -> bool:
    from importlib.util import find_spec

    return find_spec(name) is not None


def commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else ""

    # Local changes to the code (docs aside) make the commit an approximation: say so.
    changed = git("status", "--porcelain", "--untracked-files=no", "--", "facedyn", "benchmarks", "*.py")
    return {"commit": git("rev-parse", "HEAD") or None, "modified": bool(changed)}


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


class Recording:
    """One benchmark run: its tables, notes and figures, and the circumstances they were measured in."""

    def __init__(self, doc: str | None, name: str | None = None) -> None:
        self.name = name or Path(sys.argv[0]).stem
        self.data: dict[str, Any] = {
            "benchmark": self.name,
            "description": (doc or "").strip().splitlines()[0] if doc else "",
            "command": "python " + " ".join([f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]]),
            "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "code": commit(),
            "machine": machine(),
            "load_before": load_average(),
            "tables": [],
            "notes": [],
            "figures": {},
        }

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        rows = [[_plain(v) for v in row] for row in rows]
        self.data["tables"].append({"title": title, "columns": list(columns), "rows": rows})
        text = [[str(c) for c in columns], *[[_fmt(v) for v in row] for row in rows]]
        widths = [max(len(line[i]) for line in text) for i in range(len(columns))]
        print(f"\n{title}")
        for line in text:
            print("  " + "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(line, widths))))

    def note(self, line: str) -> None:
        self.data["notes"].append(line)
        print(line)

    def figures(self, **values: Any) -> None:
        self.data["figures"].update({k: _plain(v) for k, v in values.items()})

    def save(self, folder: Path = RESULTS) -> Path:
        self.data["load_after"] = load_average()
        self.data["ended"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.name}.json"
        path.write_text(json.dumps(self.data, indent=1) + "\n")
        print(f"\nload average (1 min) {self.data['load_before'][0]} before, {self.data['load_after'][0]} after; "
              f"{self.data['machine']['cpu']['model']}, {self.data['machine']['cpu']['cores']} cores; written to {path}")
        return path

    def __enter__(self) -> "Recording":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.save()


def _plain(value: Any) -> Any:
    """numpy scalars and other number-likes as plain JSON numbers."""
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value
