"""The synthetic dataset: layout, determinism, caching, the canonical mesh, and graded movement."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from facedyn.assets import MESH_MEMBER, AssetError, read_bundle_member
from facedyn.data.synthetic import MARKER, SyntheticConfig, ensure_dataset, generate_dataset, preset
from facedyn.data.synthetic.__main__ import main as cli
from facedyn.data.synthetic.face import mesh_with_iris
from facedyn.data.synthetic.generator import ClipLabels, clip_samples, sample_labels, sample_subject
from facedyn.data.synthetic.mesh import canonical_mesh, parse_canonical_mesh
from facedyn.flow.encoding import decode_flow
from facedyn.landmarks import LANDMARK_SUBSET_IDXS

SMALL = dict(videos=3, frames_per_video=2, seed=5)
FILES = {"optical_flow.jpg", "expression_landmarks.npy", "baseline_landmarks.npy", "expression_g_column.json",
         "baseline_face.jpg", "expression_face.jpg"}


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory, landmarker_task) -> Path:
    return ensure_dataset(SyntheticConfig(**SMALL, root=str(tmp_path_factory.mktemp("synthetic") / "ds")))


def _files(root: Path) -> dict[str, bytes]:
    """Every file's bytes but the marker's, which records the generation time."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.name != MARKER}


