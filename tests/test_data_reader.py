"""Reading the clinic's layout: good samples decode faithfully, every kind of bad sample is found and reported."""

from __future__ import annotations

import csv
import json
import logging
import re
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest
from omegaconf import OmegaConf

from facedyn.conf import CONF_DIR
from facedyn.data import DataError, load_training_data
from facedyn.data.layout import BASELINE_LANDMARKS_FILE, EXPRESSION_LANDMARKS_FILE, FLOW_FILE, LABELS_FILE
from facedyn.data.loading import as_data_config
from facedyn.flow.encoding import decode_flow, encode_flow
from tests.test_data_fixtures import dataset_root, folder_config, write_dataset, write_sample  # noqa: F401

VICTIM = "smile/patient03_0001"


def _read_report(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "bad_samples.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_good_samples_decode_to_the_files_contents(dataset_root: Path, tmp_path: Path) -> None:
    write_sample(dataset_root, "smile", "pat_07", "0012", np.random.default_rng(1), labels={"dynamics": 4, "synkinesis": 2})
    data = load_training_data(folder_config(dataset_root, tmp_path / "cache"), tmp_path / "run")

    assert len(data.samples) == 61
    row = int(np.flatnonzero(data.samples.folder == "smile/pat_07_0012")[0])
    folder = dataset_root / "smile" / "pat_07_0012"
    assert (data.samples.video[row], data.samples.frame[row], data.samples.expression[row]) == ("pat_07", "0012", "smile")
    np.testing.assert_array_equal(data.samples.flow[row], cv2.cvtColor(cv2.imread(str(folder / FLOW_FILE)), cv2.COLOR_BGR2RGB))
    np.testing.assert_array_equal(data.samples.baseline_landmarks[row], np.load(folder / BASELINE_LANDMARKS_FILE).astype(np.float32))
    np.testing.assert_array_equal(data.samples.expression_landmarks[row], np.load(folder / EXPRESSION_LANDMARKS_FILE).astype(np.float32))
    assert (data.samples.dynamics[row], data.samples.synkinesis[row]) == (4, 2)
    assert data.samples.dynamics_valid.all() and data.samples.synkinesis_valid.all()
    assert data.samples.flow.dtype == np.uint8 and data.samples.flow.shape[1:] == (112, 112, 3)
    assert _read_report(tmp_path / "run") == []


def _write_bytes(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_bytes(data)


def _truncate(name: str) -> Callable[[Path], None]:
    def corrupt(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: len(data) // 2])

    return corrupt


def _image(array: np.ndarray) -> Callable[[Path], None]:
    return lambda folder: cv2.imwrite(str(folder / FLOW_FILE), array)


def _landmarks(array: np.ndarray) -> Callable[[Path], None]:
    return lambda folder: np.save(folder / BASELINE_LANDMARKS_FILE, array)


def _labels(obj: object) -> Callable[[Path], None]:
    return lambda folder: (folder / LABELS_FILE).write_text(json.dumps(obj))


GOOD_LANDMARKS = np.full((146, 2), 300.0)
NAN_LANDMARKS = GOOD_LANDMARKS.copy()
NAN_LANDMARKS[5, 1] = np.nan
INF_LANDMARKS = GOOD_LANDMARKS.copy()
INF_LANDMARKS[7, 0] = np.inf

CORRUPTIONS = {
    "missing file": (lambda folder: (folder / EXPRESSION_LANDMARKS_FILE).unlink(), VICTIM, "missing file(s): expression_landmarks.npy"),
    "not an image": (_write_bytes(FLOW_FILE, b"this is not a JPEG"), f"{VICTIM}/{FLOW_FILE}", "unreadable"),
    "empty image": (_write_bytes(FLOW_FILE, b""), f"{VICTIM}/{FLOW_FILE}", "unreadable"),
    "truncated JPEG": (_truncate(FLOW_FILE), f"{VICTIM}/{FLOW_FILE}", "truncated"),
    "grey image": (_image(np.full((112, 112), 90, np.uint8)), f"{VICTIM}/{FLOW_FILE}", "1 channel"),
    "wrong landmark shape": (_landmarks(np.zeros((145, 2))), f"{VICTIM}/{BASELINE_LANDMARKS_FILE}", "shape (145, 2)"),
    "transposed landmarks": (_landmarks(np.zeros((2, 146))), f"{VICTIM}/{BASELINE_LANDMARKS_FILE}", "shape (2, 146)"),
    "integer landmarks": (_landmarks(np.zeros((146, 2), np.int64)), f"{VICTIM}/{BASELINE_LANDMARKS_FILE}", "dtype int64"),
    "NaN landmark": (_landmarks(NAN_LANDMARKS), f"{VICTIM}/{BASELINE_LANDMARKS_FILE}", "NaN/Inf"),
    "Inf landmark": (_landmarks(INF_LANDMARKS), f"{VICTIM}/{BASELINE_LANDMARKS_FILE}", "NaN/Inf"),
    "truncated npy": (_truncate(BASELINE_LANDMARKS_FILE), f"{VICTIM}/{BASELINE_LANDMARKS_FILE}", "unreadable .npy"),
    "pickled npy": (_write_bytes(BASELINE_LANDMARKS_FILE, b"\x80\x04K\x01."), f"{VICTIM}/{BASELINE_LANDMARKS_FILE}", "unreadable .npy"),
    "invalid JSON": (_write_bytes(LABELS_FILE, b"{dynamics: 3"), f"{VICTIM}/{LABELS_FILE}", "not valid JSON"),
    "label missing": (_labels({"dynamics": 3}), f"{VICTIM}/{LABELS_FILE}", "'synkinesis' missing"),
    "label not a number": (_labels({"dynamics": "3", "synkinesis": 1}), f"{VICTIM}/{LABELS_FILE}", "not an integer"),
    "label fractional": (_labels({"dynamics": 2.5, "synkinesis": 1}), f"{VICTIM}/{LABELS_FILE}", "not an integer"),
    "label null": (_labels({"dynamics": 2, "synkinesis": None}), f"{VICTIM}/{LABELS_FILE}", "not an integer"),
    "label boolean": (_labels({"dynamics": True, "synkinesis": 1}), f"{VICTIM}/{LABELS_FILE}", "not an integer"),
    "dynamics out of range": (_labels({"dynamics": 6, "synkinesis": 1}), f"{VICTIM}/{LABELS_FILE}", "outside 0..5"),
    "synkinesis out of range": (_labels({"dynamics": 2, "synkinesis": 4}), f"{VICTIM}/{LABELS_FILE}", "outside 0..3"),
    "negative label": (_labels({"dynamics": -1, "synkinesis": 0}), f"{VICTIM}/{LABELS_FILE}", "outside 0..5"),
    "labels not an object": (_labels([3, 1]), f"{VICTIM}/{LABELS_FILE}", "'dynamics' missing"),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_each_kind_of_bad_sample_is_skipped_and_reported(name: str, dataset_root: Path, tmp_path: Path) -> None:
    corrupt, expected_path, expected_reason = CORRUPTIONS[name]
    corrupt(dataset_root / VICTIM)
    data = load_training_data(folder_config(dataset_root, tmp_path / "cache", **{"resize_flow": False}), tmp_path / "run")

    assert len(data.samples) == 59 and VICTIM not in set(data.samples.folder)
    (row,) = _read_report(tmp_path / "run")
    assert row["path"] == str(dataset_root / expected_path)
    assert expected_reason in row["reason"]


def test_folder_names_that_do_not_split_into_video_and_frame_are_bad(dataset_root: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    unparsable = ("nounderscore", "_0001", "patient99_")
    for name in unparsable:
        write_sample(dataset_root, "smile", "x", "y", rng).rename(dataset_root / "smile" / name)
    # Video ids may hold "_" themselves: the frame is what follows the last one.
    write_sample(dataset_root, "smile", "clinic_a_patient7", "0002", rng)
    data = load_training_data(folder_config(dataset_root, tmp_path / "cache", **{"bad_samples.max_fraction": 0.1}), tmp_path / "run")

    reported = {row["path"]: row["reason"] for row in _read_report(tmp_path / "run")}
    assert set(reported) == {str(dataset_root / "smile" / name) for name in unparsable}
    assert all("<video>_<frame>" in reason for reason in reported.values())
    row = int(np.flatnonzero(data.samples.folder == "smile/clinic_a_patient7_0002")[0])
    assert (data.samples.video[row], data.samples.frame[row]) == ("clinic_a_patient7", "0002")


def test_a_flow_image_of_another_size_is_resized_with_a_warning(dataset_root: Path, tmp_path: Path, caplog) -> None:
    # Flow to the right on the left, to the left on the right, at 224x224; output column 56 straddles the edge.
    flow = np.zeros((224, 224, 2), np.float32)
    flow[:, :113, 0], flow[:, 113:, 0] = 3.0, -3.0
    flow[:, :, 1] = 0.5
    _image(cv2.cvtColor(encode_flow(flow, 4.0), cv2.COLOR_RGB2BGR))(dataset_root / VICTIM)
    with caplog.at_level(logging.WARNING):
        data = load_training_data(folder_config(dataset_root, tmp_path / "cache"), tmp_path / "run")
    assert len(data.samples) == 60 and data.samples.flow.shape[1:] == (112, 112, 3)
    assert any("1 flow images were not 112x112 and were resized" in r.getMessage() for r in caplog.records)

    row = int(np.flatnonzero(data.samples.folder == VICTIM)[0])
    resized = decode_flow(data.samples.flow[row], 4.0)
    expected = cv2.resize(flow, (112, 112), interpolation=cv2.INTER_AREA)
    away_from_edge = np.r_[0:54, 59:112]
    np.testing.assert_allclose(resized[:, away_from_edge], expected[:, away_from_edge], atol=0.15)
    # Where the directions meet, the vectors average to (0, 0.5); averaging the colours of the two
    # directions (red-ish and cyan-ish) would make a much longer downward vector (error ~1.3 here).
    assert np.linalg.norm(resized[:, 56] - expected[:, 56], axis=1).max() < 0.9

    _image(np.zeros((128, 160, 3), np.uint8))(dataset_root / VICTIM)
    load_training_data(folder_config(dataset_root, tmp_path / "cache", resize_flow=False), tmp_path / "strict")
    (report,) = _read_report(tmp_path / "strict")
    assert "160x128, expected 112x112" in report["reason"]


def test_policy_fail_stops_at_the_first_bad_sample(dataset_root: Path, tmp_path: Path) -> None:
    (dataset_root / VICTIM / LABELS_FILE).unlink()
    with pytest.raises(DataError) as error:
        load_training_data(folder_config(dataset_root, tmp_path / "cache", **{"bad_samples.policy": "fail"}), tmp_path / "run")
    message = str(error.value)
    assert "1 of 60 samples are bad" in message and str(dataset_root / VICTIM) in message and "\n" not in message
    assert len(_read_report(tmp_path / "run")) == 1  # the report is written before stopping


def test_too_many_bad_samples_stop_even_when_skipping(dataset_root: Path, tmp_path: Path) -> None:
    for video in range(4):  # 4 of 60 = 6.7 %
        (dataset_root / "eye_close" / f"patient{video:02d}_0000" / FLOW_FILE).write_bytes(b"")
    with pytest.raises(DataError, match=r"4 of 60 samples \(6.7%\) are bad, more than data.bad_samples.max_fraction=0.05"):
        load_training_data(folder_config(dataset_root, tmp_path / "cache"), tmp_path / "run")
    data = load_training_data(folder_config(dataset_root, tmp_path / "cache", **{"bad_samples.max_fraction": 0.1}), tmp_path / "run2")
    assert len(data.samples) == 56 and len(_read_report(tmp_path / "run2")) == 4


def test_nothing_usable_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "dataset"
    write_dataset(root, videos=2, frames=1, expressions=("smile",))
    for folder in (root / "smile").iterdir():
        (folder / LABELS_FILE).write_text("{}")
    with pytest.raises(DataError, match="no usable samples: all 2 under"):
        load_training_data(folder_config(root, tmp_path / "cache", **{"bad_samples.max_fraction": 1.0}), tmp_path / "run")


@pytest.mark.parametrize(
    "make_root, expected",
    [
        (lambda tmp: None, "data.root is not set"),
        (lambda tmp: tmp / "nowhere", "does not exist"),
        (lambda tmp: (tmp / "file.txt").write_text("x") and tmp / "file.txt", "is not a folder"),
        (lambda tmp: (tmp / "empty").mkdir() or tmp / "empty", "holds no expression folders"),
        (lambda tmp: (tmp / "e" / "smile").mkdir(parents=True) or tmp / "e", "holds no sample folders"),
    ],
    ids=["unset", "missing", "file", "empty", "no-samples"],
)
def test_an_unusable_root_is_a_one_line_error(make_root, expected: str, tmp_path: Path) -> None:
    cfg = folder_config(tmp_path, tmp_path / "cache")
    cfg.root = make_root(tmp_path)
    cfg.root = None if cfg.root is None else str(cfg.root)
    with pytest.raises(DataError) as error:
        load_training_data(cfg, tmp_path / "run")
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_a_root_one_level_too_deep_is_recognised(dataset_root: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="looks like one expression folder"):
        load_training_data(folder_config(dataset_root / "smile", tmp_path / "cache"), None)


def test_only_the_chosen_expressions_are_read(dataset_root: Path, tmp_path: Path) -> None:
    data = load_training_data(folder_config(dataset_root, tmp_path / "cache", expressions=["smile", "brow_raise"]), None)
    assert set(data.samples.expression) == {"smile", "brow_raise"} and len(data.samples) == 40
    with pytest.raises(DataError, match="expression folder.s. frown not found .* present: brow_raise, eye_close, smile"):
        load_training_data(folder_config(dataset_root, tmp_path / "cache", expressions=["smile", "frown"]), None)


def test_ignored_label_values_are_kept_but_masked(dataset_root: Path, tmp_path: Path) -> None:
    _labels({"dynamics": 0, "synkinesis": -1})(dataset_root / VICTIM)
    data = load_training_data(
        folder_config(dataset_root, tmp_path / "cache", **{"labels.dynamics_ignore": [0], "labels.synkinesis_ignore": [-1]}),
        None,
    )
    row = int(np.flatnonzero(data.samples.folder == VICTIM)[0])
    assert not data.samples.dynamics_valid[row] and not data.samples.synkinesis_valid[row]
    masked = data.samples.dynamics == 0
    np.testing.assert_array_equal(data.samples.dynamics_valid, ~masked)
    item = data.make_dataset(np.array([row]), augment=False)[0]
    assert item["target_valid"].tolist() == [0.0, 0.0]


def test_label_keys_are_configurable_and_may_be_nested(dataset_root: Path, tmp_path: Path) -> None:
    expected = {}
    for folder in sorted((dataset_root / "smile").iterdir()):
        labels = json.loads((folder / LABELS_FILE).read_text())
        expected[f"smile/{folder.name}"] = (labels["dynamics"], labels["synkinesis"])
        _labels({"grades": {"voluntary": labels["dynamics"], "synk": labels["synkinesis"]}, "rater": "A"})(folder)
    keys = {"labels.dynamics_key": "grades.voluntary", "labels.synkinesis_key": "grades.synk"}
    data = load_training_data(folder_config(dataset_root, tmp_path / "cache", expressions=["smile"], **keys), tmp_path / "run")

    read = {f: (int(d), int(s)) for f, d, s in zip(data.samples.folder, data.samples.dynamics, data.samples.synkinesis)}
    assert read == expected and _read_report(tmp_path / "run") == []


def test_normalised_landmarks_become_pixels(dataset_root: Path, tmp_path: Path) -> None:
    folder = dataset_root / VICTIM
    pixels = np.load(folder / BASELINE_LANDMARKS_FILE)
    for name in (BASELINE_LANDMARKS_FILE, EXPRESSION_LANDMARKS_FILE):
        np.save(folder / name, np.load(folder / name) / [640, 480])
    cfg = folder_config(dataset_root, tmp_path / "cache", **{"landmarks.units": "normalised"})
    with pytest.raises(DataError, match="image_width"):
        load_training_data(cfg, None)
    cfg.landmarks.image_width, cfg.landmarks.image_height = 640, 480
    data = load_training_data(cfg, None)
    row = int(np.flatnonzero(data.samples.folder == VICTIM)[0])
    np.testing.assert_allclose(data.samples.baseline_landmarks[row], pixels, rtol=1e-6)


def test_yaml_settings_match_the_schema_and_typos_are_rejected() -> None:
    for name in ("synthetic", "folder"):
        as_data_config(OmegaConf.merge(OmegaConf.load(CONF_DIR / "data" / f"{name}.yaml"), {"root": "/data"}))
    with pytest.raises(DataError, match="val_fractoin"):
        as_data_config({"kind": "folder", "root": "/data", "val_fractoin": 0.3})
    with pytest.raises(DataError, match="invalid data settings: invalid synthetic dataset settings"):
        as_data_config({"synthetic": {"videos": 0}})
    folder = OmegaConf.load(CONF_DIR / "data" / "folder.yaml")
    with pytest.raises(DataError, match="data.root is not set"):
        load_training_data(folder, None)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"kind": "csv"}, "data.kind: Invalid value 'csv', expected one of [synthetic, folder]"),
        ({"bad_samples.policy": "ignore"}, "data.bad_samples.policy: Invalid value 'ignore', expected one of [skip, fail]"),
        ({"bad_samples.max_fraction": 1.5}, "must lie in 0..1"),
        ({"augment.shift": -0.1}, "data.augment.shift=-0.1 must not be negative"),
        ({"augment.hflip_p": 2.0}, "hflip_p must lie in 0..1"),
        ({"num_workers": -2}, "data.num_workers=-2 must not be negative"),
        ({"prefetch_batches": -1}, "data.prefetch_batches=-1 must not be negative"),
        ({"landmarks.units": "inches"}, "data.landmarks.units: Invalid value 'inches', expected one of [pixels, normalised]"),
    ],
)
def test_invalid_settings_are_one_line_errors(overrides: dict, message: str, dataset_root: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=re.escape(message)):
        load_training_data(folder_config(dataset_root, tmp_path / "cache", **overrides), None)


def test_labels_are_optional_for_prediction_only(dataset_root: Path, tmp_path: Path) -> None:
    from facedyn.data.loading import read_checked

    (dataset_root / VICTIM / LABELS_FILE).unlink()
    broken = "eye_close/patient04_0000"
    (dataset_root / broken / LABELS_FILE).write_text("{not json")
    cfg = folder_config(dataset_root, tmp_path / "cache")
    _, _, result = read_checked(cfg, tmp_path / "predict", logging.getLogger("test"), require_labels=False)
    row = np.flatnonzero(result.samples.folder == VICTIM)
    assert len(row) == 1
    assert not result.samples.dynamics_valid[row[0]] and not result.samples.synkinesis_valid[row[0]]
    assert result.samples.dynamics_valid.sum() == len(result.samples) - 1
    assert [(b.path, b.reason.split(" (")[0]) for b in result.bad] == [(f"{broken}/{LABELS_FILE}", "not valid JSON")]

    data = load_training_data(cfg, tmp_path / "train")  # training: a sample without labels is a bad sample
    assert VICTIM not in set(data.samples.folder)
    assert {"path": str(dataset_root / VICTIM), "reason": f"missing file(s): {LABELS_FILE}"} in _read_report(tmp_path / "train")
