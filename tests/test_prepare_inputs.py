"""prepare.py's inputs without running MediaPipe: the videos folder's two layouts and expression names,
the grading sheet (CSV and XLSX, named columns, one clear error per bad row), settings, the output folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from facedyn.videos import PrepareError
from facedyn.videos.config import GradeColumns, PrepareConfig, as_config
from facedyn.videos.discovery import ExpressionNames, find_clips
from facedyn.videos.grades import read_grades

EXTENSIONS = PrepareConfig().extensions
MAPPING = {**PrepareConfig().expressions, "smile": ["smile", "Smile", "open_mouth_smile"]}


def _touch(root: Path, *names: str) -> Path:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"video")
    return root


def _found(root: Path, layout: str = "auto") -> tuple[set[tuple[str, str, str | None]], str]:
    clips, used = find_clips(root, layout, MAPPING, EXTENSIONS)
    return {(c.relative, c.patient, c.expression) for c in clips}, used


def test_patient_folders_are_detected(tmp_path):
    root = _touch(tmp_path, "anna/Smile.MP4", "anna/eye closure.avi", "ben/open_mouth_smile.mov", "ben/blink.mkv",
                  "ben/notes.txt", ".hidden/smile.mp4", "anna/.smile.mp4")
    assert _found(root) == ({("anna/Smile.MP4", "anna", "smile"), ("anna/eye closure.avi", "anna", "eye_close"),
                             ("ben/open_mouth_smile.mov", "ben", "smile"), ("ben/blink.mkv", "ben", None)},
                            "patient/expression")


def test_expression_folders_are_detected(tmp_path):
    root = _touch(tmp_path, "smile/anna.mp4", "smile/ben.mp4", "Lip-Pucker/anna.webm")
    assert _found(root) == ({("smile/anna.mp4", "anna", "smile"), ("smile/ben.mp4", "ben", "smile"),
                             ("Lip-Pucker/anna.webm", "anna", "lip_pucker")}, "expression/patient")


def test_layout_can_be_set(tmp_path):
    root = _touch(tmp_path, "smile/snarl.mp4")  # a patient called "snarl"? the setting decides
    assert _found(root, "expression/patient")[0] == {("smile/snarl.mp4", "snarl", "smile")}
    assert _found(root, "patient/expression")[0] == {("smile/snarl.mp4", "smile", "snarl")}


@pytest.mark.parametrize("names, message", [
    ((), "no video files"),
    (("anna/wave.mp4", "ben/hello.avi"), "no file or folder is named after an expression"),
])
def test_folders_without_clips_are_one_line_errors(tmp_path, names, message):
    root = _touch(tmp_path / "videos", *names) if names else (tmp_path / "videos")
    root.mkdir(exist_ok=True)
    with pytest.raises(PrepareError, match=message):
        find_clips(root, "auto", MAPPING, EXTENSIONS)
    with pytest.raises(PrepareError, match="does not exist"):
        find_clips(tmp_path / "missing", "auto", MAPPING, EXTENSIONS)


def test_a_name_under_two_expressions_is_refused():
    with pytest.raises(PrepareError, match="'Grin' is listed under both smile and snarl"):
        ExpressionNames({"smile": ["grin"], "snarl": ["Grin"]})


COLUMNS = GradeColumns(patient="Patient ID", expression="Task", dynamics="Movement", synkinesis="Synk")


def test_csv_grades_with_named_columns_and_semicolons(tmp_path):
    sheet = tmp_path / "grades.csv"
    sheet.write_text("Patient ID;Task;Movement;Synk;Notes\nanna;Smile;3;1;left weaker\n\nben;eye closure;5.0;0;\n")
    grades = read_grades(sheet, COLUMNS, ExpressionNames(MAPPING))
    assert {k: (g.dynamics, g.synkinesis) for k, g in grades.items()} == {("anna", "smile"): (3, 1),
                                                                           ("ben", "eye_close"): (5, 0)}
    assert grades[("anna", "smile")].labels() == {"dynamics": 3, "synkinesis": 1}


def test_xlsx_grades(tmp_path):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["Patient ID", "Task", "Movement", "Synk"])
    sheet.append(["anna", "smile", 2, 3])
    sheet.append(["ben", "lip_pucker", 4.0, 0])
    book.save(tmp_path / "grades.xlsx")
    grades = read_grades(tmp_path / "grades.xlsx", COLUMNS, ExpressionNames(MAPPING))
    assert {k: (g.dynamics, g.synkinesis) for k, g in grades.items()} == {("anna", "smile"): (2, 3),
                                                                           ("ben", "lip_pucker"): (4, 0)}


@pytest.mark.parametrize("rows, message", [
    ("anna,smile,3,1\nben,smile,six,0\n", "row 3: dynamics is 'six', not an integer 0-5"),
    ("anna,smile,3,1\nben,smile,2.5,0\n", "row 3: dynamics is '2.5', not an integer 0-5"),
    ("anna,smile,6,1\n", "row 2: dynamics is 6, outside 0-5"),
    ("anna,smile,3,4\n", "row 2: synkinesis is 4, outside 0-3"),
    ("anna,smile,3,\n", "row 2: synkinesis is '', not an integer 0-3"),
    ("anna,smile,3,1\nanna,Smile,2,1\n", "row 3: anna smile is graded twice \\(also grades.csv row 2\\)"),
    ("anna,wave,3,1\n", "row 2: expression 'wave' is not in the expressions mapping"),
    (",smile,3,1\n", "row 2: patient is empty"),
])
def test_bad_grade_rows_are_named(tmp_path, rows, message):
    sheet = tmp_path / "grades.csv"
    sheet.write_text("patient,expression,dynamics,synkinesis\n" + rows)
    with pytest.raises(PrepareError, match=f"grades={sheet} {message}"):
        read_grades(sheet, GradeColumns(), ExpressionNames(MAPPING))


def test_missing_grade_column_names_the_setting(tmp_path):
    sheet = tmp_path / "grades.csv"
    sheet.write_text("patient,expression,movement,synkinesis\nanna,smile,3,1\n")
    with pytest.raises(PrepareError, match="no column 'dynamics' in the header row .*grade_columns"):
        read_grades(sheet, GradeColumns(), ExpressionNames(MAPPING))
    (tmp_path / "grades.ods").write_text("x")
    with pytest.raises(PrepareError, match="expected a .csv or .xlsx grading sheet"):
        read_grades(tmp_path / "grades.ods", GradeColumns(), ExpressionNames(MAPPING))


@pytest.mark.parametrize("settings, message", [
    ({"out": "x"}, "videos is not set"),
    ({"videos": "v", "out": "x", "workers": -1}, "workers=-1 must be 0"),
    ({"videos": "v", "out": "x", "selection": {"frames": 0}}, "selection.frames=0 must be at least 1"),
    ({"videos": "v", "out": "x", "flow": {"metod": "dis"}}, "unknown setting\\(s\\) flow.metod"),
    ({"videos": "v", "out": "x", "expressions": {"wink": ["wink"]}}, "expressions: wink"),
    ({"videos": "v", "out": "x", "layout": "flat"}, "layout='flat' must be one of"),
])
def test_bad_settings_name_the_key(settings, message):
    with pytest.raises(PrepareError, match=message):
        as_config(settings)


def test_out_must_be_new_empty_or_an_earlier_output(tmp_path):
    from facedyn.videos import prepare

    videos = _touch(tmp_path / "videos", "anna/smile.mp4")
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("...")
    with pytest.raises(PrepareError, match="is not empty and holds no earlier prepare.py output"):
        prepare({"videos": str(videos), "out": str(precious), "progress": False})
    assert [p.name for p in precious.iterdir()] == ["chapter1.tex"]


def test_names_match_whether_composed_or_not_and_in_any_case(tmp_path):
    """A folder named on macOS (NFD: "e" + combining diaeresis) and the sheet's name (NFC) are one patient."""
    import unicodedata

    from facedyn.videos.discovery import clip_key

    decomposed = unicodedata.normalize("NFD", "Zoë Müller")
    videos = _touch(tmp_path / "videos", f"{decomposed}/smile.mp4")
    (clip,), _ = find_clips(videos, "auto", MAPPING, EXTENSIONS)
    sheet = tmp_path / "grades.csv"
    sheet.write_text("patient,expression,dynamics,synkinesis\nzoë müller,smile,3,1\n", encoding="utf-8")
    grades = read_grades(sheet, GradeColumns(), ExpressionNames(MAPPING))
    assert clip.patient == "Zoë Müller"  # composed, as the samples will be named
    assert {clip_key(*key) for key in grades} == {clip_key(clip.patient, clip.expression)}
    sheet.write_text("patient,expression,dynamics,synkinesis\nZoë Müller,smile,3,1\n"
                     f"{decomposed.upper()},smile,4,1\n", encoding="utf-8")
    with pytest.raises(PrepareError, match="graded twice"):
        read_grades(sheet, GradeColumns(), ExpressionNames(MAPPING))