def test_layout_files_and_labels(small_dataset):
    cfg = SyntheticConfig(**SMALL)
    folders = sorted(p for p in small_dataset.iterdir() if p.is_dir())
    assert [p.name for p in folders] == sorted(cfg.expressions)
    for expression_dir in folders:
        samples = sorted(expression_dir.iterdir())
        assert len(samples) == cfg.videos * cfg.frames_per_video
        for sample in samples:
            assert re.fullmatch(r"s\d{4}_\d+", sample.name)
            assert {p.name for p in sample.iterdir()} == FILES
            flow = cv2.imread(str(sample / "optical_flow.jpg"), cv2.IMREAD_UNCHANGED)
            assert flow.shape == (112, 112, 3) and flow.dtype == np.uint8
            for name in ("baseline_face.jpg", "expression_face.jpg"):  # the frames the flow came from, for people
                face = cv2.imread(str(sample / name), cv2.IMREAD_UNCHANGED)
                assert face.shape == (cfg.render_size, cfg.render_size) and 40 < face.mean() < 200
            for name in ("expression_landmarks.npy", "baseline_landmarks.npy"):
                landmarks = np.load(sample / name)
                assert landmarks.shape == (146, 2) and landmarks.dtype == np.float32
                assert landmarks.min() > 0 and landmarks.max() < cfg.render_size  # pixels of the frame
            labels = json.loads((sample / "expression_g_column.json").read_text())
            assert labels["dynamics"] in range(1, 6) and labels["synkinesis"] in range(0, 4)
            assert labels["paralysed_side"] in ("left", "right", "none")
    # Labels are per video and expression: every frame of a clip carries the same ones.
    for expression_dir in folders:
        by_video: dict[str, set] = {}
        for sample in expression_dir.iterdir():
            labels = json.loads((sample / "expression_g_column.json").read_text())
            by_video.setdefault(sample.name.rsplit("_", 1)[0], set()).add(
                (labels["dynamics"], labels["synkinesis"], labels["paralysed_side"]))
        assert all(len(v) == 1 for v in by_video.values())
    sheet = cv2.imread(str(small_dataset / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[0] > 112 * cfg.videos
    marker = json.loads((small_dataset / MARKER).read_text())
    assert marker["samples"] == cfg.videos * cfg.frames_per_video * len(cfg.expressions)
    assert marker["config"] == cfg.content()


def _corner_flow(folder: Path) -> float:
    """Flow magnitude around the mouth corner that moves more (the healthier side), in 112-px pixels."""
    image = cv2.cvtColor(cv2.imread(str(folder / "optical_flow.jpg")), cv2.COLOR_BGR2RGB)
    magnitude = np.linalg.norm(decode_flow(image, SyntheticConfig().max_flow_magnitude), axis=-1)
    landmarks = np.load(folder / "baseline_landmarks.npy") * 112 / SyntheticConfig().render_size
    values = []
    for corner in (61, 291):
        x, y = landmarks[LANDMARK_SUBSET_IDXS.index(corner)].astype(int)
        values.append(magnitude[y - 6:y + 6, x - 6:x + 6].mean())
    return max(values)


def test_frames_ramp_from_onset_to_peak(small_dataset):
    for onset in (small_dataset / "smile").glob("s*_0"):
        peak = onset.parent / onset.name.replace("_0", "_1")
        fractions = [json.loads((f / "expression_g_column.json").read_text())["peak_fraction"] for f in (onset, peak)]
        assert 0.3 < fractions[0] < fractions[1] <= 1.0
        assert _corner_flow(peak) > 1.3 * _corner_flow(onset)


def test_same_seed_same_bytes_also_in_parallel_other_seed_other_data(small_dataset, tmp_path):
    again = generate_dataset(tmp_path / "again", SyntheticConfig(**SMALL), workers=2)
    assert _files(again) == _files(small_dataset)
    other = generate_dataset(tmp_path / "other", SyntheticConfig(**{**SMALL, "seed": 6, "videos": 1}))
    a = np.load(small_dataset / "smile" / "s0000_0" / "baseline_landmarks.npy")
    b = np.load(other / "smile" / "s0000_0" / "baseline_landmarks.npy")
    assert np.abs(a - b).max() > 1.0


def test_ensure_reuses_a_complete_dataset_and_refuses_other_settings(small_dataset):
    marker = small_dataset / MARKER
    stamp = marker.stat().st_mtime_ns
    assert ensure_dataset(SyntheticConfig(**SMALL, root=str(small_dataset))) == small_dataset
    assert marker.stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="other settings"):
        ensure_dataset(SyntheticConfig(**{**SMALL, "seed": 9}, root=str(small_dataset)))


def test_default_root_is_in_the_cache_named_by_settings(tmp_path, monkeypatch, landmarker_task):
    monkeypatch.setenv("FACEDYN_CACHE_DIR", str(tmp_path))
    cfg = SyntheticConfig(videos=1, frames_per_video=1, expressions=["smile"])
    root = ensure_dataset(cfg)
    assert root == tmp_path / "datasets" / f"synthetic-{cfg.digest()}"
    assert not list(root.parent.glob(".*tmp*"))  # staging folder renamed into place
    assert SyntheticConfig(videos=1, frames_per_video=1, expressions=["smile"], seed=1).digest() != cfg.digest()


def test_refuses_a_folder_that_is_not_a_finished_dataset(tmp_path, landmarker_task):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a completed synthetic dataset"):
        ensure_dataset(SyntheticConfig(videos=1, root=str(tmp_path / "busy")))


def test_cli_generates_and_reports(tmp_path, capsys, landmarker_task):
    assert cli(["--out", str(tmp_path / "cli"), "--videos", "1", "--seed", "3"]) == 0
    default = preset("default")
    assert f"{len(default.expressions) * default.frames_per_video} samples" in capsys.readouterr().out
    assert cli(["--out", str(tmp_path / "cli"), "--videos", "2"]) == 2
    assert "other settings" in capsys.readouterr().err


def test_settings_are_checked():
    with pytest.raises(ValueError, match="not among"):
        SyntheticConfig(expressions=["yawn"])
    with pytest.raises(ValueError, match="movement_by_grade needs 5"):
        SyntheticConfig(movement_by_grade=[0.1, 1.0])
    with pytest.raises(ValueError, match="unknown preset"):
        preset("huge")
    assert preset("large").videos * preset("large").frames_per_video > 4 * preset("default").videos


def test_labels_cover_all_grades():
    cfg = SyntheticConfig()
    labels = [lab for i in range(cfg.videos) for lab in sample_labels(cfg, i).values()]
    assert {lab.dynamics for lab in labels} == {1, 2, 3, 4, 5}
    assert {lab.synkinesis for lab in labels} == {0, 1, 2, 3}
    assert {lab.paralysed_side for lab in labels} == {"left", "right", "none"}
    assert all(lab.dynamics == 5 and lab.synkinesis == 0 for lab in labels if lab.paralysed_side == "none")


def test_mesh_from_bundle_matches_the_obj_copy(landmarker_task, mediapipe_fixtures):
    mesh = canonical_mesh(landmarker_task)
    vertices, uv, corners = [], [], []
    for line in (mediapipe_fixtures / "canonical_face_model.obj").read_text().splitlines():
        parts = line.split()
        if parts[:1] == ["v"]:
            vertices.append([float(x) for x in parts[1:4]])
        elif parts[:1] == ["vt"]:
            uv.append([float(x) for x in parts[1:3]])
        elif parts[:1] == ["f"]:  # vertex/texture-coordinate index pairs, 1-based
            corners.append([[int(i) - 1 for i in p.split("/")[:2]] for p in parts[1:4]])
    corners = np.array(corners)
    assert mesh.vertices.shape == (468, 3) and mesh.triangles.shape == (898, 3)
    assert np.allclose(mesh.vertices, vertices, atol=1e-5)
    assert np.array_equal(mesh.triangles, corners[..., 0])
    # The OBJ numbers its texture coordinates separately and with v flipped.
    obj_uv = np.array(uv)[corners[..., 1]]
    assert np.allclose(mesh.uv[corners[..., 0], 0], obj_uv[..., 0], atol=1e-5)
    assert np.allclose(1.0 - mesh.uv[corners[..., 0], 1], obj_uv[..., 1], atol=1e-5)


def test_damaged_mesh_data_is_a_clear_error(landmarker_task):
    data = read_bundle_member(landmarker_task, MESH_MEMBER)
    with pytest.raises(AssetError, match="broken.binarypb"):
        parse_canonical_mesh(data[: len(data) // 2], "broken.binarypb")
    with pytest.raises(AssetError, match="expected 468 vertices"):
        parse_canonical_mesh(b"\x0a\x00", "empty.binarypb")


def test_synthetic_iris_matches_the_real_portrait(mediapipe_fixtures):
    text = (mediapipe_fixtures / "face_blendshapes_in_landmarks.prototxt").read_text()
    x = [float(v) for v in re.findall(r"\bx: ([-\d.e]+)", text)]
    y = [float(v) for v in re.findall(r"\by: ([-\d.e]+)", text)]
    real = np.stack([np.array(x) * 820, np.array(y) * 1024], axis=1)  # the portrait's pixel size
    synthetic = mesh_with_iris(real[:468], gaze=np.zeros(2))
    eye_width = np.linalg.norm(real[33] - real[133])
    for first in (468, 473):
        error = np.linalg.norm(synthetic[first:first + 5] - real[first:first + 5], axis=1)
        assert error.max() < 0.12 * eye_width  # same points in the same order, within a gaze offset
    assert len(LANDMARK_SUBSET_IDXS) == 146 and max(LANDMARK_SUBSET_IDXS) == 477


def _peak(mesh, cfg, subject, expression, labels):
    subject = dataclasses.replace(subject, labels={expression: labels})
    return next(clip_samples(mesh, cfg, subject, expression, np.random.default_rng(0)))


def _side_movement(sample, region_idxs) -> tuple[float, float]:
    """Mean landmark displacement of a region on the subject's (right, left) side, in pixels."""
    moved = np.linalg.norm(sample.expression_landmarks - sample.baseline_landmarks, axis=1)
    right = [LANDMARK_SUBSET_IDXS.index(i) for i in region_idxs[0]]
    left = [LANDMARK_SUBSET_IDXS.index(i) for i in region_idxs[1]]
    return float(moved[right].mean()), float(moved[left].mean())


UPPER_LIDS = ((159, 160, 158, 161, 157), (386, 387, 385, 388, 384))
MOUTH_CORNERS = ((61, 146, 91, 185), (291, 375, 321, 409))


def test_paralysed_side_moves_by_grade_and_synkinesis_adds_movement(landmarker_task):
    mesh = canonical_mesh()
    cfg = SyntheticConfig(peak_fraction_range=[1.0, 1.0], frames_per_video=1, landmark_noise_px=0.0,
                          head_motion_deg=0.0, head_motion_px=0.0, movement_noise=0.0)
    for index in range(3):
        subject, _ = sample_subject(mesh, cfg, index)
        # Dynamics: the paralysed (left) lids close more with each grade; the healthy side stays.
        lids = [_side_movement(_peak(mesh, cfg, subject, "eye_close", ClipLabels(g, 0, "left")), UPPER_LIDS)
                for g in range(1, 6)]
        left = [m[1] for m in lids]
        assert all(b > a + 0.3 for a, b in zip(left, left[1:])), left
        assert left[0] < 0.2 * lids[0][0]
        assert np.ptp([m[0] for m in lids]) < 0.1 * lids[0][0]
        # Synkinesis: during eye closure the paralysed side's mouth corner moves, more with each grade.
        corners = [_side_movement(_peak(mesh, cfg, subject, "eye_close", ClipLabels(3, s, "right")), MOUTH_CORNERS)
                   for s in range(4)]
        right = [m[0] for m in corners]
        assert all(b > a + 0.3 for a, b in zip(right, right[1:])), right
        assert max(m[1] for m in corners) < 0.5


def test_flow_shows_the_paralysed_side_moving_less(landmarker_task):
    mesh = canonical_mesh()
    cfg = SyntheticConfig(peak_fraction_range=[1.0, 1.0], frames_per_video=1, max_yaw_deg=3.0)
    subject, _ = sample_subject(mesh, cfg, 0)
    healthy, paralysed = [], []
    for side in ("left", "right"):
        sample = _peak(mesh, cfg, subject, "smile", ClipLabels(1, 0, side))
        magnitude = np.linalg.norm(decode_flow(sample.flow_image, cfg.max_flow_magnitude), axis=-1)
        scale = cfg.image_size / cfg.render_size
        for corner, store in ((291, None), (61, None)):
            x, y = sample.baseline_landmarks[LANDMARK_SUBSET_IDXS.index(corner)] * scale
            value = magnitude[int(y) - 6:int(y) + 6, int(x) - 6:int(x) + 6].mean()
            is_paralysed = (corner == 291) == (side == "left")
            (paralysed if is_paralysed else healthy).append(value)
    assert min(healthy) > 2.0 * max(paralysed), (healthy, paralysed)


def test_generator_imports_neither_tensorflow_nor_torch():
    # It runs inside training (torch must not meet TensorFlow there) and on machines without either.
    code = ("import sys, facedyn.data.synthetic.generator, facedyn.data.synthetic.__main__; "
            "print(sorted(m for m in ('tensorflow', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_paralysed_side_sags_at_rest_by_severity(landmarker_task):
    mesh = canonical_mesh()
    cfg, flat = SyntheticConfig(), SyntheticConfig(resting_droop=0.0)
    checked = 0
    for index in range(40):
        labels = list(sample_labels(cfg, index).values())
        if labels[0].paralysed_side == "none":
            continue
        sag = sample_subject(mesh, flat, index)[0].neutral - sample_subject(mesh, cfg, index)[0].neutral
        corner_sag = dict(zip(("right", "left"), sag[[61, 291], 1]))  # cm, canonical y points up
        paralysed = labels[0].paralysed_side
        healthy = "left" if paralysed == "right" else "right"
        expected = 0.25 * (5 - np.mean([lab.dynamics for lab in labels])) / 4
        assert corner_sag[paralysed] == pytest.approx(expected, abs=0.03)
        assert abs(corner_sag[healthy]) < 0.01
        checked += 1
    assert checked >= 20


def test_hard_preset_generates_and_reads(tmp_path, capsys, landmarker_task):
    from omegaconf import OmegaConf

    from facedyn.config import compose
    from facedyn.data.config import DataConfig
    from facedyn.data.layout import scan
    from facedyn.data.reader import read_samples
    from facedyn.data.settings import ReaderSettings

    assert cli(["--out", str(tmp_path / "hard"), "--preset", "hard", "--videos", "1"]) == 0
    marker = json.loads((tmp_path / "hard" / MARKER).read_text())["config"]
    hard, default = preset("hard"), preset("default")
    assert marker == preset("hard", videos=1).content()
    for name in ("head_motion_deg", "head_motion_px", "landmark_noise_px"):  # clinic-like: more of each
        assert getattr(hard, name) >= 2 * getattr(default, name)
    assert (hard.videos, hard.frames_per_video) == (default.videos, default.frames_per_video)
    composed = OmegaConf.to_container(compose(["data=synthetic_hard"]).data.synthetic)  # train.py data=synthetic_hard
    assert {k: v for k, v in composed.items() if k != "root"} == hard.content()
    result = read_samples(scan(tmp_path / "hard"), ReaderSettings.from_config(DataConfig()))
    assert not result.bad and len(result.samples) == len(hard.expressions) * hard.frames_per_video


def test_still_camera_preset_leaves_only_the_faces_movement_in_the_flow(landmarker_task):
    """Same subject and grades: without head motion, camera noise and lighting change the flow of a one-sided
    smile is weaker overall and lies more on the half that moved."""
    mesh = canonical_mesh(landmarker_task)
    labels = ClipLabels(dynamics=1, synkinesis=0, paralysed_side="left")
    shares, totals = [], []
    for cfg in (preset("default", frames_per_video=1), preset("still_camera", frames_per_video=1)):
        subject, _ = sample_subject(mesh, cfg, 0)
        sample = _peak(mesh, cfg, subject, "smile", labels)
        magnitude = np.linalg.norm(decode_flow(sample.flow_image, cfg.max_flow_magnitude), axis=-1)
        midline = sample.baseline_landmarks[:, 0].mean() * cfg.image_size / cfg.render_size
        healthy = magnitude[:, : int(midline)]  # the subject's right half lies on the image's left
        shares.append(healthy.sum() / magnitude.sum())
        totals.append(magnitude.sum())
    assert totals[1] < totals[0] and shares[1] > shares[0] > 0.5
