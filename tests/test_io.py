"""facedyn.utils.io: atomic writes replace the target whole and give it the mode a plain write would."""

from __future__ import annotations

import os
import stat

import pytest

from facedyn.utils.io import atomic_write_json, atomic_write_text


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_have_the_mode_the_umask_gives(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "report.html", "<html></html>")
        atomic_write_json(tmp_path / "sub" / "metrics.json", {"a": 1})
    finally:
        os.umask(previous)
    for path in (tmp_path / "report.html", tmp_path / "sub" / "metrics.json"):
        assert stat.S_IMODE(path.stat().st_mode) == mode
    assert (tmp_path / "report.html").read_text() == "<html></html>"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left
