"""The SQLite database: connections, transactions and versioned migrations.

One file in WAL mode. Writes go through a single connection behind a lock (SQLite allows
one writer at a time anyway, and the lock turns contention into a queue instead of
``database is locked`` errors); reads use a pool of connections and run concurrently with
writes. Every write transaction is committed before the response is sent, so a write that
was acknowledged is on disk.

The schema version is SQLite's ``PRAGMA user_version``: migration *n* (1-based) brings the
file from version *n-1* to *n*, in one transaction with the version bump. The migrations
themselves are in ``sqlite_schema.py``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .backend import Backend, SchemaTooNewError
from .sqlite_schema import MEMORY_COLUMNS, MIGRATIONS, SCHEMA_VERSION
from .sqlite_text import SQLiteDialect

__all__ = ["MEMORY_COLUMNS", "MIGRATIONS", "SCHEMA_VERSION", "Database", "SchemaTooNewError"]


def _connect(path: str, synchronous: str) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; every transaction here is explicit.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    # Recall reads postings and rows all over the file: a page cache of 32 MiB per
    # connection and memory-mapped reads (pages shared with the OS cache, no copy) cut its
    # median time at 100k memories by about 40 %. Both only grow as pages are touched.
    conn.execute("PRAGMA cache_size=-32768")
    conn.execute("PRAGMA mmap_size=268435456")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Bring ``conn``'s database to :data:`SCHEMA_VERSION`; return the version found."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if found > SCHEMA_VERSION:
            raise SchemaTooNewError(
                f"database schema version {found} is newer than this server's {SCHEMA_VERSION}; "
                "upgrade memlayer-integrations"
            )
        for version in range(found + 1, SCHEMA_VERSION + 1):
            for statement in _statements(MIGRATIONS[version - 1]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={version}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return found


def _statements(script: str) -> Iterator[str]:
    """Split a migration into statements (``executescript`` would commit on its own)."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer.strip()
            buffer = ""
    if buffer.strip():
        raise ValueError(f"incomplete SQL statement in migration: {buffer[:60]!r}")


def _private_file(path: Path) -> None:
    """Create ``path`` (and missing directories) readable by its owner only.

    Memories are personal data: directories created here are 0700 and the database 0600.
    SQLite gives the ``-wal`` and ``-shm`` files the database file's mode. A database
    file found with wider permissions, and its ``-wal``/``-shm``, are narrowed to 0600.
    """
    missing = []
    parent = path.parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)  # mkdir's mode is narrowed by the umask, never widened
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists() and file.stat().st_mode & 0o077:
            os.chmod(file, 0o600)


@contextmanager
def _snapshot(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A read transaction on ``conn``."""
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


class Database(SQLiteDialect, Backend):
    """Connections to one SQLite file: the default :class:`~.backend.Backend`. Opening is
    lazy; :meth:`close` closes them all.

    Example:
        >>> db = Database("memlayer.db")
        >>> with db.write() as conn:
        ...     conn.execute("UPDATE accounts SET suspended = 1 WHERE id = ?", (1,))
        >>> with db.read() as conn:
        ...     conn.execute("SELECT count(*) FROM memories").fetchone()[0]
    """

    name = "sqlite"

    def __init__(self, path: str | Path, synchronous: str = "NORMAL") -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self._synchronous = synchronous.upper()
        self._write_lock = threading.Lock()
        self._pool_lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        self._idle: list[sqlite3.Connection] = []
        self._all: list[sqlite3.Connection] = []
        self._closed = False

    def open(self) -> None:
        """Create the file if needed and run pending migrations (idempotent)."""
        with self._write_lock:
            self._open_writer()

    def _open_writer(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError("database is closed")
        if self._writer is None:
            _private_file(self.path)
            conn = _connect(str(self.path), self._synchronous)
            try:
                migrate(conn)
            except BaseException:
                conn.close()
                raise
            self._writer = conn
            with self._pool_lock:
                self._all.append(conn)
        return self._writer

    def migrate(self) -> tuple[int, int]:
        """Open the file (migrating it) and say from which version: ``(found, now)``."""
        with self._write_lock:
            if self._writer is not None:
                return SCHEMA_VERSION, SCHEMA_VERSION
            _private_file(self.path)
            conn = _connect(str(self.path), self._synchronous)
            try:
                found = migrate(conn)
            finally:
                conn.close()
        return found, SCHEMA_VERSION

    def keep_answer(
        self,
        conn: Any,
        account_id: int,
        key: str,
        fingerprint: str,
        status: int,
        body: bytes | None,
        created_at: float,
        memory_ids: Sequence[str],
    ) -> None:
        """See :meth:`.backend.Backend.keep_answer`: links by rowid (migration 7).

        The links are inserted straight from the memories found, and their count tells
        whether every memory is still there: one statement instead of a count and an insert.
        """
        found = conn.execute(
            "INSERT INTO idempotency (account_id, key, fingerprint, status, body, created_at, kept)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
            (account_id, key, fingerprint, status, body or b"", created_at, int(body is not None)),
        ).fetchone()
        if found is None or body is None or not memory_ids:
            return
        answer = found[0]
        # "+account_id": found by the id index; left to itself, the planner walks every
        # memory of the account by an account index (milliseconds per batch of puts).
        linked = conn.execute(
            "INSERT INTO idempotency_links (memory_rowid, answer)"
            " SELECT rowid, ? FROM memories WHERE +account_id = ?"
            f" AND id IN ({','.join('?' * len(memory_ids))})",
            (answer, account_id, *memory_ids),
        ).rowcount
        if linked != len(memory_ids):  # a memory it shows is gone (remembered and forgotten)
            conn.execute("DELETE FROM idempotency_links WHERE answer = ?", (answer,))
            conn.execute("UPDATE idempotency SET kept = 0, body = x'' WHERE id = ?", (answer,))

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``), rolled back on error."""
        with self._write_lock:
            conn = self._open_writer()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction on a pooled connection: one consistent snapshot.

        Never on the writer's connection: a read there would hold the write lock for as
        long as it runs, and every other account's writes would wait for it. (The
        writer's page cache survives its own writes, where a pooled reader's is dropped
        after every write by another connection, but a recall's speed is not worth making
        writers queue behind it.)
        """
        if self._writer is None:
            self.open()
        with self._pool_lock:
            if self._closed:
                raise RuntimeError("database is closed")
            idle = self._idle.pop() if self._idle else None
        if idle is None:
            conn = _connect(str(self.path), self._synchronous)
            with self._pool_lock:
                self._all.append(conn)
        else:
            conn = idle
        try:
            with _snapshot(conn):
                yield conn
        finally:
            with self._pool_lock:
                self._idle.append(conn)

    def close(self) -> None:
        """Close every connection; the database cannot be used afterwards."""
        with self._write_lock, self._pool_lock:
            self._closed = True
            for conn in self._all:
                conn.close()
            self._all.clear()
            self._idle.clear()
            self._writer = None
