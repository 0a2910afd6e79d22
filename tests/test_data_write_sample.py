"""write_sample, the one writer of sample folders (prepare.py and the synthetic generator): the layout's
files in the formats the reader expects, complete or not at all."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np

from facedyn.data.config import DataConfig
from facedyn.data.layout import (BASELINE_LANDMARKS_FILE, EXPRESSION_LANDMARKS_FILE, FLOW_FILE, LABELS_FILE, scan,
                                 write_sample)
from facedyn.data.reader import read_samples
from facedyn.data.settings import ReaderSettings


def _npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


def test_sample_folder_bytes_and_what_the_reader_makes_of_it(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    flow = cv2.GaussianBlur(rng.integers(0, 256, (112, 112, 3), dtype=np.uint8), (5, 5), 1.5)
    expression, baseline = rng.uniform(100, 300, (2, 146, 2)).astype(np.float32)
    folder = tmp_path / "smile" / "p1_24"
    labels = {"dynamics": 3, "synkinesis": 1, "frame": 24}
    write_sample(folder, flow, expression, baseline, labels, 90, {"scores.json": {"a": 0.5}})
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [FLOW_FILE, EXPRESSION_LANDMARKS_FILE, BASELINE_LANDMARKS_FILE, LABELS_FILE, "scores.json"])
    jpeg = cv2.imencode(".jpg", flow[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()  # stored BGR
    assert (folder / FLOW_FILE).read_bytes() == jpeg
    assert (folder / EXPRESSION_LANDMARKS_FILE).read_bytes() == _npy(expression)
    assert (folder / BASELINE_LANDMARKS_FILE).read_bytes() == _npy(baseline)
    assert (folder / LABELS_FILE).read_text() == json.dumps(labels) + "\n"
    assert json.loads((folder / "scores.json").read_text()) == {"a": 0.5}
    samples = read_samples(scan(tmp_path), ReaderSettings.from_config(DataConfig(kind="folder"))).samples
    assert (samples.video.tolist(), samples.dynamics.tolist()) == (["p1"], [3])
    np.testing.assert_array_equal(samples.baseline_landmarks[0], baseline)
    np.testing.assert_array_equal(samples.flow[0], cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)[..., ::-1])


def test_rewriting_replaces_the_folder_and_leaves_no_temporary(tmp_path: Path) -> None:
    folder = tmp_path / "smile" / "p1_24"
    points = np.zeros((146, 2), np.float32)
    write_sample(folder, np.zeros((112, 112, 3), np.uint8), points, points, {"dynamics": 3}, 90)
    (folder / "stale.txt").write_text("from an earlier run")
    write_sample(folder, np.zeros((112, 112, 3), np.uint8), points + 1, points, None, 90)  # no grade now
    assert sorted(p.name for p in folder.iterdir()) == sorted([FLOW_FILE, EXPRESSION_LANDMARKS_FILE,
                                                               BASELINE_LANDMARKS_FILE])
    assert [p.name for p in folder.parent.iterdir()] == ["p1_24"]  # the hidden temporary was renamed into place
    np.testing.assert_array_equal(np.load(folder / EXPRESSION_LANDMARKS_FILE), points + 1)
