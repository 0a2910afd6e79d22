"""What the entry points say when the command line or the file system is in the way: one line, once, no
traceback and nothing left behind. The tests run as root, so a folder's write bits would not stop them:
an unwritable place here is a path under a regular file, which no user can create folders in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from facedyn.config import command_line_overrides
from tests.conftest import REPO


def _run(script: str, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / script), *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}, timeout=300)


def _one_line(result: subprocess.CompletedProcess, expected: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output and "Exception" not in output, output
    assert output.strip().splitlines() == [expected], output  # said once, and nothing else


def test_letters_beyond_ascii_in_a_path_are_quoted_for_hydra():
    assert command_line_overrides(["videos=/data/Müller", "out=/data/ds", "stage=1"]) == [
        "videos='/data/Müller'", "out=/data/ds", "stage='1'"]


def test_a_path_with_letters_beyond_ascii_is_read(tmp_path):
    videos = tmp_path / "Müller"
    videos.mkdir()
    result = _run("prepare.py", f"videos={videos}", f"out={tmp_path / 'out'}")
    _one_line(result, f"error: videos={videos}: no video files (avi, m4v, mkv, mov, mp4, webm) one folder down; "
                      "expected <videos>/<patient>/<expression>.<ext> or <videos>/<expression>/<patient>.<ext>")


def test_a_setting_hydra_cannot_read_says_how_to_quote_it(tmp_path):
    value = f"{tmp_path}/Mü,ller"
    _one_line(_run("predict.py", f"videos={value}"),
              f"error: cannot read the setting 'videos={value}'; put its value in quotes, as in "
              f"videos='{value}' (with the shell's quotes around it all: \"videos='{value}'\")")


def test_out_where_no_folder_can_be_made_is_one_line(tmp_path, landmarker_task):
    (tmp_path / "videos" / "p1").mkdir(parents=True)
    (tmp_path / "videos" / "p1" / "smile.mp4").write_bytes(b"")
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder\n")
    result = _run("prepare.py", f"videos={tmp_path / 'videos'}", f"out={blocker / 'dataset'}")
    _one_line(result, f"error: out={blocker / 'dataset'}: cannot create the dataset folder there (Not a directory); "
                      "choose a folder you can write to")


def test_predict_from_a_folder_where_outputs_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / "outputs").write_text("a file where predict.py would make its folder\n")
    result = _run("predict.py", cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output and "Error" not in output, output
    (line,) = output.strip().splitlines()
    assert line.startswith("error: cannot create the output folder outputs/predictions/") and line.endswith(
        "(Not a directory); start from a folder you can write to or set paths.output_dir=/a/writable/folder"), line


def test_a_refused_predict_says_why_once_and_leaves_no_folder(tmp_path):
    result = _run("predict.py", f"run={tmp_path / 'no_such_run'}", cwd=tmp_path)
    _one_line(result, f"error: run={tmp_path / 'no_such_run'}: no such run folder or checkpoint file")
    assert list(tmp_path.iterdir()) == []  # no outputs/predictions/<time>/ holding only predict.log
