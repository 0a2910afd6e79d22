"""prepare.py end to end on real videos of a real face (tests/face_videos.py): MediaPipe's landmarker in
worker processes, frames chosen, registered flow, report, contact sheets, then the reader and train.py.

One module fixture runs `python prepare.py` once on a folder of good and bad clips; most tests read its
output. MediaPipe never runs in this (torch) process: only prepare.py's spawned workers import it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from facedyn.data.config import DataConfig
from facedyn.data.layout import FLOW_FILE, LABELS_FILE, scan
from facedyn.data.reader import read_samples
from facedyn.data.settings import ReaderSettings
from facedyn.flow.encoding import decode_flow
from facedyn.flow.mask import FEATHER_IOD, MARGIN_IOD
from facedyn.flow.registration import apply
from facedyn.measurements import measure
from facedyn.videos import PrepareError, prepare
from facedyn.videos.clip import MEDIAPIPE_BLENDSHAPES_FILE, RECORDS_DIR
from facedyn.videos.config import FlowConfig
from facedyn.videos.pair import crop_transform
from tests.conftest import REPO, tiny_epochs
from tests.face_videos import (APEX_FRAME, CLOSE_LEFT_EYE, SMILE_RIGHT, FaceClip, no_face_video,
                               synthetic_face_video, truncated_copy, two_faces_video)
from tests.test_flow_mask import hull_distance_in_iod

GRADES = ("patient,expression,dynamics,synkinesis\n"
          "p1,smile,3,1\np2,Smile,4,0\np1,eye_close,5,0\nsyn,smile,2,1\np9,smile,1,0\n")
MAX_MAGNITUDE = 4.0


def _prepare_py(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, str(REPO / "prepare.py"), "progress=false", *args], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)


def _report(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "prepare_report.csv") as fh:
        return {row["video"] or f"{row['patient']}/{row['expression']}": row for row in csv.DictReader(fh)}


def _files(root: Path) -> dict[str, str]:
    """sha256 of every file a person or the reader uses (the dataset, report, sheets)."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and RECORDS_DIR not in p.parts}


def _sample_dirs(out: Path) -> list[Path]:
    return sorted(p for p in out.glob("[!.]*/[!.]*_*") if p.is_dir())


