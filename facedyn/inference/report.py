"""report.html: one self-contained page (images embedded as base64) for a clinician.

A summary table of patients (Sunnybrook items and subtotals), per patient and expression the flow image
and both landmark sets of the frame that moved most, the grades (predicted, and true when known), and
with labels the agreement section (ICC with its 95 % interval, QWK, MAE, exact and within-one accuracy,
Bland–Altman plots).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from facedyn.data.samples import Samples
from facedyn.inference import report_uncertainty
from facedyn.inference.predictor import ModelInfo
from facedyn.inference.tables import SUNNYBROOK_ITEMS, NotGraded, PatientRow, VideoGrades
from facedyn.inference.uncertainty import PatientUncertainty, Uncertainty
from facedyn.utils.io import atomic_write_text
from facedyn.metrics import MAX_GRADE, SCORES

TITLE = "facedyn report"
TILE = 168  # pixels of each image in the per-expression cards
BASELINE_BGR, EXPRESSION_BGR = (200, 120, 40), (40, 40, 220)
ITEM_TITLES = {"brow_lift": "Brow lift", "gentle_eye_closure": "Gentle eye closure",
               "open_mouth_smile": "Open-mouth smile", "snarl": "Snarl", "lip_pucker": "Lip pucker"}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #1b1b1b; max-width: 1200px; }
h1 { margin-bottom: 4px; } .meta { color: #555; font-size: 13px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid #c8ccd2; padding: 4px 8px; text-align: center; }
th { background: #1f4e79; color: white; }
td.name { text-align: left; font-weight: 600; }
.note { background: #fff4d6; border-left: 4px solid #e0a800; padding: 8px 12px; margin: 12px 0; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px solid #c8ccd2; border-radius: 6px; padding: 8px; width: 352px; }
.plots img { width: 49%; }
.card img { width: 168px; height: 168px; image-rendering: pixelated; }
.grades { font-size: 13px; margin-top: 4px; } .true { color: #555; }
.legend span { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 10px; }
"""


def _data_uri(image_bgr: np.ndarray, fmt: str = ".png") -> str:
    ok, encoded = cv2.imencode(fmt, image_bgr)
    if not ok:
        raise ValueError("image encoding failed")
    kind = "jpeg" if fmt == ".jpg" else "png"
    return f"data:image/{kind};base64,{base64.b64encode(encoded.tobytes()).decode('ascii')}"


def flow_tile(flow_rgb: np.ndarray) -> str:
    """The flow image as the model saw it (the page enlarges it without smoothing)."""
    return _data_uri(cv2.cvtColor(flow_rgb, cv2.COLOR_RGB2BGR))


def landmark_tile(baseline: np.ndarray, expression: np.ndarray) -> str:
    """Both 146-point sets in one box (image y pointing down), baseline blue, expression red, joined by lines."""
    points = np.concatenate([baseline, expression])
    low, high = points.min(axis=0), points.max(axis=0)
    scale = (TILE - 16) / max(float((high - low).max()), 1e-6)
    offset = (TILE - (high - low) * scale) / 2

    def to_pixels(p: np.ndarray) -> np.ndarray:
        return np.round((p - low) * scale + offset).astype(np.int32)

    canvas = np.full((TILE, TILE, 3), 255, np.uint8)
    base_px, expr_px = to_pixels(baseline), to_pixels(expression)
    for a, b in zip(base_px, expr_px):
        cv2.line(canvas, tuple(map(int, a)), tuple(map(int, b)), (150, 150, 150), 1, cv2.LINE_AA)
    for pts, colour in ((base_px, BASELINE_BGR), (expr_px, EXPRESSION_BGR)):
        for x, y in pts:
            cv2.circle(canvas, (int(x), int(y)), 2, colour, -1, cv2.LINE_AA)
    return _data_uri(canvas)


def _image_file(path: Path) -> str:
    return f"data:image/png;base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _e(value: object) -> str:
    return html.escape(str(value))


def _cell(value: Optional[int]) -> str:
    return "—" if value is None else str(value)


