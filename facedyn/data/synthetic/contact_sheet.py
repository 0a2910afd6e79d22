"""A contact sheet of a dataset's flow images with their grades, for a person to look at."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from facedyn.utils.io import atomic_path

CONTACT_SHEET = "contact_sheet.png"
_CAPTION = 16
_LABEL_WIDTH = 52
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _text(image: np.ndarray, text: str, origin: tuple[int, int]) -> None:
    cv2.putText(image, text, origin, _FONT, 0.38, (235, 235, 235), 1, cv2.LINE_AA)


def _peak_sample(expression_dir: Path, video: str) -> Path | None:
    frames = sorted(expression_dir.glob(f"{video}_*"), key=lambda p: int(p.name.rsplit("_", 1)[1]))
    return frames[-1] if frames else None


def write_contact_sheet(root: Path, max_flow_magnitude: float, videos: int = 10, tile: int = 112) -> Path:
    """root/contact_sheet.png: one row per video (the first `videos`), one column per expression,
    each cell the clip's peak-frame flow image captioned d<dynamics> s<synkinesis> <paralysed side>."""
    expression_dirs = sorted(p for p in root.iterdir() if p.is_dir())
    names = sorted({p.name.rsplit("_", 1)[0] for d in expression_dirs for p in d.iterdir() if p.is_dir()})[:videos]
    height = 2 * _CAPTION + len(names) * (tile + _CAPTION)
    sheet = np.full((height, _LABEL_WIDTH + len(expression_dirs) * tile, 3), 32, dtype=np.uint8)
    for column, expression_dir in enumerate(expression_dirs):
        _text(sheet, expression_dir.name, (_LABEL_WIDTH + column * tile + 4, 12))
    for row, video in enumerate(names):
        top = _CAPTION + row * (tile + _CAPTION)
        _text(sheet, video, (4, top + tile // 2))
        for column, expression_dir in enumerate(expression_dirs):
            sample = _peak_sample(expression_dir, video)
            if sample is None:
                continue
            flow = cv2.imread(str(sample / "optical_flow.jpg"), cv2.IMREAD_COLOR)
            left = _LABEL_WIDTH + column * tile
            sheet[top:top + tile, left:left + tile] = cv2.resize(flow, (tile, tile))
            labels = json.loads((sample / "expression_g_column.json").read_text())
            side = {"left": "L", "right": "R"}.get(labels.get("paralysed_side"), "-")
            _text(sheet, f"d{labels['dynamics']} s{labels['synkinesis']} {side}", (left + 4, top + tile + 12))
    _text(sheet, f"flow: hue = direction, brightness = magnitude (full at {max_flow_magnitude:g} px)", (4, height - 4))
    target = root / CONTACT_SHEET
    with atomic_path(target) as tmp:
        _, encoded = cv2.imencode(".png", sheet)
        tmp.write_bytes(encoded.tobytes())
    return target
