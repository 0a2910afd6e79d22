"""report.html's part for an ensemble: how sure the grades are, and which to check by hand.

`section` states the interval level, how and on what the intervals were calibrated and the flag rule, and
lists every shown patient with the subtotals' intervals and the expressions flagged; `patient_block`
gives, under a patient's cards, each expression's grade with the fold models' range, the interval and the
whole grades in it. Self-contained (its own style), called by facedyn.inference.report.
"""

from __future__ import annotations

import html
from typing import Optional

from facedyn.inference.conformal import METHODS
from facedyn.inference.tables import PatientRow, VideoGrades
from facedyn.inference.uncertainty import PatientUncertainty, Uncertainty, count_words, grade_set, percent
from facedyn.metrics import MAX_GRADE, SCORES

STYLE = """<style>
.flagged { background: #fde8e8; } td.reason { text-align: left; max-width: 520px; }
.flag { color: #b42318; font-weight: 600; } .ok { color: #2e7d32; }
table.uncertainty td { white-space: nowrap; } table.uncertainty td.reason { white-space: normal; }
</style>"""


def _e(value: object) -> str:
    return html.escape(str(value))


def _interval(pair: Optional[tuple[int, int]]) -> str:
    return "—" if pair is None else f"{pair[0]}–{pair[1]}"


def _reasons(reasons: list[str]) -> str:
    if not reasons:
        return '<span class="ok">—</span>'
    return '<span class="flag">check:</span> ' + "; ".join(_e(r) for r in reasons)


def _flagged(video: str, expressions: list[str]) -> str:
    if not expressions:
        return '<span class="ok">—</span>'
    return (f'<span class="flag">check:</span> {_e(", ".join(expressions))} '
            f'(<a href="#u-{_e(video)}">why</a>)')


def section(u: Uncertainty, per_patient: dict[str, PatientUncertainty], shown: list[PatientRow]) -> str:
    """The statement of what the intervals and flags mean, and the per-patient overview."""
    plural = "s" if len(u.folds) != 1 else ""
    models = f"{count_words(len(u.folds))} fold model{plural} (fold{plural} {', '.join(map(str, u.folds))})"
    dropped = (" Left out: " + "; ".join(f"fold {k} ({_e(why)})" for k, why in u.left_out.items()) + ".") if u.left_out else ""
    rule = f"fold models whose grades differ by more than {u.rule.spread:g} grade{'s' if u.rule.spread != 1 else ''}"
    if u.level is not None:
        rule = f"an interval holding more than {u.rule.grades} whole grade{'s' if u.rule.grades != 1 else ''}, or {rule}"
    if u.level is not None:
        how = ("each set around the grade of the model that did not see it" if u.method == "cv_plus" else
               "their quantile set on both sides of the ensemble's grade")
        intervals = (
            f"<b>{percent(u.level)} prediction intervals</b> per video and expression, conformal "
            f"({METHODS[u.method]}): calibrated on the out-of-fold residuals |true − predicted| of the "
            f"cross-validation ({_e(u.calibration)}), {how}. For patients like those it was calibrated on, an "
            f"interval holds the true grade about {percent(u.level)} of the time (python -m facedyn.crossval.evaluate "
            "measures it on data no model saw); it is clipped to the grade range, and the whole grades inside it "
            "hold the true grade as often. A Sunnybrook "
            "subtotal's interval adds its items' interval ends: it holds the subtotal whenever every item's does "
            "(conservative).")
    else:
        intervals = "No prediction intervals (interval=null)."
    rows = []
    for patient in shown:
        p = per_patient[patient.video]
        cls = ' class="flagged"' if p.reasons else ""
        rows.append(f'<tr{cls}><td class="name"><a href="#p-{_e(patient.video)}">{_e(patient.video)}</a></td>'
                    f"<td>{'—' if patient.voluntary_movement is None else patient.voluntary_movement}</td>"
                    f"<td>{_interval(p.voluntary_movement)}</td>"
                    f"<td>{'—' if patient.synkinesis is None else patient.synkinesis}</td><td>{_interval(p.synkinesis)}</td>"
                    f'<td class="reason">{_flagged(patient.video, p.flagged)}</td></tr>')
    level = percent(u.level) if u.level is not None else ""
    flagged = sum(1 for p in shown if per_patient[p.video].reasons)
    return (f"{STYLE}<h2 id='uncertainty'>How sure the grades are</h2>"
            f"<p class='meta'>Each grade is the mean of the {models}; their spread is their lowest and highest "
            f"grade.{dropped} {intervals} Flagged for checking by hand: {rule}.</p>"
            f"<p><b>{flagged} of {len(shown)} patients flagged.</b></p>"
            "<table id='flags' class='uncertainty'><tr><th>patient</th><th>voluntary movement</th>"
            f"<th>{level} interval</th><th>synkinesis</th><th>{level} interval</th><th>to check</th></tr>"
            f"{''.join(rows)}</table>")


def subtotal_intervals(p: PatientUncertainty, u: Uncertainty) -> str:
    """The patient's subtotal intervals in words, for the heading of its section ("" without intervals)."""
    if u.level is None or p.voluntary_movement is None or p.synkinesis is None:
        return ""
    return (f" ({percent(u.level)} intervals: voluntary movement {_interval(p.voluntary_movement)}, "
            f"synkinesis {_interval(p.synkinesis)})")


def patient_block(video: str, u: Uncertainty, table: VideoGrades, titles: dict[str, str]) -> str:
    """Per expression of one patient (`titles`: expression → its title): grade, the fold models' range, the
    interval and the whole grades in it, flags."""
    first, last = u.grade_range() if u.level is not None else (None, None)
    spread_low, spread_high = u.spread_low, u.spread_high
    heads = "".join(f"<th>{score} (0–{MAX_GRADE[score]})</th><th>models</th>"
                    + (f"<th>{percent(u.level)} interval</th><th>grades in it</th>" if u.level is not None else "")
                    for score in SCORES)
    rows = []
    for g, (name, expression) in enumerate(table.keys):
        if name != video:
            continue
        cells = []
        for c in range(len(SCORES)):
            cells.append(f"<td><b>{table.grades[g, c]}</b> ({table.mean[g, c]:.2f})</td>"
                         f"<td>{spread_low[g, c]:.1f}–{spread_high[g, c]:.1f}</td>")
            if u.level is not None:
                cells.append(f"<td>{u.low[g, c]:.1f}–{u.high[g, c]:.1f}</td><td>{grade_set(first[g, c], last[g, c])}</td>")
        title = _e(titles.get(expression, expression))
        cls = ' class="flagged"' if u.reasons[g] else ""
        rows.append(f'<tr{cls}><td class="name">{title}</td>{"".join(cells)}'
                    f'<td class="reason">{_reasons(u.reasons[g])}</td></tr>')
    return (f'<table class="uncertainty" id="u-{_e(video)}"><tr><th>expression</th>{heads}<th>to check</th></tr>'
            f"{''.join(rows)}</table>")
