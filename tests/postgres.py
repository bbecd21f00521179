"""A throwaway PostgreSQL cluster for the tests: initdb + pg_ctl in a temporary directory.

Debian's `postgresql` package (installed by `.ci/run`) puts the server binaries in
/usr/lib/postgresql/<version>/bin; they may also be on PATH. initdb refuses to run as root, so
as root (CI) the cluster belongs to an unprivileged user (`postgres` when the package made
it, else `nobody`) and every server command runs through `runuser`. The server listens on a
free port on 127.0.0.1 and keeps its unix socket in the temporary directory; `trust`
authentication, since nothing but the tests can reach it; fsync off, since it is thrown away
(`durable=True` keeps PostgreSQL's defaults, for bench/ numbers).

No PostgreSQL: the tests that need it skip with a message, except under CI=true, where they
fail (`missing`)."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import psycopg

from tests import components

INSTALL = "install it with `apt-get install postgresql` (as .ci/run does)"
SUPERUSER = "oauthd"
_databases = count(1)


def server_binaries() -> Path | None:
    """The directory holding initdb and pg_ctl: PATH first, else Debian's newest version."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return versions[-1].parent if versions else None


def missing(reason: str) -> None:
    """No PostgreSQL: a skip on a developer's machine, a failure in CI."""
    components.missing("PostgreSQL", reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _owner() -> pwd.struct_passwd | None:
    """The unprivileged user that runs the server when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and no unprivileged user to run PostgreSQL as")


@dataclass
class Cluster:
    """A running throwaway cluster. `dsn(database)` names one of its databases."""

    bin: Path
    root: Path
    port: int
    owner: str | None
    durable: bool = False

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def run(self, program: str, *args: str) -> None:
        """Run one of the server's programs as the cluster's owner; its output on failure."""
        command = [str(self.bin / program), *args]
        if self.owner is not None:
            command = ["runuser", "-u", self.owner, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{program} failed: {done.stdout}{done.stderr}{log}")

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.root} -c max_connections=200"
        )
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def create_database(self) -> str:
        """A new empty database; its DSN."""
        name = f"test_{os.getpid()}_{next(_databases)}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)


@contextmanager
def throwaway_cluster(binaries: Path, *, durable: bool = False) -> Iterator[Cluster]:
    """initdb a cluster in a new temporary directory with the programs in `binaries`, start
    it, and on exit stop and delete it."""
    owner = _owner()
    root = Path(tempfile.mkdtemp(prefix="oauthd-pg-"))
    try:
        if owner is not None:
            os.chown(root, owner.pw_uid, owner.pw_gid)
        cluster = Cluster(binaries, root, free_port(), owner and owner.pw_name, durable)
        cluster.run(
            "initdb", "-D", str(cluster.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8"
        )
        cluster.start()
        try:
            yield cluster
        finally:
            if (cluster.data / "postmaster.pid").exists():  # a test may have left it stopped
                cluster.stop("immediate")
    finally:
        shutil.rmtree(root, ignore_errors=True)
