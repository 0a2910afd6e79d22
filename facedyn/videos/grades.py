"""The grading sheet: one row per patient and expression with Sunnybrook dynamics (0-5) and synkinesis (0-3).

CSV (any delimiter the csv sniffer recognises among , ; tab) or XLSX (first sheet, header in the first
row). Column names come from `grade_columns`; expression names go through the same mapping as the videos.
Any bad row is an error naming the file and the row, found before a single video is processed.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from facedyn.data.reader import DYNAMICS_RANGE, SYNKINESIS_RANGE
from facedyn.videos.config import GradeColumns
from facedyn.videos.discovery import ExpressionNames, clip_key, nfc
from facedyn.videos.errors import PrepareError


@dataclass(frozen=True)
class Grade:
    dynamics: int
    synkinesis: int
    row: str  # "<file>:<row>", to name it in messages

    def labels(self) -> dict[str, int]:
        """The sample's expression_g_column.json: the keys the reader reads by default."""
        return {"dynamics": self.dynamics, "synkinesis": self.synkinesis}


def _csv_rows(path: Path) -> Iterator[tuple[int, list[Any]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise PrepareError(f"grades={path}: not UTF-8 text; save the sheet as CSV (UTF-8) or XLSX") from None
    try:
        dialect = csv.Sniffer().sniff(text.split("\n", 1)[0], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    for number, row in enumerate(csv.reader(text.splitlines(), dialect), start=1):
        yield number, row


def _xlsx_rows(path: Path) -> Iterator[tuple[int, list[Any]]]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile, KeyError and its own errors for a damaged file
        raise PrepareError(f"grades={path}: not a readable XLSX workbook ({type(exc).__name__}: {exc})") from None
    try:
        for number, row in enumerate(workbook.worksheets[0].iter_rows(values_only=True), start=1):
            yield number, ["" if cell is None else cell for cell in row]
    finally:
        workbook.close()


def _grade(value: Any, column: str, valid: tuple[int, int], where: str) -> int:
    text = str(value).strip()
    number: Optional[float]
    try:
        number = float(text) if not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or not number.is_integer():
        raise PrepareError(f"{where}: {column} is {text!r}, not an integer {valid[0]}-{valid[1]}")
    if not valid[0] <= number <= valid[1]:
        raise PrepareError(f"{where}: {column} is {int(number)}, outside {valid[0]}-{valid[1]}")
    return int(number)


def read_grades(path: str | Path, columns: GradeColumns, names: ExpressionNames) -> dict[tuple[str, str], Grade]:
    """{(patient, canonical expression): Grade}; PrepareError naming the row for any bad one."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise PrepareError(f"grades={path}: {'not a file' if path.exists() else 'does not exist'}")
    suffix = path.suffix.casefold()
    if suffix not in (".csv", ".xlsx"):
        raise PrepareError(f"grades={path}: expected a .csv or .xlsx grading sheet")
    rows = _xlsx_rows(path) if suffix == ".xlsx" else _csv_rows(path)
    header: Optional[dict[str, int]] = None
    wanted = (columns.patient, columns.expression, columns.dynamics, columns.synkinesis)
    grades: dict[tuple[str, str], Grade] = {}
    rows_of: dict[tuple[str, Optional[str]], str] = {}  # by clip_key: the row that graded it
    for number, row in rows:
        cells = [str(cell).strip() for cell in row]
        if not any(cells):
            continue
        if header is None:
            header = {name: i for i, name in reversed(list(enumerate(cells)))}
            missing = [name for name in wanted if name not in header]
            if missing:
                raise PrepareError(
                    f"grades={path}: no column {', '.join(map(repr, missing))} in the header row "
                    f"({', '.join(c for c in cells if c)}); name the columns with grade_columns.<key>=…")
            continue
        where = f"grades={path} row {number}"
        value = {name: row[header[name]] if header[name] < len(row) else "" for name in wanted}
        patient, given = nfc(str(value[columns.patient]).strip()), str(value[columns.expression]).strip()
        if not patient:
            raise PrepareError(f"{where}: {columns.patient} is empty")
        expression = names.canonical(given)
        if expression is None:
            raise PrepareError(f"{where}: expression {given!r} is not in the expressions mapping")
        grade = Grade(_grade(value[columns.dynamics], columns.dynamics, DYNAMICS_RANGE, where),
                      _grade(value[columns.synkinesis], columns.synkinesis, SYNKINESIS_RANGE, where),
                      f"{path.name} row {number}")
        key = clip_key(patient, expression)
        if key in rows_of:
            raise PrepareError(f"{where}: {patient} {expression} is graded twice (also {rows_of[key]})")
        rows_of[key] = grade.row
        grades[(patient, expression)] = grade
    if header is None:
        raise PrepareError(f"grades={path}: the sheet is empty")
    return grades
