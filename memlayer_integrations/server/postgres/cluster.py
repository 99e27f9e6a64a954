"""A private, throwaway PostgreSQL cluster: what the tests and the benchmarks run on.

The test suite (``tests/_backends.py``) and ``python -m benchmarks --backend postgres``
(when no ``--postgres-url`` is given) both start one here, so neither needs a PostgreSQL
server set up beforehand, and the code that starts it exists once.

``initdb`` + ``pg_ctl`` in a temporary directory: trust authentication, 127.0.0.1 on a free
port, the unix socket inside the directory, nothing shared with a system cluster. PostgreSQL
refuses to run as root (CI runs as root), so as root the binaries run as the ``postgres``
system user (``runuser``) and the directory is handed to it.

Missing binaries are an error, never a skip: a suite that quietly stopped testing
PostgreSQL would look green. ``.ci/run`` installs them (Debian's ``postgresql``). Not for
production: trust authentication, ``fsync=off``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

# Bound here, once: a test may hide psycopg from imports (the missing-extra test) while its
# database is still to be dropped.
import psycopg

__all__ = ["PostgresCluster", "bindir"]


def bindir() -> Path:
    """Where ``initdb`` and ``pg_ctl`` are (``pg_config --bindir``, else ``$PATH``)."""
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True)
        found = Path(out.stdout.strip())
        if (found / "initdb").exists():
            return found
    initdb = shutil.which("initdb")
    if initdb is not None:
        return Path(initdb).parent
    raise RuntimeError(
        "PostgreSQL binaries not found (no pg_config, no initdb on PATH); the PostgreSQL "
        "tests need them: apt-get install -y postgresql"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresCluster:
    """A cluster in a temporary directory, started by :meth:`start`, removed by :meth:`stop`.

    Example:
        >>> cluster = PostgresCluster().start()  # doctest: +SKIP
        >>> url = cluster.create_database()  # doctest: +SKIP
        >>> cluster.stop()  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self.bin = bindir()
        self.root = Path(tempfile.mkdtemp(prefix="memlayer-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.user = "postgres"
        self._as_root = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(
                f"{args[0]} failed ({done.returncode}): {done.stderr.strip()[-2000:]}"
            )

    def start(self) -> PostgresCluster:
        if self._as_root:
            self.root.chmod(0o755)
            shutil.chown(self.root, "postgres", "postgres")
        else:
            self.user = os.environ.get("USER") or "postgres"
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            self.user,
            "-E",
            "UTF8",
            "--no-sync",
            "--locale=C.UTF-8",
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-w",
            "-l",
            str(self.root / "log"),
            "start",
        )
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, template: str | None = None) -> str:
        """A new empty database (a copy of ``template`` if given); its URL."""
        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            clause = f" TEMPLATE {template}" if template else ""
            conn.execute(f"CREATE DATABASE {name}{clause}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop the database of ``url`` (connections still open to it are ended)."""
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
