"""python -m facedyn.data.synthetic --out DIR [--preset default|large|hard|still_camera] [--seed N] [--videos N]
[--workers N]"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from facedyn.assets import AssetError
from facedyn.data.synthetic.config import PRESETS, preset
from facedyn.data.synthetic.contact_sheet import CONTACT_SHEET
from facedyn.data.synthetic.generator import MARKER, ensure_dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m facedyn.data.synthetic",
        description="Generate the synthetic facial-palsy dataset in the training layout "
                    "(<out>/<expression>/<video>_<frame>/...). An existing complete dataset with the same "
                    "settings is reused.")
    parser.add_argument("--out", type=Path, help="dataset folder (default: the user cache, named by the settings)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default",
                        help="size: " + ", ".join(f"{k} = {v['videos']} videos x {v['frames_per_video']} frames"
                                                  for k, v in PRESETS.items()))
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    parser.add_argument("--videos", type=int, help="number of subjects, overriding the preset")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="processes rendering subjects in parallel (default: one per CPU); same data either way")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in (("seed", args.seed), ("videos", args.videos)) if v is not None}
    if args.out is not None:
        overrides["root"] = str(args.out)
    try:
        cfg = preset(args.preset, **overrides)
        started = time.perf_counter()
        root = ensure_dataset(cfg, workers=max(1, args.workers))
    except (AssetError, ValueError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    samples = json.loads((root / MARKER).read_text())["samples"]
    print(f"{samples} samples in {root} ({time.perf_counter() - started:.1f} s); "
          f"contact sheet: {root / CONTACT_SHEET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
