"""A real PostgreSQL server on loopback in a temporary folder, for the tests that share studies through it.

The server binaries are found on PATH, else in the newest /usr/lib/postgresql/<version>/bin (Debian's
layout; `.ci/run` installs the `postgresql` package where they are missing). initdb refuses to run as root,
so as root (CI, these machines) the server runs as the unprivileged user `nobody` through `runuser`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SERVER_USER = "nobody"
SUPERUSER = "postgres"


def server_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl, or None."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    return versions[-1].parent if versions else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    folder: Path
    port: int
    bin_dir: Path

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname=postgres",
                             autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def _run(self, *command: str) -> subprocess.CompletedProcess:
        as_user = ["runuser", "-u", SERVER_USER, "--"] if os.geteuid() == 0 else []
        return subprocess.run([*as_user, *command], capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        data = self.folder / "data"
        for step in ([str(self.bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", SUPERUSER, "-E", "UTF8",
                      "--no-sync"],
                     [str(self.bin_dir / "pg_ctl"), "-D", str(data), "-l", str(self.folder / "server.log"), "-w",
                      "-o", f"-h 127.0.0.1 -p {self.port} -k {self.folder} -F", "start"]):
            done = self._run(*step)
            if done.returncode != 0:
                log = (self.folder / "server.log").read_text() if (self.folder / "server.log").is_file() else ""
                raise RuntimeError(f"{' '.join(step)} failed:\n{done.stdout}\n{done.stderr}\n{log}")

    def stop(self) -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")


@pytest.fixture(scope="session")
def postgres() -> PostgresServer:
    bin_dir = server_binaries()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have PostgreSQL's server binaries (.ci/run installs the postgresql package)")
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    # Not under pytest's tmp_path: that folder is root's alone, and the server runs as another user.
    folder = Path(tempfile.mkdtemp(prefix="facedyn-postgres-"))
    if os.geteuid() == 0:
        shutil.chown(folder, user=SERVER_USER)
    server = PostgresServer(folder, _free_port(), bin_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        time.sleep(0.2)
        shutil.rmtree(folder, ignore_errors=True)
