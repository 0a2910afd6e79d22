"""Writing rendered pages: markdown tables, generated blocks inside hand-written pages, and the staleness check."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Sequence

# The repository's root: the docs, their data and README.md sit there (a checkout, not an installed wheel).
REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
BLOCK = re.compile(r"(<!-- generated: (?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /generated -->)", re.S)


def cell(value: object) -> str:
    """A value as one markdown table cell: on one line, its pipes escaped, and `<…>` outside code spans
    written as text (`<root>/<expression>`), not read as an HTML tag."""
    parts = " ".join(str(value).split()).replace("|", "\\|").split("`")
    return "`".join(p if i % 2 else p.replace("<", "&lt;").replace(">", "&gt;") for i, p in enumerate(parts))


def table(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def fill_blocks(text: str, blocks: dict[str, str], where: str) -> str:
    """`text` with the body of every `<!-- generated: NAME -->` … `<!-- /generated -->` block replaced by
    blocks[NAME]; a block without a renderer is an error naming it."""
    def body(match: re.Match) -> str:
        name = match["name"]
        if name not in blocks:
            raise KeyError(f"{where}: no renderer for the generated block {name!r} (known: {', '.join(sorted(blocks))})")
        return match[1] + blocks[name].rstrip("\n") + "\n" + match[4]

    return BLOCK.sub(body, text)


def write_or_check(pages: dict[Path, str], check: bool) -> list[Path]:
    """Write each page whose text changed, or with check=True only list them; the stale (or written) pages."""
    stale = [path for path, text in pages.items() if not path.is_file() or path.read_text() != text]
    if not check:
        for path in stale:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(pages[path])
    return stale


def report(stale: list[Path], check: bool, command: str) -> int:
    """The command's exit status, after one line per stale page."""
    for path in stale:
        rel = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        print(f"{rel}: out of date; run `{command}`" if check else f"wrote {rel}")
    return 1 if check and stale else 0