def _number(value: Optional[float], digits: int = 2) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _summary_table(patients: list[PatientRow], labelled: bool) -> str:
    head = "".join(f"<th>{_e(ITEM_TITLES[item])}<br>movement / synk.</th>" for item in SUNNYBROOK_ITEMS)
    rows = []
    for row in patients:
        cells = []
        for item in SUNNYBROOK_ITEMS:
            pred, true = row.items[item], row.true_items[item]
            text = "—" if pred is None else f"{pred[0]} / {pred[1]}"
            if labelled and true is not None:
                text += f' <span class="true">({true[0]} / {true[1]})</span>'
            cells.append(f"<td>{text}</td>")
        subtotal = f"<td>{_cell(row.voluntary_movement)}</td><td>{_cell(row.synkinesis)}</td>"
        if labelled:
            subtotal += f'<td class="true">{_cell(row.voluntary_movement_true)}</td><td class="true">{_cell(row.synkinesis_true)}</td>'
        target = "not-graded" if row.not_graded and all(v is None for v in row.items.values()) else f"p-{row.video}"
        rows.append(f'<tr><td class="name"><a href="#{_e(target)}">{_e(row.video)}</a></td>{"".join(cells)}{subtotal}</tr>')
    true_head = "<th>true voluntary movement</th><th>true synkinesis</th>" if labelled else ""
    return (f'<table id="patients"><tr><th>patient</th>{head}<th>voluntary movement<br>(20–100)</th>'
            f"<th>synkinesis<br>(0–15)</th>{true_head}</tr>{''.join(rows)}</table>")


def _agreement_section(agreement: dict, metrics: dict, out_dir: Path) -> str:
    rows = []
    for score in SCORES:
        a = agreement.get(score)
        if not a:
            continue
        rows.append(
            f"<tr><td class='name'>{score} (0–{MAX_GRADE[score]})</td><td>{a['n']}</td>"
            f"<td>{_number(a['icc'])} [{_number(a['icc_low'])}, {_number(a['icc_high'])}]</td>"
            f"<td>{_number(a['qwk'])}</td><td>{_number(a['mae'])}</td><td>{_number(a['exact'])}</td>"
            f"<td>{_number(a['within_one'])}</td><td>{_number(a['bias'], 2)} [{_number(a['loa_low'])}, {_number(a['loa_high'])}]</td>"
            f"<td>{_number(metrics.get(f'mae_{score}'))}</td><td>{_number(metrics.get(f'qwk_{score}'))}</td></tr>")
    plots = "".join(f'<img alt="Bland–Altman {score}" src="{_image_file(out_dir / f"bland_altman_{score}.png")}">'
                    for score in SCORES if (out_dir / f"bland_altman_{score}.png").is_file())
    return (
        "<h2 id='agreement'>Agreement with the true grades</h2>"
        "<p class='meta'>Per video and expression (frames averaged, as in predictions_video.csv). ICC(2,1): two-way "
        "random effects, absolute agreement, single rater, with its 95 % interval (McGraw &amp; Wong). QWK: quadratic "
        "weighted kappa of the rounded grades. Exact / within one: share of rounded grades equal to / at most one grade "
        "from the true one. Bland–Altman: mean difference (predicted − true) and 95 % limits of agreement.</p>"
        "<table id='agreement-table'><tr><th>score</th><th>n</th><th>ICC(2,1) [95 % CI]</th><th>QWK</th><th>MAE</th>"
        "<th>exact</th><th>within one</th><th>bias [limits of agreement]</th><th>MAE per frame</th><th>QWK per frame</th></tr>"
        f"{''.join(rows)}</table><div class='plots'>{plots}</div>")


def _patient_section(video: str, groups: list[int], table: VideoGrades, samples: Samples, patient: PatientRow,
                     item_of: dict[str, str]) -> str:
    rounded = table.grades
    cards = []
    for g in groups:
        expression = table.keys[g][1]
        rows = np.flatnonzero(table.group_of_row == g)
        movement = np.abs(samples.expression_landmarks[rows] - samples.baseline_landmarks[rows]).mean(axis=(1, 2))
        shown = rows[int(np.argmax(movement))]  # the frame that moved most
        lines = []
        for c, score in enumerate(SCORES):
            true = f' <span class="true">true {int(table.true[g, c])}</span>' if table.valid[g, c] else ""
            lines.append(f"{score}: <b>{rounded[g, c]}</b> ({table.mean[g, c]:.2f} ± {table.sd[g, c]:.2f}){true}")
        item = item_of.get(expression)
        title = f"{_e(expression)}" + (f" · {_e(ITEM_TITLES[item])}" if item else "")
        cards.append(
            f'<div class="card"><b>{title}</b><br>'
            f'<img alt="flow {_e(expression)}" src="{flow_tile(samples.flow[shown])}">'
            f'<img alt="landmarks {_e(expression)}" src="{landmark_tile(samples.baseline_landmarks[shown], samples.expression_landmarks[shown])}">'
            f'<div class="grades">{"<br>".join(lines)}<br><span class="meta">{len(rows)} frame(s); shown: frame '
            f"{_e(samples.frame[shown])}</span></div></div>")
    subtotal = (f"voluntary movement {_cell(patient.voluntary_movement)} / 100, synkinesis {_cell(patient.synkinesis)} / 15"
                if patient.voluntary_movement is not None else
                "Sunnybrook subtotals need all five items; missing: "
                + ", ".join(ITEM_TITLES[i] for i in SUNNYBROOK_ITEMS if patient.items[i] is None))
    return f'<h3 id="p-{_e(video)}">{_e(video)}</h3><p>{subtotal}</p><div class="cards">{"".join(cards)}</div>'


