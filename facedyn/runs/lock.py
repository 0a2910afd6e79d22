"""Who writes a run folder: one live process at a time, through a lock file in it.

A run that is still "running" in run_status.json but whose process is gone was interrupted. A second
process refuses a folder whose lock is held; the kernel drops the lock of a process that dies, so a dead
writer's folder can be taken over (by `resume=`). The lock is a POSIX record lock (lockf), not flock: a
flock belongs to the open file, which forked DataLoader workers share, so a SIGKILLed run's workers kept
its folder locked until they noticed; a record lock belongs to the process alone and dies with it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from facedyn.runs.folder import now_iso

LOCK_FILE = ".lock"


class RunFolderInUse(RuntimeError):
    """Another live process writes this run folder; the message names it."""


@contextmanager
def owned(run_dir: Path, what: str = "run folder",
          advice: str = "wait for it to end, or give this run another folder (hydra.run.dir=… or name=…)",
          ) -> Iterator[None]:
    """Hold run_dir for this process while the block runs; RunFolderInUse when a live process holds it,
    this one included. `what` and `advice` word the refusal for the folder's kind."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    key = run_dir.resolve()
    # Record locks do not conflict within one process, and closing any descriptor of the file drops them:
    # this process's own holds are refused from `_held`, before the file is opened again.
    if key in _held:
        raise _in_use(run_dir, f"process {os.getpid()} on {socket.gethostname()} (this one)", what, advice)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            raise _in_use(run_dir, _lock_owner(fd), what, advice) from None
        _held.add(key)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                      "since": now_iso()}).encode(), 0)
            yield
        finally:
            _held.discard(key)
    finally:
        os.close(fd)  # releases the lock


def _in_use(run_dir: Path, owner: str, what: str, advice: str) -> RunFolderInUse:
    return RunFolderInUse(f"{what} {run_dir} is in use by {owner}; {advice}")


_held: set[Path] = set()


def _lock_owner(fd: int) -> str:
    try:
        owner = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"process {owner['pid']} on {owner['host']} (since {owner['since']})"
    except (ValueError, KeyError, TypeError):
        return "another process"


def claim_new_folder(path: str) -> str:
    """An automatic run-folder name made unique: `path` itself when it does not exist yet, else path_2, path_3...

    The folder is created here (mkdir fails for all but one of two processes starting in the same second),
    and the answer is remembered, so resolving the name again in this process gives the same folder.
    """
    if path not in _claimed:
        candidate, n = Path(path), 1
        while True:
            try:
                candidate.mkdir(parents=True)
                break
            except FileExistsError:
                n += 1
                candidate = Path(f"{path}_{n}")
        _claimed[path] = str(candidate)
    return _claimed[path]


_claimed: dict[str, str] = {}


def owner_alive(pid: Any, host: Any) -> bool:
    """Whether the process a run folder names may still run: True when it is on another host or unknown."""
    if (host and host != socket.gethostname()) or not isinstance(pid, int):
        return True  # another machine's run, or no pid: cannot tell
    return process_alive(pid)


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (signal 0 probes without touching it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True

