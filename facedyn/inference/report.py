"""report.html: one self-contained page (images embedded as base64) for a clinician.

Sections, each rendered by a function of its own: what the page is and is not (research software, the data
the model learnt from, resting symmetry); the patients' table (Sunnybrook items and subtotals) with its
notation; with labels the agreement section (ICC with its 95 % interval, QWK, MAE, exact and within-one
accuracy, Bland–Altman plots); how to read the pictures (flow colours, map colours, landmarks,
measurements, blendshapes); and per patient and expression a card for the frame that moved most: the rest
and expression faces, the flow image, where the flow branch looked (Grad-CAM), the landmarks, the grades,
the facial measurements with the affected side, and the blendshapes the landmark branch used.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from facedyn.data.layout import BASELINE_FACE_FILE, EXPRESSION_FACE_FILE
from facedyn.data.samples import Samples
from facedyn.explain.maps import DEFAULT_PART, part
from facedyn.inference import figures, report_uncertainty
from facedyn.inference.predictor import ModelInfo
from facedyn.inference.tables import SUNNYBROOK_ITEMS, NotGraded, PatientRow, VideoGrades
from facedyn.inference.uncertainty import PatientUncertainty, Uncertainty
from facedyn.measurements import MEASURES, MOVEMENT_OF_MEASURE, MOVEMENTS, SIDES, SampleMeasurements
from facedyn.utils.io import atomic_write_text
from facedyn.metrics import MAX_GRADE, SCORES

if TYPE_CHECKING:  # the explanations' module imports torch; the page itself needs none
    from facedyn.explain.frames import FrameExplanation

TITLE = "facedyn report"
ITEM_TITLES = {"brow_lift": "Brow lift", "gentle_eye_closure": "Gentle eye closure",
               "open_mouth_smile": "Open-mouth smile", "snarl": "Snarl", "lip_pucker": "Lip pucker"}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #1b1b1b; max-width: 1240px; }
h1 { margin-bottom: 4px; } .meta { color: #555; font-size: 13px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid #c8ccd2; padding: 4px 8px; text-align: center; }
th { background: #1f4e79; color: white; }
td.name { text-align: left; font-weight: 600; }
.note { background: #fff4d6; border-left: 4px solid #e0a800; padding: 8px 12px; margin: 12px 0; }
.warning { background: #fde8e8; border-left: 4px solid #c0392b; padding: 8px 12px; margin: 12px 0; }
.cards { display: flex; flex-direction: column; gap: 12px; }
.card { border: 1px solid #c8ccd2; border-radius: 6px; padding: 8px; }
.plots img { width: 49%; }
.images { display: flex; flex-wrap: wrap; gap: 6px; }
figure { margin: 0; font-size: 11px; color: #555; text-align: center; width: 168px; }
figure img { width: 168px; height: 168px; image-rendering: pixelated; display: block; }
figure .missing { width: 168px; height: 168px; background: #eef0f3; display: flex; align-items: center;
                  justify-content: center; color: #777; font-size: 12px; padding: 8px; box-sizing: border-box; }
.details { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; margin-top: 6px; }
.details table { font-size: 12px; margin: 0; } .details th, .details td { padding: 2px 6px; }
.grades { font-size: 13px; } .true { color: #555; } .outside { color: #b03a2e; }
.affected { font-size: 13px; margin: 2px 0 6px; } tr.primary td { font-weight: 700; }
.legend span { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 10px; }
.guide { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; font-size: 13px; }
.guide > div { max-width: 560px; }
"""