def _brightness(flow_jpg: Path) -> np.ndarray:
    """Flow magnitude per pixel (pixels at 112) of a written flow image."""
    rgb = cv2.cvtColor(cv2.imread(str(flow_jpg), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return np.linalg.norm(decode_flow(rgb, MAX_MAGNITUDE), axis=-1)


def _good_videos(root: Path) -> Path:
    clip = FaceClip()
    clip.write(root / "p1" / "smile.mp4", SMILE_RIGHT)
    FaceClip(640, 480).write(root / "p2" / "Smile.avi", SMILE_RIGHT, head_motion=True)  # name mapped to smile
    clip.write(root / "p3" / "brow_raise.avi", None, head_motion=True)  # head motion only, not graded
    clip.write(root / "p1" / "eye_close.mkv", CLOSE_LEFT_EYE)
    synthetic_face_video(root / "syn" / "smile.mov")
    return root


@pytest.fixture(scope="module")
def videos(tmp_path_factory, landmarker_task) -> Path:
    root = _good_videos(tmp_path_factory.mktemp("videos"))
    no_face_video(root / "p4" / "snarl.mp4")
    truncated_copy(root / "p1" / "smile.mp4", root / "p5" / "smile.mp4")
    truncated_copy(root / "p1" / "eye_close.mkv", root / "p8" / "eye_close.mkv")  # Matroska decodes up to the cut
    two_faces_video(root / "p10" / "smile.avi")
    (root / "p6" / "smile.mp4").parent.mkdir()
    (root / "p6" / "smile.mp4").write_bytes(b"")
    (root / "p7").mkdir()
    (root / "p7" / "smile.mp4").write_text("patient refused filming\n")
    (root.parent / "grades.csv").write_text(GRADES)
    return root


@pytest.fixture(scope="module")
def prepared(videos, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("prepared") / "dataset"
    result = _prepare_py(f"videos={videos}", f"grades={videos.parent / 'grades.csv'}", f"out={out}",
                         "landmarker.blendshapes=true", "workers=2")
    assert result.returncode == 0, result.stdout
    return out, result


def test_report_names_every_clip_and_bad_file(prepared):
    out, result = prepared
    report = _report(out)
    for video in ("p1/smile.mp4", "p2/Smile.avi", "p3/brow_raise.avi", "p1/eye_close.mkv", "syn/smile.mov"):
        row = report[video]
        assert row["status"] == "ok", row
        assert float(row["one_face_share"]) == 1.0  # a face in every frame
        assert int(row["frames_read"]) == (24 if video.startswith("syn") else 40)
    reasons = {video: report[video]["reason"]
               for video in ("p4/snarl.mp4", "p5/smile.mp4", "p6/smile.mp4", "p7/smile.mp4", "p8/eye_close.mkv",
                             "p10/smile.avi")}
    assert reasons == {
        "p4/snarl.mp4": "no face in any frame",
        "p5/smile.mp4": "damaged or truncated MP4/MOV file: it cannot be opened (its index is missing or broken)",
        "p6/smile.mp4": "empty file (0 bytes)",
        "p7/smile.mp4": "not a video file (no known video container at its start)",
        "p8/eye_close.mkv": reasons["p8/eye_close.mkv"],
        "p10/smile.avi": ("exactly one face in only 0% of frames (several faces in 100%); "
                          "quality.min_one_face_share=0.8"),
    }
    truncated = reasons["p8/eye_close.mkv"]
    assert truncated.startswith("truncated: ") and truncated.endswith(" of 40 frames decoded")
    assert all(report[v]["status"] == "skipped" and report[v]["samples"] == "0" for v in reasons)
    assert report["p9/smile"]["status"] == "no_video"  # graded, no video
    assert report["p2/Smile.avi"]["expression"] == "smile"
    assert "11 clip(s): 5 prepared, 6 skipped" in result.stdout
    assert "Traceback" not in result.stdout
    for expression in ("smile", "eye_close", "brow_raise"):
        sheet = cv2.imread(str(out / f"contact_sheet_{expression}.png"))
        assert sheet is not None and sheet.shape[1] == 3 * 160
    assert not (out / "contact_sheet_snarl.png").exists()


def test_apex_is_found_within_two_frames_of_the_warps_maximum(prepared):
    report = _report(prepared[0])
    for video in ("p1/smile.mp4", "p2/Smile.avi", "p1/eye_close.mkv"):  # p2 with head motion
        row = report[video]
        assert abs(int(row["apex_frame"]) - APEX_FRAME) <= 2, row
        chosen = [int(f) for f in row["chosen_frames"].split()]
        assert len(chosen) == 3 and int(row["apex_frame"]) in chosen
        assert int(row["baseline_frame"]) < 9  # in the rest phase (the warp starts after frame 8)


def test_samples_are_what_the_reader_accepts(prepared):
    out, _ = prepared
    folders = scan(out)
    report = _report(out)
    names = {f.relative for f in folders}
    expected = {f"{row['expression']}/{row['patient']}_{frame}" for row in report.values() if row["status"] == "ok"
                for frame in row["chosen_frames"].split()}
    assert names == expected  # named by their real frame index
    cfg = DataConfig(root=str(out))
    labelled = [f for f in folders if not f.missing_files]
    result = read_samples(labelled, ReaderSettings.from_config(cfg))
    assert result.bad == [] and len(result.samples.video) == len(labelled) == 12
    labels = json.loads((out / "smile" / f"p2_{report['p2/Smile.avi']['apex_frame']}" / LABELS_FILE).read_text())
    assert (labels["dynamics"], labels["synkinesis"]) == (4, 0)
    unlabelled = [f for f in folders if f.missing_files]
    assert {f.relative.rpartition("_")[0] for f in unlabelled} == {"brow_raise/p3"}  # not graded: no label file
    assert all(f.missing_files == [LABELS_FILE] for f in unlabelled)
    # Landmarks in pixels of the original frame: p2 is 640x480, its face well inside.
    landmarks = np.load(out / "smile" / f"p2_{report['p2/Smile.avi']['apex_frame']}" / "expression_landmarks.npy")
    assert landmarks.shape == (146, 2) and landmarks.dtype == np.float32
    assert 150 < landmarks[:, 0].min() and landmarks[:, 0].max() < 490 and landmarks[:, 1].max() < 480


def test_report_measures_the_apex_and_names_the_side_that_moved_less(prepared):
    """The smile warp pulls the patient's right mouth corner 6.7 photograph pixels out and up (~9 mm at the
    astronaut's iris of ~11.8 mm): MediaPipe follows most of it on the right and little on the left."""
    out, _ = prepared
    report = _report(out)
    for video in ("p1/smile.mp4", "p2/Smile.avi"):  # 256 x 256 and 640 x 480: the same millimetres
        row = report[video]
        assert (row["measured_movement"], row["unit"], row["affected_side"]) == ("commissure_excursion", "mm", "left")
        assert 4.0 < float(row["movement_right"]) < 12.0 and float(row["affected_to_healthy"]) < 0.35, row
    eye = report["p1/eye_close.mkv"]  # the left upper lid is pushed down
    assert eye["measured_movement"] == "eye_closure" and float(eye["movement_left"]) > float(eye["movement_right"])
    assert report["p4/snarl.mp4"]["measured_movement"] == ""  # skipped: nothing measured


def test_the_astronaut_at_rest_measures_within_adult_norms(prepared):
    """Iris-scaled measurements of a real face (MediaPipe's landmarks of the astronaut photograph at rest)
    within adult norms: palpebral fissure height 9.7 ± 1.2 mm (Read et al. 2006; mean ± 2 SD), mouth width
    50.2 ± 3.3 mm (women) to 54.5 ± 3.5 mm (men) (Farkas 1994; from the women's mean − 2 SD to the men's
    + 2 SD); and the same in both clip sizes."""
    out, _ = prepared
    report = _report(out)
    folders = [out / "smile" / f"{patient}_{report[video]['apex_frame']}"
               for patient, video in (("p1", "p1/smile.mp4"), ("p2", "p2/Smile.avi"))]
    rest = np.stack([np.load(f / "baseline_landmarks.npy") for f in folders])
    small, large = measure(rest, rest, ["smile", "smile"])
    for result in (small, large):
        print(result.scale_source, {k: np.round(v, 2).tolist() for k, v in result.rest.items()})
        assert result.unit == "mm"
        assert np.all((7.3 <= result.rest["palpebral_fissure_height"]) & (result.rest["palpebral_fissure_height"] <= 12.1))
        assert 43.6 <= result.rest["intercommissural_width"] <= 61.5
    for name in ("palpebral_fissure_height", "intercommissural_width", "brow_height"):
        np.testing.assert_allclose(large.rest[name], small.rest[name], rtol=0.05)


def test_flow_is_bright_on_the_moved_side_only(prepared):
    out, _ = prepared
    for video, patient in (("p1/smile.mp4", "p1"), ("p2/Smile.avi", "p2")):
        apex = _report(out)[video]["apex_frame"]
        magnitude = _brightness(out / "smile" / f"{patient}_{apex}" / "optical_flow.jpg")
        # The lower face inside the crop (the face fills its middle 80 %); the subject's right is the image's left.
        moved, other = magnitude[60:100, 20:56].mean(), magnitude[60:100, 56:92].mean()
        assert moved > 3 * other, (video, moved, other)


def test_registration_cancels_head_motion(prepared, videos, tmp_path):
    """p3 only moves its head: its flow is near still with registration, not without (both measured)."""
    out, _ = prepared
    unregistered = tmp_path / "unregistered"
    result = _prepare_py(f"videos={videos}", f"out={unregistered}", "flow.register=false", "workers=1",
                         "layout=patient/expression", "expressions={brow_raise: [brow_raise]}")
    assert result.returncode == 0, result.stdout
    apex = _report(out)["p3/brow_raise.avi"]["apex_frame"]
    registered = _brightness(out / "brow_raise" / f"p3_{apex}" / "optical_flow.jpg").mean()
    raw = _brightness(unregistered / "brow_raise" / f"p3_{apex}" / "optical_flow.jpg").mean()
    smile = _brightness(out / "smile" / f"p1_{_report(out)['p1/smile.mp4']['apex_frame']}" / "optical_flow.jpg")
    print(f"mean flow magnitude, head motion only: {registered:.3f} px registered, {raw:.3f} px not; "
          f"smile, lower face on its side: {smile[60:100, 20:56].mean():.3f} px")
    assert registered < 0.1 * raw
    assert registered < 0.2 * smile[60:100, 20:56].mean()


def test_flow_outside_the_face_is_cleared_and_mask_none_keeps_it(prepared, videos, tmp_path):
    """p3 only moves its head; prepared again with flow.mask=none, its flow images hold the same face and the
    flow beyond the widened hull (registration residue, compression noise) that the default mask clears."""
    out, _ = prepared
    plain = tmp_path / "plain"
    result = _prepare_py(f"videos={videos}", f"out={plain}", "flow.mask=none", "workers=1",
                         "layout=patient/expression", "expressions={brow_raise: [brow_raise]}")
    assert result.returncode == 0, result.stdout
    cfg = FlowConfig()
    folders = sorted((out / "brow_raise").glob("p3_*"))
    assert len(folders) == 3
    for folder in folders:
        base = np.load(folder / "baseline_landmarks.npy").astype(np.float64)
        # The crop is the box of all 478 points; the subset's, which holds the face's outline, is the same box.
        points = (apply(crop_transform(base, cfg), base) + 0.5) * cfg.image_size / cfg.crop_size
        beyond = hull_distance_in_iod(points)
        outside = beyond > MARGIN_IOD + 0.05
        masked, unmasked = _brightness(folder / FLOW_FILE), _brightness(plain / "brow_raise" / folder.name / FLOW_FILE)
        print(f"{folder.name}: flow beyond the margin, mean {unmasked[outside].mean():.3f} px unmasked "
              f"({np.mean(unmasked[outside] > 0):.0%} of pixels), {masked[outside].mean():.3f} px masked")
        assert np.mean(unmasked[outside] > 0) > 0.2  # there is flow out there without the mask (above the noise floor)
        assert masked[outside].mean() < 0.25 * unmasked[outside].mean() and np.mean(masked[outside] == 0) > 0.5
        # On the face the same pixels: compare the 16 px JPEG blocks whose neighbours lie where the weight is 1
        # (JPEG codes each block alone; decoding interpolates colour across a block's border).
        rgb = [cv2.imread(str(f / FLOW_FILE)) for f in (folder, plain / "brow_raise" / folder.name)]
        untouched = beyond < MARGIN_IOD - FEATHER_IOD - 0.02
        blocks = untouched.reshape(7, 16, 7, 16).all(axis=(1, 3))
        clean = np.zeros_like(blocks)
        clean[1:-1, 1:-1] = np.all([blocks[1 + dy:6 + dy, 1 + dx:6 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0)
        assert clean.sum() >= 2
        same = np.kron(clean, np.ones((16, 16), bool))
        np.testing.assert_array_equal(rgb[0][same], rgb[1][same])


def test_written_landmarks_reproduce_mediapipes_blendshapes(prepared):
    import torch

    from facedyn.blendshapes import load

    out, _ = prepared
    model = load().eval()
    expression, baseline, expected = [], [], []
    for folder in _sample_dirs(out):
        scores = json.loads((folder / MEDIAPIPE_BLENDSHAPES_FILE).read_text())
        expression.append(np.load(folder / "expression_landmarks.npy"))
        baseline.append(np.load(folder / "baseline_landmarks.npy"))
        expected += [list(scores["expression"].values()), list(scores["baseline"].values())]
    points = np.stack([x for pair in zip(expression, baseline) for x in pair])
    with torch.no_grad():
        ours = model(torch.from_numpy(points)).numpy()
    difference = np.abs(ours - np.asarray(expected, np.float32)).max()
    print(f"{len(points)} landmark sets: max |torch - MediaPipe| = {difference:.2e}")
    assert len(points) == 30 and difference < 1e-5


def test_prepared_folder_trains(prepared, tmp_path):
    out, _ = prepared
    args = [f"paths.output_dir={tmp_path}", "data=folder", f"data.root={out}", f"data.cache_dir={tmp_path / 'cache'}",
            "data.bad_samples.max_fraction=0.25", "data.batch_size=4", "model.flow.weights=none",
            "trainer.progress=false", "trainer.threads=2", f"hydra.run.dir={tmp_path / 'run'}", *tiny_epochs()]
    result = subprocess.run([sys.executable, str(REPO / "train.py"), *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, timeout=600)
    assert result.returncode == 0, result.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert np.isfinite(metrics["final"]["val_loss"])
    with open(tmp_path / "run" / "bad_samples.csv") as fh:
        bad = list(csv.DictReader(fh))
    assert len(bad) == 3 and all("p3_" in "".join(row.values()) for row in bad)  # the ungraded clip


def test_rerun_reuses_unchanged_clips_and_redoes_a_regraded_one(prepared, videos, tmp_path):
    out, _ = prepared
    before = _files(out)
    grades = videos.parent / "grades.csv"
    summary = prepare({"videos": str(videos), "out": str(out), "grades": str(grades), "progress": False,
                       "landmarker": {"blendshapes": True}})
    assert (summary.prepared, summary.reused) == (0, 11)  # bad files too: their records hold the reason
    assert _files(out) == before  # same videos and settings: the same bytes
    regraded = tmp_path / "grades.csv"
    regraded.write_text(GRADES.replace("p1,smile,3,1", "p1,smile,2,1"))
    summary = prepare({"videos": str(videos), "out": str(out), "grades": str(regraded), "progress": False,
                       "landmarker": {"blendshapes": True}})
    redone = {o.relative for o in summary.outcomes if o.status == "ok"} - {"p2/Smile.avi", "p3/brow_raise.avi",
                                                                            "p1/eye_close.mkv", "syn/smile.mov"}
    assert summary.prepared == 1 and redone == {"p1/smile.mp4"}
    after = _files(out)
    changed = {name for name in after if after[name] != before.get(name)}
    assert changed and all(name.startswith("smile/p1_") or name in ("contact_sheet_smile.png",) for name in changed)
    prepare({"videos": str(videos), "out": str(out), "grades": str(grades), "progress": False,
             "landmarker": {"blendshapes": True}})
    assert _files(out) == before


def test_same_clip_gives_the_same_bytes_with_one_worker_and_is_redone_when_it_changes(prepared, tmp_path):
    out, _ = prepared
    videos = FaceClip().write(tmp_path / "videos" / "p1" / "smile.mp4", SMILE_RIGHT).parents[1]
    (tmp_path / "grades.csv").write_text(GRADES)
    single = tmp_path / "single"
    summary = prepare({"videos": str(videos), "out": str(single), "grades": str(tmp_path / "grades.csv"),
                       "workers": 1, "progress": False, "landmarker": {"blendshapes": True}})
    assert summary.samples == 3
    mine = {k: v for k, v in _files(single).items() if k.startswith("smile/")}
    assert mine == {k: v for k, v in _files(out).items() if k.startswith("smile/p1_")}
    # Changed settings redo the clip (and its samples of the old settings go); so does a changed video.
    settings = {"videos": str(videos), "out": str(single), "grades": str(tmp_path / "grades.csv"), "workers": 1,
                "progress": False, "selection": {"frames": 2}}
    summary = prepare(settings)
    assert summary.prepared == 1 and len(summary.ok[0].samples) == 2 == len(_sample_dirs(single))
    assert prepare(settings).prepared == 0
    two_frames = _files(single)
    FaceClip().write(videos / "p1" / "smile.mp4", CLOSE_LEFT_EYE)
    assert prepare(settings).prepared == 1
    changed = _files(single)
    flows = {k: v for k, v in changed.items() if k.endswith(".jpg")}
    assert flows != {k: v for k, v in two_frames.items() if k.endswith(".jpg")}


def test_killed_run_leaves_only_complete_samples_and_a_rerun_finishes(videos, prepared, tmp_path):
    clips = tmp_path / "videos"
    for video in ("p1/smile.mp4", "p1/eye_close.mkv", "syn/smile.mov"):
        (clips / video).parent.mkdir(parents=True, exist_ok=True)
        (clips / video).symlink_to(videos / video)
    out = tmp_path / "dataset"
    settings = [f"videos={clips}", f"out={out}", f"grades={videos.parent / 'grades.csv'}",
                "landmarker.blendshapes=true"]
    process = subprocess.Popen([sys.executable, str(REPO / "prepare.py"), "progress=false", *settings], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not _sample_dirs(out) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)  # the workers die with it (PR_SET_PDEATHSIG)
    process.wait()
    time.sleep(0.5)
    assert _sample_dirs(out), "killed before any sample was written"
    for folder in _sample_dirs(out):  # visible sample folders are complete
        assert {p.name for p in folder.iterdir()} == {"optical_flow.jpg", "expression_landmarks.npy",
                                                      "baseline_landmarks.npy", LABELS_FILE, MEDIAPIPE_BLENDSHAPES_FILE,
                                                      "baseline_face.jpg", "expression_face.jpg"}
    result = _prepare_py(*settings)
    assert result.returncode == 0, result.stdout
    assert "3 clip(s): 3 prepared, 0 skipped" in result.stdout
    samples = {k: v for k, v in _files(out).items() if "/" in k}
    reference = {k: v for k, v in _files(prepared[0]).items()
                 if k.startswith(("smile/p1_", "smile/syn_", "eye_close/"))}
    assert samples == reference and len(samples) == 9 * 7


def test_second_writer_is_refused(videos, tmp_path):
    from filelock import FileLock

    out = tmp_path / "dataset"
    (out / RECORDS_DIR).mkdir(parents=True)
    (out / RECORDS_DIR / "prepare.json").write_text("{}")
    with FileLock(str(out / RECORDS_DIR / "lock")):
        with pytest.raises(PrepareError, match="another prepare.py is writing there"):
            prepare({"videos": str(videos), "out": str(out), "progress": False})


def test_nothing_usable_exits_non_zero_with_one_line(tmp_path, landmarker_task):
    videos = tmp_path / "videos"
    no_face_video(videos / "p1" / "smile.avi")
    result = _prepare_py(f"videos={videos}", f"out={tmp_path / 'out'}")
    assert result.returncode == 1
    assert "skipped p1/smile.avi: no face in any frame" in result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith("error: nothing usable was produced")


@pytest.mark.parametrize("override, message", [
    ("flow.method=lucas", "flow.method='lucas' must be one of farneback, dis"),
    ("selection.baseline=middle", "selection.baseline='middle' is not one of first, most_neutral or a frame index"),
    ("grades=/nonexistent/grades.csv", "grades=/nonexistent/grades.csv: does not exist"),
])
def test_bad_settings_are_one_line(tmp_path, override, message):
    videos = tmp_path / "videos" / "p1"
    videos.mkdir(parents=True)
    (videos / "smile.mp4").write_bytes(b"x")
    result = _prepare_py(f"videos={videos.parent}", f"out={tmp_path / 'out'}", override)
    assert result.returncode == 1 and "Traceback" not in result.stdout
    assert result.stdout.strip().splitlines()[-1] == f"error: {message}"
