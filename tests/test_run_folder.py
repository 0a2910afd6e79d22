"""The run folder belongs to one live process; automatic folder names never collide; config mistakes are one
line before anything loads. Real train.py processes, real locks, real signals."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facedyn.runs import RunFolderInUse, owned
from tests.conftest import REPO, folder_held_by_another_process

def _train_py(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "train.py"), *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)})


@pytest.mark.slow  # CI time: train.py's refusal line is checked by the SIGTERM test, the lock by the two below
def test_a_folder_held_by_a_live_process_is_refused_and_a_dead_ones_is_taken_over(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with folder_held_by_another_process(run_dir) as holder:
        second = _train_py(f"hydra.run.dir={run_dir}", f"paths.output_dir={tmp_path}", cwd=tmp_path)
        output, _ = second.communicate(timeout=300)
        assert second.returncode == 1, output
        assert f"run folder {run_dir} is in use by process {holder.pid} on {socket.gethostname()}" in output
        assert "Traceback" not in output and len(output.strip().splitlines()) == 1
        assert not (run_dir / "config.yaml").exists() and not (run_dir / "run_status.json").exists()
        assert not (run_dir / "train.log").exists() or not (run_dir / "train.log").read_text()
        with pytest.raises(RunFolderInUse):
            with owned(run_dir):
                pass
    with owned(run_dir):  # the kernel dropped the dead holder's lock
        pass
    # With the folder free, the next mistake is a config one: one line, before any data or model loads.
    third = _train_py(f"hydra.run.dir={run_dir}", f"paths.output_dir={tmp_path}", "optimizer.lr=-1", cwd=tmp_path)
    output, _ = third.communicate(timeout=300)
    assert third.returncode == 1, output
    assert "error: optimizer.lr=-1 must be positive" in output
    assert "Traceback" not in output and "data:" not in output


FORKED_HOLDER = ("import os, sys, time\nfrom facedyn.runs import owned\n"
                 "with owned(sys.argv[1]):\n"
                 "    child = os.fork()  # as DataLoader workers are: the child inherits every open descriptor\n"
                 "    if child == 0:\n        time.sleep(600)\n        os._exit(0)\n"
                 "    print(child, flush=True)\n    time.sleep(600)\n")


def test_a_killed_writers_forked_children_do_not_keep_its_folder(tmp_path: Path) -> None:
    """SIGKILL of train.py leaves its loader workers alive for a while: its folder must be free at once (a
    flock, shared with forked children, kept it held and refused the resume)."""
    run_dir = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", FORKED_HOLDER, str(run_dir)], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    child = int(holder.stdout.readline())
    try:
        with pytest.raises(RunFolderInUse, match=f"in use by process {holder.pid} "):
            with owned(run_dir):
                pass
        holder.kill()
        holder.wait()
        os.kill(child, 0)  # the child still runs, holding the parent's descriptor
        with owned(run_dir):
            pass
    finally:
        os.kill(child, 9)


def test_a_process_cannot_hold_one_folder_twice(tmp_path: Path) -> None:
    with owned(tmp_path):
        with pytest.raises(RunFolderInUse, match=f"in use by process {os.getpid()} .*this one"):
            with owned(tmp_path / "." ):
                pass
        # the refusal did not drop this process's own lock: another process is still refused
        probe = subprocess.run([sys.executable, "-c", "import sys\nfrom facedyn.runs import owned\n"
                                "with owned(sys.argv[1]): pass\n", str(tmp_path)],
                               capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert probe.returncode != 0 and "RunFolderInUse" in probe.stderr


def test_two_runs_started_in_the_same_second_get_two_folders(tmp_path: Path) -> None:
    # The automatic name with its time stamp pinned: both processes ask for the very same folder.
    same_name = "hydra.run.dir='${facedyn_run_dir:${resume}," + str(tmp_path / "runs" / "same") + "}'"
    runs = [_train_py(same_name, f"paths.output_dir={tmp_path}", "stages.s2a.lr=-2", cwd=tmp_path) for _ in range(2)]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [1, 1], outputs
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["same", "same_2"]
    for folder in ("same", "same_2"):
        log = (tmp_path / "runs" / folder / "train.log").read_text()
        assert log.count("stages.s2a.lr=-2 must be positive") == 1, log
