"""The face mask's margin (facedyn.flow.mask): how much of an expression's flow it keeps, and how much of a
swaying camera's flow it takes out.

    .venv/bin/python benchmarks/bench_flow_mask.py [--subjects 12] [--sheet docs/flow_mask.png]

1. Synthetic faces (healthy subjects at the peak, no head motion, flow_mask=none), Farneback and DIS: per
   expression, the share of its flow (the sum of |flow| above that of the same subjects' clips without
   movement) that the mask keeps, at margins of 0.2-0.5 inter-ocular distances (IOD), feather 0.1.
2. Two photographed faces (scikit-image's astronaut, matplotlib's Grace Hopper) with MediaPipe's landmarks,
   animated by skin movements confined to the face (brow raise, jaw opening 0.25 IOD, smile, eye closure,
   and none), prepared by prepare.py with a still camera (flow.register=false) and flow.mask=none: the same
   share.
3. Both faces as a hand-held phone films them (tests/real_clips.py: the whole picture swaying, H.264 at a
   low bitrate): an eye closure with a still camera, the same with the camera swaying, and the sway alone;
   the mean HSV value (0-255) of the whole apex flow image, prepared (flow.mask=none) and masked afterwards
   at each margin, and the sway alone's share of the still eye closure's. --sheet writes these
   clips' contact sheet: baseline, apex, and the flow image without and with the mask.
Needs face_landmarker.task (FACEDYN_LANDMARKER, or ../shared/models beside the checkout).
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
SHARED_BUNDLE = REPO.parent / "shared" / "models" / "face_landmarker.task"
if not os.environ.get("FACEDYN_LANDMARKER") and SHARED_BUNDLE.is_file():
    os.environ["FACEDYN_LANDMARKER"] = str(SHARED_BUNDLE)

from facedyn.data.synthetic import expressions, generator  # noqa: E402
from facedyn.data.synthetic.config import EXPRESSIONS, SyntheticConfig  # noqa: E402
from facedyn.data.synthetic.mesh import canonical_mesh  # noqa: E402
from facedyn.flow.encoding import decode_flow, encode_flow  # noqa: E402
from facedyn.flow.mask import FEATHER_IOD, distance_to_hull, face_weight, interocular_distance  # noqa: E402
from facedyn.flow.registration import apply  # noqa: E402
from facedyn.landmarks import LANDMARK_SUBSET_IDXS  # noqa: E402
from facedyn.videos.config import FlowConfig  # noqa: E402
from facedyn.videos.pair import crop_transform  # noqa: E402
from facedyn.videos.pipeline import prepare  # noqa: E402
from record import Recording  # noqa: E402
from tests.face_videos import FRAMES, amplitude, write_video  # noqa: E402
from tests.real_clips import PORTRAITS, write_clip  # noqa: E402

MARGINS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.5)
# The photographs' clips: expression folder -> the movement animated in it ("snarl" holds none: the level the
# others are measured above).
MOVEMENTS = {"brow_raise": "brow raise", "lip_pucker": "jaw opening 0.25 IOD", "smile": "smile",
             "eye_close": "left eye closing"}
SUBSET = list(LANDMARK_SUBSET_IDXS)


def _kept(moving: list, still: list) -> list[float]:
    """Share of the moving samples' flow above the still ones' that each margin keeps; items (|flow|, landmarks)."""
    total = sum(m.sum() - s.sum() for (m, _), (s, _) in zip(moving, still))
    return [sum(((m - s) * face_weight(points, m.shape[0], margin, FEATHER_IOD)).sum()
                for (m, points), (s, _) in zip(moving, still)) / total for margin in MARGINS]


def bench_synthetic(rec: Recording, subjects: int) -> None:
    mesh = canonical_mesh()
    for method in ("farneback", "dis"):
        cfg = SyntheticConfig(videos=subjects, frames_per_video=1, peak_fraction_range=[1.0, 1.0], healthy_fraction=1.0,
                              head_motion_deg=0.0, head_motion_px=0.0, flow_mask="none", flow_method=method, seed=1)
        scale = cfg.image_size / cfg.render_size

        def samples() -> dict[str, list]:
            out: dict[str, list] = {name: [] for name in EXPRESSIONS}
            for index in range(subjects):
                for sample in generator.subject_samples(mesh, cfg, index):
                    magnitude = np.linalg.norm(decode_flow(sample.flow_image, cfg.max_flow_magnitude), axis=-1)
                    out[sample.expression].append((magnitude, (sample.baseline_landmarks + 0.5) * scale))
            return out

        moving = samples()
        fields = expressions.EXPRESSION_FIELDS
        expressions.EXPRESSION_FIELDS = {name: np.zeros_like for name in EXPRESSIONS}  # the same clips, no movement
        try:
            still = samples()
        finally:
            expressions.EXPRESSION_FIELDS = fields
        rec.table(f"Synthetic faces, {method}, {subjects} subjects: % of each expression's flow kept, by margin (IOD)",
                  ["expression", *map(str, MARGINS)],
                  [[name, *(round(100 * v, 1) for v in _kept(moving[name], still[name]))] for name in EXPRESSIONS])


def _detect(path: str) -> np.ndarray:
    """MediaPipe's 478 landmarks of a photograph (run in a spawned process: MediaPipe stays out of this one)."""
    from facedyn.videos.config import LandmarkerConfig
    from facedyn.videos.landmarker import VideoLandmarker

    with VideoLandmarker(os.environ["FACEDYN_LANDMARKER"], LandmarkerConfig()) as landmarker:
        faces = landmarker.detect(cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB), 0)
    assert faces.count == 1, f"{path}: {faces.count} faces"
    return faces.landmarks.astype(np.float64)


