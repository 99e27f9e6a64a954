"""The storage backends the load benchmarks run on: SQLite, and PostgreSQL when there is one.

``scale``, ``concurrency`` and ``workers`` start their own server processes; each runs once
per backend of the run and reports the backends side by side. A SQLite server gets a
temporary file (``None`` here: the server makes one). A PostgreSQL server gets a fresh,
empty database (so no run sees another's rows), dropped when the run ends:

- on the server of ``--postgres-url`` / ``$MEMLAYER_BENCH_POSTGRES_URL`` (its role must be
  allowed to ``CREATE DATABASE``; the URL's own database is only used to create the others),
- else in a private throwaway cluster started for the run, with the code the test suite
  uses (``memlayer_integrations.server.postgres.cluster``; needs PostgreSQL's binaries).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

POSTGRES_URL_ENV = "MEMLAYER_BENCH_POSTGRES_URL"


@dataclass
class Backends:
    """The backends of a run, and fresh databases on them.

    ``create`` makes a new PostgreSQL database and returns its URL; ``drop`` removes one.
    """

    names: tuple[str, ...] = ("sqlite",)
    create: Callable[[], str] | None = None
    drop: Callable[[str], None] | None = None
    _made: list[str] = field(default_factory=list, repr=False)
    _stop: Callable[[], None] | None = field(default=None, repr=False)

    def fresh(self, name: str) -> str | None:
        """A database for a new server on backend ``name`` (``None``: a temporary file)."""
        if name == "sqlite":
            return None
        if self.create is None:
            raise RuntimeError("no PostgreSQL for this run")
        url = self.create()
        self._made.append(url)
        return url

    def close(self) -> None:
        """Drop the databases made for the run (and stop its private cluster)."""
        try:
            while self._made and self.drop is not None:
                self.drop(self._made.pop())
        finally:
            if self._stop is not None:
                self._stop()
                self._stop = None


def on_server(url: str, names: tuple[str, ...] = ("sqlite", "postgres")) -> Backends:
    """Fresh databases on the PostgreSQL server of ``url`` (created through its database)."""
    import psycopg

    base = url.rsplit("/", 1)[0]

    def create() -> str:
        name = "memlayer_bench_" + uuid.uuid4().hex[:10]
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"{base}/{name}"

    def drop(made: str) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {made.rsplit('/', 1)[1]} WITH (FORCE)")

    return Backends(names, create, drop)


def private_cluster(names: tuple[str, ...] = ("sqlite", "postgres")) -> Backends:
    """A throwaway cluster for the run, started when the first database is asked for (a run
    of benchmarks that need none starts nothing) and stopped by :meth:`Backends.close`."""
    from memlayer_integrations.server.postgres.cluster import PostgresCluster

    started: list[PostgresCluster] = []

    def cluster() -> PostgresCluster:
        if not started:
            started.append(PostgresCluster().start())
        return started[0]

    def stop() -> None:
        while started:
            started.pop().stop()

    backends = Backends(
        names, lambda: cluster().create_database(), lambda url: cluster().drop_database(url)
    )
    backends._stop = stop
    return backends


def postgres_available() -> bool:
    """Whether this machine can start a private cluster (PostgreSQL's binaries, psycopg)."""
    try:
        from memlayer_integrations.server.postgres.cluster import bindir

        bindir()
    except (ImportError, RuntimeError):
        return False
    return True


def for_run(choice: str, url: str | None) -> Backends:
    """The backends of ``--backend CHOICE`` (``sqlite``, ``postgres`` or ``both``; ``auto``
    is both when a PostgreSQL is at hand, else SQLite alone)."""
    if choice == "auto":
        choice = "both" if url or postgres_available() else "sqlite"
    if choice == "sqlite":
        return Backends()
    names = ("postgres",) if choice == "postgres" else ("sqlite", "postgres")
    return on_server(url, names) if url else private_cluster(names)


def database_bytes(db: str) -> int:
    """The size of a server's database: the SQLite file with its WAL, or PostgreSQL's."""
    from pathlib import Path

    if db.startswith(("postgresql://", "postgres://")):
        import psycopg

        with psycopg.connect(db) as conn:
            row: Any = conn.execute("SELECT pg_database_size(current_database())").fetchone()
            return int(row[0])
    return sum(p.stat().st_size for p in (Path(db + s) for s in ("", "-wal", "-shm")) if p.exists())