@dataclass
class ReportContent:
    """Everything report.html shows."""

    samples: Samples
    table: VideoGrades
    patients: list[PatientRow]
    agreement: dict
    metrics: dict
    info: ModelInfo
    source: str  # what was predicted, in words
    bad_samples: int
    mapping: dict[str, Optional[str]]  # Sunnybrook item -> expression folder
    max_patients: int
    root: Optional[Path]  # the dataset's folder (its samples' face images)
    shown: np.ndarray  # (G,) per video and expression the sample row shown (tables.frames_shown)
    measurements: dict[int, SampleMeasurements]  # by sample row, at least for the rows shown
    explanations: dict[int, "FrameExplanation"]  # by sample row; empty when not computed
    explain_note: str  # why there are no explanations ("" when there are)
    not_graded: Sequence[NotGraded] = ()  # clips asked for that have no grade, with the reason
    uncertainty: Optional[Uncertainty] = None  # an ensemble's spread, intervals and flags (report_uncertainty)
    per_patient: Optional[dict[str, PatientUncertainty]] = None


def _e(value: object) -> str:
    return html.escape(str(value))


def _cell(value: Optional[int]) -> str:
    return "—" if value is None else str(value)


def _number(value: Optional[float], digits: int = 2) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def training_data(info: ModelInfo) -> str:
    """What the model learnt from, in words, from the run's data settings."""
    data = info.data_settings
    if not data:
        return "not recorded with this model"
    if data.get("kind") == "synthetic":
        synthetic = data.get("synthetic") or {}
        return (f"facedyn's built-in <b>synthetic</b> data: rendered faces with simulated palsy "
                f"({_e(synthetic.get('videos', '?'))} simulated subjects), not recordings of patients")
    return f"the dataset <b>{_e(data.get('root'))}</b> (the run's data.root)"


