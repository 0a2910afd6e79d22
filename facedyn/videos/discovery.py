"""Find the clips under the videos folder: which patient, which expression, which file.

Two layouts are common: `<videos>/<patient>/<expression>.<ext>` and `<videos>/<expression>/<patient>.<ext>`.
`auto` picks the one whose expression names (read through the mapping) match more files. A file whose
expression name is not in the mapping is still listed, as a clip to report and skip.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

from facedyn.videos.errors import PrepareError

PATIENT_FIRST, EXPRESSION_FIRST = "patient/expression", "expression/patient"


@dataclass(frozen=True)
class Clip:
    path: Path
    relative: str  # path relative to the videos folder, as the report shows it
    patient: str
    expression: Optional[str]  # the canonical name; None when the file's name is not in the mapping
    given_expression: str  # the name in the file system


def nfc(name: str) -> str:
    """A name in Unicode's composed form: macOS writes "ë" in file names as "e" + a combining diaeresis
    (NFD), a spreadsheet as one letter (NFC); both must be the same patient."""
    return unicodedata.normalize("NFC", name)


def normalize_name(name: str) -> str:
    """Expression names compare composed (NFC) and case-folded, with runs of spaces, hyphens and dots read as "_"."""
    return re.sub(r"[\s\-.]+", "_", nfc(name).strip()).casefold()


def clip_key(patient: str, expression: Optional[str]) -> tuple[str, Optional[str]]:
    """What matches a clip with its grade (and finds duplicates): the patient composed and case-folded."""
    return nfc(patient).strip().casefold(), expression


class ExpressionNames:
    """The mapping `canonical: [names]` as a lookup from any listed name (normalised) to its canonical name."""

    def __init__(self, mapping: Mapping[str, Sequence[str]]):
        self._lookup: dict[str, str] = {}
        for canonical, aliases in mapping.items():
            for alias in [canonical, *aliases]:
                key = normalize_name(alias)
                if self._lookup.get(key, canonical) != canonical:
                    raise PrepareError(f"expressions: the name {alias!r} is listed under both "
                                       f"{self._lookup[key]} and {canonical}")
                self._lookup[key] = canonical

    def canonical(self, name: str) -> Optional[str]:
        return self._lookup.get(normalize_name(name))


def _entries(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as entries:
            return sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as exc:
        raise PrepareError(f"videos={folder}: cannot list it ({exc.strerror or exc})") from None


def _video_files(folder: Path, extensions: set[str]) -> list[Path]:
    return [Path(e.path) for e in _entries(folder)
            if e.is_file() and Path(e.name).suffix[1:].casefold() in extensions]


def _clips(root: Path, layout: str, names: ExpressionNames, extensions: set[str]) -> list[Clip]:
    clips = []
    for folder in (e for e in _entries(root) if e.is_dir()):
        for path in _video_files(Path(folder.path), extensions):
            outer, inner = nfc(folder.name), nfc(path.stem)
            patient, given = (outer, inner) if layout == PATIENT_FIRST else (inner, outer)
            clips.append(Clip(path, path.relative_to(root).as_posix(), patient, names.canonical(given), given))
    return clips


def find_clips(videos: str | os.PathLike, layout: str, mapping: Mapping[str, Sequence[str]],
               extensions: Sequence[str]) -> tuple[list[Clip], str]:
    """Every clip under `videos` (sorted by path) and the layout used; PrepareError when there is none."""
    root = Path(videos).expanduser()
    if not root.is_dir():
        raise PrepareError(f"videos={root}: {'not a folder' if root.exists() else 'does not exist'}")
    names = ExpressionNames(mapping)
    wanted = {ext.lstrip(".").casefold() for ext in extensions}
    layouts = (PATIENT_FIRST, EXPRESSION_FIRST) if layout == "auto" else (layout,)
    found = {name: _clips(root, name, names, wanted) for name in layouts}
    # auto: the layout under which more files name a known expression; patient/expression on a tie.
    chosen = max(layouts, key=lambda name: sum(clip.expression is not None for clip in found[name]))
    clips = found[chosen]
    if not clips:
        raise PrepareError(
            f"videos={root}: no video files ({', '.join(sorted(wanted))}) one folder down; expected "
            f"<videos>/<patient>/<expression>.<ext> or <videos>/<expression>/<patient>.<ext>")
    if not any(clip.expression for clip in clips):
        raise PrepareError(
            f"videos={root}: no file or folder is named after an expression ({', '.join(mapping)}); "
            f"map your names with expressions.<name>=[...] or set layout=")
    return clips, chosen
