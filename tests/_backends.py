"""The storage backends the server tests run on: SQLite and PostgreSQL, one parametrized
fixture (a ``pytest_plugins`` plugin of ``tests/conftest.py``).

- ``postgres_cluster``: a private PostgreSQL cluster (``memlayer_integrations/server/postgres/cluster.py``) for the whole
  session, started at first use and stopped at the end, with a migrated template database,
  so each fresh database is a ``CREATE DATABASE ... TEMPLATE`` (milliseconds).
- ``backend_server``: the session's ``LocalMemLayerServer`` on each backend (ids
  ``sqlite`` and ``postgres``); ``tests/server`` and ``tests/reliability`` make it their
  ``local_server``, so every test of theirs that uses the session server runs on both.
- ``db_location``: a fresh database on each backend (a file path, or a PostgreSQL URL), for
  tests that start their own server.

PostgreSQL binaries that are missing fail these tests; nothing is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from memlayer_integrations.server import LocalMemLayerServer
from memlayer_integrations.server.postgres.cluster import PostgresCluster

BACKENDS = ["sqlite", "postgres"]
TEMPLATE = "memlayer_template"


class Databases:
    """Fresh databases in the session's cluster, copied from the migrated template."""

    def __init__(self, cluster: PostgresCluster) -> None:
        self.cluster = cluster

    def fresh(self) -> str:
        return self.cluster.create_database(template=TEMPLATE)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Databases]:
    from memlayer_integrations.server.postgres import PostgresDatabase

    cluster = PostgresCluster().start()
    try:
        template = cluster.create_database()
        database = PostgresDatabase(template)
        database.migrate()
        database.close()
        import psycopg

        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            name = template.rsplit("/", 1)[1]
            conn.execute(f"ALTER DATABASE {name} RENAME TO {TEMPLATE}")
        yield Databases(cluster)
    finally:
        cluster.stop()


@pytest.fixture(scope="session", params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="session")
def backend_server(
    request: pytest.FixtureRequest, backend_name: str
) -> Iterator[LocalMemLayerServer]:
    from .conftest import TEST_PLANS

    db = None
    if backend_name == "postgres":
        db = request.getfixturevalue("postgres_cluster").fresh()
    with LocalMemLayerServer(db, plans=TEST_PLANS) as server:
        yield server


@pytest.fixture(params=BACKENDS)
def db_location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | Path]:
    """A fresh, empty database: ``tmp_path / "memlayer.db"``, or a new PostgreSQL database
    (dropped after the test)."""
    if request.param == "postgres":
        databases = request.getfixturevalue("postgres_cluster")
        url: str = databases.fresh()
        yield url
        databases.cluster.drop_database(url)
    else:
        yield tmp_path / "memlayer.db"
