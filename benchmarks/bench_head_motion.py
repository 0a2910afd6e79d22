"""Head-motion compensation on synthetic data with known head motion: does the global motion go away?

    .venv/bin/python benchmarks/bench_head_motion.py [--videos 20] [--model similarity|affine] [--refine on|off]

Three datasets of the same subjects, expressions and frames (each subject draws from its own random stream,
so only the head motion differs): the `hard` preset (1 deg / 2 px head motion, 1 px landmark noise), the same
with no head motion at all ("still"), and the `default` preset (0.4 deg / 0.4 px, 0.4 px noise). For each:
the global motion of the flow images (median over samples of the rms flow, in 112-px flow pixels, at the
stable landmarks' baseline positions: what the head did, see facedyn.data.head_motion.global_motion) before and
after compensation, with the crop known (`frame`) and estimated from the landmarks (`face_box`), and how well
that crop fits (R^2 of the landmark motion by the flow at the landmarks).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facedyn.data import layout  # noqa: E402
from facedyn.data.config import DataConfig  # noqa: E402
from facedyn.data.head_motion import CompensationSettings, compensate_images  # noqa: E402
from facedyn.data.reader import read_samples  # noqa: E402
from facedyn.data.settings import ReaderSettings  # noqa: E402
from facedyn.data.synthetic import ensure_dataset, preset  # noqa: E402
from record import Recording  # noqa: E402

SHARED_BUNDLE = Path(__file__).resolve().parents[2] / "shared" / "models" / "face_landmarker.task"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=20)
    parser.add_argument("--model", default="similarity", choices=("similarity", "affine"))
    parser.add_argument("--refine", default="on", choices=("on", "off"), help="data.flow.head_motion_refine")
    args = parser.parse_args()
    rec = Recording(__doc__)
    if "FACEDYN_LANDMARKER" not in os.environ and SHARED_BUNDLE.exists():
        os.environ["FACEDYN_LANDMARKER"] = str(SHARED_BUNDLE)
    datasets = {
        "hard": preset("hard", videos=args.videos),
        "hard, still head": preset("hard", videos=args.videos, head_motion_deg=0.0, head_motion_px=0.0),
        "default": preset("default", videos=args.videos),
    }
    rec.note(f"{args.videos} subjects x 5 expressions x 3 frames each; model={args.model}, refine={args.refine}")
    rows = []
    for name, cfg in datasets.items():
        root = ensure_dataset(cfg, workers=os.cpu_count() or 1)
        samples = read_samples(layout.scan(root), ReaderSettings.from_config(DataConfig())).samples
        for crop in ("frame", "face_box"):
            settings = CompensationSettings(args.model, crop, args.refine == "on", cfg.max_flow_magnitude,
                                            cfg.image_size, (float(cfg.render_size),) * 2, cfg.flow_mask)
            started = time.perf_counter()
            report = compensate_images(samples.flow.copy(), samples.baseline_landmarks, samples.expression_landmarks, settings)
            box = "" if report.crop_box is None else "side {:.3f} at ({:+.3f}, {:+.3f})".format(*report.crop_box)
            rows.append([name, crop, round(report.crop_fit_r2, 3), box, round(report.global_motion_before_px, 3),
                         round(report.global_motion_landmark_fit_px, 3), round(report.global_motion_after_px, 3),
                         round(report.rotation_deg_median, 2), round(report.shift_px_median, 2),
                         round(time.perf_counter() - started, 1)])
    rec.table("Global motion left in the flow images (px of the 112-px image)",
              ["dataset", "crop", "crop R^2", "box", "before", "landmark fit", "after", "rotation deg", "shift px",
               "seconds"], rows)
    rec.save()


if __name__ == "__main__":
    main()
