"""The server on PostgreSQL (``--db postgresql://USER@HOST:PORT/DB``).

Needs the ``postgres`` extra (psycopg 3 and its pool). Imported only for a
``postgresql://`` URL (``backend.open_backend``), so a SQLite server never imports psycopg.
"""

from __future__ import annotations

try:
    import psycopg  # noqa: F401
    import psycopg_pool  # noqa: F401
except ImportError:
    raise ImportError(
        "a postgresql:// database needs the postgres extra: "
        'pip install "memlayer-integrations[postgres]"'
    ) from None

from .database import PgConnection, PostgresDatabase

__all__ = ["PgConnection", "PostgresDatabase"]