def _not_graded_section(not_graded: Sequence[NotGraded], table: VideoGrades) -> str:
    """Every clip asked for that has no grade, with the reason, and the grades whose frames disagree."""
    rows = [f"<tr><td class='name'>{_e(c.video)}</td><td>{_e(c.expression)}</td><td>not graded</td>"
            f"<td style='text-align:left'>{_e(c.file)}: {_e(c.reason)}</td></tr>" for c in not_graded]
    for g in np.flatnonzero(table.disagreeing):
        video, expression = table.keys[g]
        rows.append(f"<tr><td class='name'>{_e(video)}</td><td>{_e(expression)}</td><td>check</td>"
                    f"<td style='text-align:left'>its {int(table.frames[g])} frames disagree: dynamics "
                    f"{table.mean[g, 0]:.2f} ± {table.sd[g, 0]:.2f}, synkinesis {table.mean[g, 1]:.2f} ± "
                    f"{table.sd[g, 1]:.2f}; do not trust this grade before looking at the clip</td></tr>")
    if not rows:
        return ""
    return ("<h2 id='not-graded'>Not graded, to check</h2><table id='not-graded-table'><tr><th>patient</th>"
            f"<th>expression</th><th></th><th>why</th></tr>{''.join(rows)}</table>")


def write_report(path: Path, samples: Samples, table: VideoGrades, patients: list[PatientRow],
                 agreement: dict, metrics: dict, info: ModelInfo, source: str, bad_samples: int,
                 mapping: dict[str, Optional[str]], max_patients: int, not_graded: Sequence[NotGraded] = (),
                 uncertainty: Optional[Uncertainty] = None,
                 per_patient: Optional[dict[str, PatientUncertainty]] = None) -> None:
    """uncertainty, per_patient: an ensemble's spread, intervals and flags (facedyn.inference.report_uncertainty)."""
    labelled = bool(agreement)
    groups_of: dict[str, list[int]] = {}
    for g, (video, _) in enumerate(table.keys):
        groups_of.setdefault(video, []).append(g)
    item_of = {expression: item for item, expression in mapping.items() if expression}
    shown = patients[:max_patients]
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{TITLE}</title><style>{STYLE}</style></head><body>",
        f"<h1>{TITLE}</h1>",
        f"<p class='meta'>{_e(dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z'))} · model: {_e(info.checkpoint)} "
        f"(stage {_e(info.stage)}, {_e(info.backend)}) · data: {_e(source)} · {len(samples)} samples of {len(patients)} "
        f"patients · {bad_samples} bad sample(s) left out (bad_samples.csv)</p>",
        "<div class='note'><b>Resting symmetry is not predicted.</b> facedyn grades voluntary movement (Sunnybrook "
        "1–5 per expression; a predicted grade below 1 counts as 1) and synkinesis (0–3). The Sunnybrook composite "
        "score (voluntary movement − resting symmetry − synkinesis) needs the clinician's resting-symmetry grade. "
        "A subtotal is left empty (—) unless all five expressions were recorded.</div>",
        "<h2>Patients</h2>", _summary_table(patients, labelled), _not_graded_section(not_graded, table),
    ]
    if uncertainty is not None:
        parts.append(report_uncertainty.section(uncertainty, per_patient, shown))
    titles = {e: f"{e} · {ITEM_TITLES[item]}" for e, item in item_of.items()}
    if labelled:
        parts.append(_agreement_section(agreement, metrics, path.parent))
    parts.append("<h2>Per patient and expression</h2><p class='legend'>Flow image (as the model sees it) and landmarks:"
                 "<span style='background:#2878c8'></span>baseline (rest)<span style='background:#dc2828'></span>"
                 "expression</p>")
    if len(patients) > len(shown):
        parts.append(f"<p class='meta'>The first {len(shown)} of {len(patients)} patients (report_max_patients); "
                     "all are in patients.csv.</p>")
    for patient in shown:
        if patient.video not in groups_of:  # a patient none of whose clips was graded is in the section above
            continue
        parts.append(_patient_section(patient.video, groups_of[patient.video], table, samples, patient, item_of))
        if uncertainty is not None:
            parts.append(report_uncertainty.patient_block(patient.video, uncertainty, table, titles))
    parts.append("</body></html>")
    atomic_write_text(path, "\n".join(parts))
