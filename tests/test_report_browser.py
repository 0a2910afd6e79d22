"""report.html in a real browser: headless Chromium renders it, a screenshot is taken and checked."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from facedyn.inference import task
from tests.test_predict import _predict_cfg

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH, HEIGHT = 1280, 3000
HEADER_RGB = (0x1F, 0x4E, 0x79)  # table headers (report.STYLE)
EXPRESSION_RGB = (220, 40, 40)  # expression landmarks in the per-expression images (figures.EXPRESSION_BGR)
WARNING_RGB = (0xFD, 0xE8, 0xE8)  # the research-software box (report.STYLE)


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have Chromium: .ci/run installs the Debian package `chromium`")
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium); the report's browser test needs it")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
             "--hide-scrollbars", f"--user-data-dir={profile}"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=180)


def _pixels_near(image_rgb: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 12) -> int:
    return int((np.abs(image_rgb.astype(int) - np.array(rgb)).max(axis=2) <= tolerance).sum())


def test_report_renders_in_headless_chromium(tiny_trained_run, tmp_path):
    out = tmp_path / "predictions"
    summary = task.run(_predict_cfg(f"run={tiny_trained_run}"), out)
    report = out / "report.html"
    text = report.read_text()
    assert not re.search(r'src="(?!data:)', text), "every image is embedded"
    assert "Resting symmetry is not predicted" in text

    dom = _chromium("--dump-dom", report.as_uri(), profile=tmp_path / "profile-dom").stdout
    assert "<title>facedyn report</title>" in dom
    patients_table = dom[dom.index('id="patients"'):]
    assert patients_table[:patients_table.index("</table>")].count("<tr>") == summary["videos"] + 1
    cards = summary["explained_frames"]  # one per patient and expression, each with its faces and both maps
    assert cards > 0 and dom.count('class="card"') == cards
    for caption in ("rest", "flow branch: dynamics", "flow branch: synkinesis"):
        assert dom.count(f'alt="{caption}"') == cards, caption

    shot = tmp_path / "report.png"
    _chromium(f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}", report.as_uri(), profile=tmp_path / "profile")
    image = cv2.imread(str(shot))
    assert image is not None, "no screenshot"
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    assert rgb.shape == (HEIGHT, WIDTH, 3)
    assert rgb.std() > 20, "blank page"
    assert _pixels_near(rgb, HEADER_RGB) > 2000, "the tables' header rows are not drawn"
    assert _pixels_near(rgb, EXPRESSION_RGB, 30) > 100, "the landmark images are not drawn"
    assert _pixels_near(rgb, WARNING_RGB, 3) > 5000, "the research-software note is not drawn"