def _photos(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    import matplotlib.cbook
    from skimage import data

    paths = {"astronaut": root / "astronaut.png", "grace": root / "grace.png"}
    cv2.imwrite(str(paths["astronaut"]), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(paths["grace"]), cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))))
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        landmarks = list(pool.map(_detect, [str(p) for p in paths.values()]))
    return {name: (cv2.imread(str(path)), points) for (name, path), points in zip(paths.items(), landmarks)}


def _animated(photo: np.ndarray, landmarks: np.ndarray, bumps: list, size: int = 256) -> list[np.ndarray]:
    """Frames around the face; each bump (centre, displacement at the apex, radius; photo pixels) moves skin only:
    its Gaussian times a face weight (1 in the landmarks' hull, 0 from 0.15 IOD beyond it: up to the hairline),
    both taken at the source point (a fixed-point iteration), so that a dropping chin covers the neck."""
    subset = landmarks[SUBSET]
    iod, side = interocular_distance(subset), max(photo.shape[:2])
    grid_size = 512
    beyond = distance_to_hull(subset * grid_size / side, grid_size) * side / grid_size / iod
    face = (0.5 + 0.5 * np.cos(np.pi * np.clip(beyond / 0.15, 0, 1))).astype(np.float32)
    low, high = subset.min(axis=0), subset.max(axis=0)
    scale = size * 0.55 / (high - low).max()
    xs, ys = np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32))
    grid = (np.stack([xs, ys], -1) / scale + (low + high) / 2 - size / (2 * scale)).astype(np.float32)
    frames = []
    for t in range(FRAMES):
        source = grid
        for _ in range(4):
            at = source * grid_size / side - 0.5
            weight = cv2.remap(face, at[..., 0], at[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            move = sum(np.exp(-np.sum((source - np.float32(c)) ** 2, -1) / (2 * r * r))[..., None] * np.float32(v)
                       for c, v, r in bumps) if bumps else 0.0
            source = (grid - amplitude(t) * weight[..., None] * move).astype(np.float32)
        frames.append(cv2.remap(photo, source[..., 0], source[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    return frames


def _apex_flows(out: Path) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """(patient, expression) -> the apex sample's decoded flow and its baseline landmarks in flow-image pixels."""
    cfg, flows = FlowConfig(), {}
    with open(out / "prepare_report.csv") as fh:
        for row in csv.DictReader(fh):
            sample = out / row["expression"] / f"{row['patient']}_{row['apex_frame']}"
            base = np.load(sample / "baseline_landmarks.npy").astype(np.float64)
            # the crop is the box of all 478 points; the subset holds the face's outline, so the same box
            points = (apply(crop_transform(base, cfg), base) + 0.5) * cfg.image_size / cfg.crop_size
            rgb = cv2.cvtColor(cv2.imread(str(sample / "optical_flow.jpg")), cv2.COLOR_BGR2RGB)
            flows[row["patient"], row["expression"]] = (decode_flow(rgb, cfg.max_magnitude), points)
    return flows


def bench_photographs(rec: Recording, root: Path, photos: dict) -> None:
    for name, (photo, landmarks) in photos.items():
        iod = interocular_distance(landmarks[SUBSET])
        brow, chin = (landmarks[105] + landmarks[334]) / 2, landmarks[152]
        clips = {  # expression folder (prepare.py wants one of the five) -> the movement in it
            "brow_raise": [((brow[0], brow[1] - 0.25 * iod), (0, -0.2 * iod), 0.6 * iod)],
            "lip_pucker": [((chin[0], chin[1] - 0.1 * iod), (0, 0.25 * iod), 0.5 * iod)],
            "smile": [(landmarks[61], (-0.08 * iod, -0.12 * iod), 0.25 * iod),
                      (landmarks[291], (0.08 * iod, -0.12 * iod), 0.25 * iod)],
            "eye_close": [(landmarks[386], (0, 0.1 * iod), 0.15 * iod)],
            "snarl": [],
        }
        for expression, bumps in clips.items():
            write_video(root / "still" / name / f"{expression}.mp4", _animated(photo, landmarks, bumps), 25.0)
    out = root / "still-prepared"
    prepare({"videos": str(root / "still"), "out": str(out), "progress": False, "workers": 2,
             "flow": {"mask": "none", "register": False}})
    flows = {key: (np.linalg.norm(flow, axis=-1), points) for key, (flow, points) in _apex_flows(out).items()}
    rows = [[patient, MOVEMENTS[expression], *(round(100 * v, 1) for v in _kept([item], [flows[patient, "snarl"]]))]
            for (patient, expression), item in sorted(flows.items()) if expression != "snarl"]
    rec.table("Photographed faces through prepare.py (DIS, still camera): % of each movement's flow kept, by margin (IOD)",
              ["face", "movement", *map(str, MARGINS)], rows)


def bench_sway(rec: Recording, root: Path, sheet: Path | None) -> None:
    clips = {"still": dict(eye_closure=True, camera_sway=False), "sway": dict(eye_closure=True, camera_sway=True),
             "sway_only": dict(eye_closure=False, camera_sway=True)}
    for face in PORTRAITS:
        for kind, motion in clips.items():
            write_clip(root / "phone" / f"{face}-{kind}" / "eye_close.mp4", face, **motion)
    outs = {}
    for mask in ("none", "face"):
        outs[mask] = root / f"phone-{mask}"
        prepare({"videos": str(root / "phone"), "out": str(outs[mask]), "progress": False, "workers": 2,
                 "flow": {"mask": mask}})
    flows, rows = _apex_flows(outs["none"]), []
    for face in PORTRAITS:
        brightness = {}
        for kind in clips:
            flow, points = flows[f"{face}-{kind}", "eye_close"]
            values = [flow] + [flow * face_weight(points, flow.shape[0], m, FEATHER_IOD)[..., None] for m in MARGINS]
            brightness[kind] = [float(cv2.cvtColor(encode_flow(f, FlowConfig().max_magnitude), cv2.COLOR_RGB2HSV)
                                      [..., 2].mean()) for f in values]
            rows.append([face, kind, *(round(v, 2) for v in brightness[kind])])
        rows.append([face, "sway_only / still", *(round(o / s, 2) for o, s in zip(brightness["sway_only"],
                                                                                    brightness["still"]))])
    rec.table("Phone-like clips (tests/real_clips.py: whole-frame sway, H.264 CRF 28), prepared: mean HSV value "
              "(0-255) of the whole apex flow image, unmasked and by margin (IOD)",
              ["face", "clip", "unmasked", *map(str, MARGINS)], rows)
    if sheet is not None:
        rows = []
        for face in PORTRAITS:
            for kind in clips:
                tiles = [cv2.imread(str(outs[mask] / ".prepare" / "clips" / "eye_close" / f"{face}-{kind}.png"))
                         for mask in ("none", "face")]
                row = np.hstack([tiles[0], tiles[1][:, -tiles[1].shape[0]:]])  # + the masked flow cell
                caption = np.full((22, row.shape[1], 3), 255, np.uint8)
                label = {"still": "left eye closes, still camera", "sway": "left eye closes, the camera sways",
                         "sway_only": "the camera sways, no expression"}[kind]
                cv2.putText(caption, f"{face}: {label}", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                            cv2.LINE_AA)
                rows += [caption, row]
        header = np.full((22, rows[1].shape[1], 3), 255, np.uint8)
        for k, title in enumerate(("baseline", "apex", "flow.mask=none", "flow.mask=face")):
            cv2.putText(header, title, (k * rows[1].shape[0] + 4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                        cv2.LINE_AA)
        cv2.imwrite(str(sheet), np.vstack([header] + rows), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        rec.note(f"contact sheet: {sheet}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=12)
    parser.add_argument("--sheet", type=Path, default=None, help="write the swaying clips' contact sheet here (PNG)")
    args = parser.parse_args()
    with Recording(__doc__) as rec:
        rec.note(f"feather {FEATHER_IOD} IOD; a margin's weight is 1 up to margin - feather from the landmarks' hull")
        bench_synthetic(rec, args.subjects)
        with tempfile.TemporaryDirectory() as tmp:
            photos = _photos(Path(tmp))
            bench_photographs(rec, Path(tmp), photos)
            bench_sway(rec, Path(tmp), args.sheet)


if __name__ == "__main__":
    main()