def _notes(content: ReportContent) -> str:
    return (
        "<div class='warning'><b>Research software, not a medical device.</b> facedyn's grades, maps and "
        "measurements are for research; they are not validated for diagnosis or treatment decisions and do "
        f"not replace a clinician's grading. This model was trained on {training_data(content.info)}.</div>"
        "<div class='note'><b>Resting symmetry is not predicted.</b> facedyn grades voluntary movement (Sunnybrook "
        "1–5 per expression; a predicted grade below 1 counts as 1) and synkinesis (0–3). The Sunnybrook composite "
        "score (voluntary movement − resting symmetry − synkinesis) needs the clinician's resting-symmetry grade. "
        "A subtotal is left empty (—) unless all five expressions were recorded.</div>")


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
    notation = ("<p class='meta' id='notation'>Each expression's cell reads <b>movement / synkinesis</b>: the predicted "
                "Sunnybrook voluntary-movement grade (1 none – 5 complete) and synkinesis grade (0 none – 3 severe)"
                + (", then in brackets the clinician's grades where known: <b>1 / 1 (2 / 0)</b> means predicted movement "
                   "1 and synkinesis 1, graded movement 2 and synkinesis 0" if labelled else
                   ": <b>1 / 1</b> means predicted movement 1 and synkinesis 1")
                + ". The subtotals are Sunnybrook's: voluntary movement = 4 × the sum of the five movement grades, "
                "synkinesis = the sum of the five synkinesis grades.</p>")
    return (f'<table id="patients"><tr><th>patient</th>{head}<th>voluntary movement<br>(20–100)</th>'
            f"<th>synkinesis<br>(0–15)</th>{true_head}</tr>{''.join(rows)}</table>{notation}")


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
    plots = "".join(f'<img alt="Bland–Altman {score}" src="{figures.image_file(out_dir / f"bland_altman_{score}.png")}">'
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


def _reading_guide(content: ReportContent) -> str:
    explained = ("" if not content.explain_note else f"<p class='note'>{_e(content.explain_note)}</p>")
    return (
        "<h2>Per patient and expression</h2>"
        "<p>One card per expression, for the frame whose landmarks moved most from rest (the card says which). "
        "The patient's right is on the image's left, as in a recording that is not mirrored.</p>" + explained +
        "<div class='guide' id='guide'>"
        f"<div><img alt='flow colour wheel' src='{figures.flow_legend()}'><br><b>Flow image</b> (what the model sees): "
        "the motion of each point from the rest frame to the expression frame. Its colour gives the direction "
        "(as on the wheel: the colour at a point of the wheel is that of a motion from its centre towards the point), "
        "its brightness the distance moved: black is still, full colour the dataset's largest motion shown "
        "(4 pixels of the 112-pixel image by default).</div>"
        f"<div><img alt='map colours' src='{figures.cam_colour_bar()}'> low → high<br><b>Where the flow branch looked</b>: "
        "Grad-CAM of the flow network for each grade, drawn over the expression frame: red where the flow most "
        "changed that grade (raising or lowering it), blue where it did not. A coarse map (7 × 7 or 4 × 4 cells "
        "of the face); its checks are in the documentation (sanity and localisation).<br>"
        "<span class='legend'><b>Landmarks</b>:<span style='background:#2878c8'></span>rest"
        "<span style='background:#dc2828'></span>expression</span></div>"
        "<div><b>Measurements</b> from the landmarks, per side, at rest → at the expression (change), after Emotrics: "
        "in millimetres scaled by the iris (11.77 mm across), or in inter-ocular distances (IOD) where the iris "
        "points are not usable. The row in bold is the movement the expression is graded by; the side that moved "
        "less there is called affected, and its movement is given as a share of the other side's. Where neither "
        "side moved (under 1 mm) or both moved alike (within 10 %), no side is named.<br>"
        "<b>Blendshapes</b>: MediaPipe's 52 expression scores (0–1) of each frame, which the landmark branch reads. "
        "Listed: those that moved each grade most (integrated gradients, in grades: + raised it, − lowered it; "
        "a Left/Right pair, the patient's own sides, counts together), with their values at rest → expression.</div>"
        "</div>")


def grade_lines(g: int, table: VideoGrades) -> str:
    """Each score's shown grade, clipped to its scale, the unrounded mean ± SD over frames (marked when the
    model's raw value lies outside the scale), and the true grade when known."""
    lines = []
    for c, score in enumerate(SCORES):
        mean, top = table.mean[g, c], MAX_GRADE[score]
        raw = f"{mean:.2f} ± {table.sd[g, c]:.2f}"
        if mean > top or mean < 0:
            side = f"above the 0–{top} scale" if mean > top else f"below the 0–{top} scale"
            raw = f'<span class="outside" title="the model\'s raw value, {side}">raw {raw}, {side}</span>'
        true = f' <span class="true">true {int(table.true[g, c])}</span>' if table.valid[g, c] else ""
        lines.append(f"{score}: <b>{table.grades[g, c]}</b> ({raw}){true}")
    return f'<div class="grades">{"<br>".join(lines)}</div>'


def _figure(src: Optional[str], caption: str, missing: str = "") -> str:
    picture = f'<img alt="{_e(caption)}" src="{src}">' if src else f'<div class="missing">{_e(missing)}</div>'
    return f"<figure>{picture}<figcaption>{_e(caption)}</figcaption></figure>"


def _card_images(row: int, content: ReportContent) -> str:
    samples = content.samples
    folder = content.root / samples.folder[row] if content.root is not None else None
    rest = figures.read_face(folder / BASELINE_FACE_FILE) if folder is not None else None
    moved = figures.read_face(folder / EXPRESSION_FACE_FILE) if folder is not None else None
    no_faces = "no face images in this dataset"
    parts = [_figure(figures.face_tile(rest) if rest is not None else None, "rest", no_faces),
             _figure(figures.face_tile(moved) if moved is not None else None, "expression (registered)", no_faces),
             _figure(figures.flow_tile(samples.flow[row]), "flow image")]
    explanation = content.explanations.get(row)
    background = moved if moved is not None else figures.flow_background(samples.flow[row])
    for c, score in enumerate(SCORES):
        cam = explanation.cam if explanation is not None else None
        src = figures.cam_overlay(part(cam[c], DEFAULT_PART), background) if cam is not None else None
        parts.append(_figure(src, f"flow branch: {score}", "no map"))
    parts.append(_figure(figures.landmark_tile(samples.baseline_landmarks[row], samples.expression_landmarks[row]),
                         "landmarks"))
    return f'<div class="images">{"".join(parts)}</div>'


def _affected_line(result: Optional[SampleMeasurements]) -> str:
    movement = result.affected if result is not None else None
    if movement is None:
        return "<div class='affected'>No measured movement belongs to this expression.</div>"
    amounts = f"right {movement.amount[0]:.1f}, left {movement.amount[1]:.1f} {_e(result.unit)}"
    if movement.affected is None:
        return f"<div class='affected'>Affected side: <b>none named</b> — {_e(movement.note)} ({MOVEMENTS[movement.name]}: {amounts}).</div>"
    return (f"<div class='affected'>Affected side: <b>{movement.affected}</b> — moved {movement.ratio:.0%} of the "
            f"other side ({MOVEMENTS[movement.name]}: {amounts}).</div>")


def _measurement_table(result: SampleMeasurements) -> str:
    primary_measure = {movement: measure for measure, movement in MOVEMENT_OF_MEASURE.items()}.get(result.primary or "")
    rows = []
    for measure in MEASURES:
        unit = "°" if measure.angle else result.unit
        rest, moved = np.atleast_1d(result.rest[measure.name]), np.atleast_1d(result.expression[measure.name])
        digits = 0 if measure.angle else (1 if result.unit == "mm" else 3)
        cells = [f"{rest[s]:.{digits}f} → {moved[s]:.{digits}f} ({moved[s] - rest[s]:+.{digits}f})"
                 for s in range(len(rest))]
        body = "".join(f"<td>{c}</td>" for c in cells) if measure.sided else f"<td colspan='2'>{cells[0]}</td>"
        marked = " class='primary'" if measure.name == primary_measure else ""
        rows.append(f"<tr{marked}><td class='name'>{_e(measure.label)} ({unit})</td>{body}</tr>")
    excursion = result.movements["commissure_excursion"]
    marked = " class='primary'" if result.primary == "commissure_excursion" else ""
    digits = 1 if result.unit == "mm" else 3
    rows.append(f"<tr{marked}><td class='name'>commissure excursion ({_e(result.unit)})</td>"
                + "".join(f"<td>{a:.{digits}f}</td>" for a in excursion.amount) + "</tr>")
    return (f"<table class='measurements'><tr><th>measurement</th><th>patient's right</th><th>patient's left</th></tr>"
            f"{''.join(rows)}</table>"
            f"<div class='meta'>{_e(result.scale_source)}</div>")


def _blendshape_table(explanation: Optional["FrameExplanation"]) -> str:
    if explanation is None or explanation.contributions is None:
        return ""
    parts = []
    for c, score in enumerate(SCORES):
        rows = []
        for item in explanation.contributions[c]:
            sides = ("L ", "R ") if len(item.names) == 2 else ("",)  # MediaPipe's order: Left, then Right
            values = " · ".join(f"{side}{r:.2f} → {x:.2f}" for side, r, x in zip(sides, item.rest, item.expression))
            rows.append(f"<tr><td class='name'>{_e(' / '.join(item.names))}</td><td>{item.grades:+.2f}</td>"
                        f"<td>{values}</td></tr>")
        parts.append(f"<table class='blendshapes'><tr><th>{score}: blendshape</th><th>grades</th>"
                     f"<th>rest → expression</th></tr>{''.join(rows)}</table>")
    return "".join(parts)


def _expression_card(g: int, content: ReportContent, item_of: dict[str, str]) -> str:
    table, samples = content.table, content.samples
    expression = table.keys[g][1]
    row = int(content.shown[g])
    result = content.measurements.get(row)
    item = item_of.get(expression)
    title = f"{_e(expression)}" + (f" · {_e(ITEM_TITLES[item])}" if item else "")
    details = [grade_lines(g, table) + f'<span class="meta">{int(table.frames[g])} frame(s); shown: frame '
               f"{_e(samples.frame[row])}</span>"]
    if result is not None:
        details.append(_measurement_table(result))
    details.append(_blendshape_table(content.explanations.get(row)))
    return (f'<div class="card"><b>{title}</b>{_affected_line(result)}{_card_images(row, content)}'
            f'<div class="details">{"".join(details)}</div></div>')


def _affected_summary(groups: list[int], content: ReportContent) -> str:
    """Which side moved less, per expression, by measurement."""
    sides: dict[str, list[str]] = {}
    for g in groups:
        result = content.measurements.get(int(content.shown[g]))
        movement = result.affected if result is not None else None
        if movement is not None:
            sides.setdefault(movement.affected or "none named", []).append(content.table.keys[g][1])
    if not sides:
        return ""
    order = [*SIDES, "none named"]
    text = "; ".join(f"{side} in {', '.join(sides[side])}" for side in order if side in sides)
    return f"<p>Side that moved less, by measurement: {_e(text)}.</p>"


def _patient_section(patient: PatientRow, groups: list[int], content: ReportContent, item_of: dict[str, str]) -> str:
    intervals = ("" if content.uncertainty is None or not content.per_patient else
                 report_uncertainty.subtotal_intervals(content.per_patient[patient.video], content.uncertainty))
    subtotal = (f"voluntary movement {_cell(patient.voluntary_movement)} / 100, synkinesis {_cell(patient.synkinesis)} / 15"
                + intervals if patient.voluntary_movement is not None else
                "Sunnybrook subtotals need all five items; missing: "
                + ", ".join(ITEM_TITLES[i] for i in SUNNYBROOK_ITEMS if patient.items[i] is None))
    cards = "".join(_expression_card(g, content, item_of) for g in groups)
    return (f'<h3 id="p-{_e(patient.video)}">{_e(patient.video)}</h3><p>{subtotal}</p>'
            f'{_affected_summary(groups, content)}<div class="cards">{cards}</div>')


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



def write_report(path: Path, content: ReportContent) -> None:
    info, patients = content.info, content.patients
    labelled = bool(content.agreement)
    groups_of: dict[str, list[int]] = {}
    for g, (video, _) in enumerate(content.table.keys):
        groups_of.setdefault(video, []).append(g)
    item_of = {expression: item for item, expression in content.mapping.items() if expression}
    shown = patients[:content.max_patients]
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{TITLE}</title><style>{STYLE}</style></head><body>",
        f"<h1>{TITLE}</h1>",
        f"<p class='meta'>{_e(dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z'))} · model: {_e(info.checkpoint)} "
        f"(stage {_e(info.stage)}, {_e(info.backend)}) · data: {_e(content.source)} · {len(content.samples)} samples of "
        f"{len(patients)} patients · {content.bad_samples} bad sample(s) left out (bad_samples.csv)</p>",
        _notes(content),
        "<h2>Patients</h2>", _summary_table(patients, labelled),
        _not_graded_section(content.not_graded, content.table),
    ]
    if content.uncertainty is not None:
        parts.append(report_uncertainty.section(content.uncertainty, content.per_patient, shown))
    titles = {e: f"{e} · {ITEM_TITLES[item]}" for e, item in item_of.items()}
    if labelled:
        parts.append(_agreement_section(content.agreement, content.metrics, path.parent))
    parts.append(_reading_guide(content))
    if len(patients) > len(shown):
        parts.append(f"<p class='meta'>The first {len(shown)} of {len(patients)} patients (report_max_patients); "
                     "all are in patients.csv and measurements.csv.</p>")
    for patient in shown:
        if patient.video not in groups_of:  # a patient none of whose clips was graded is in the section above
            continue
        parts.append(_patient_section(patient, groups_of[patient.video], content, item_of))
        if content.uncertainty is not None:
            parts.append(report_uncertainty.patient_block(patient.video, content.uncertainty, content.table, titles))
    parts.append("</body></html>")
    atomic_write_text(path, "\n".join(parts))
