"""The PostgreSQL backend: a connection pool, transactions, migrations and the dialect.

Many server processes, on many machines, may share one database. What must stay exact
across them is made so by the database, never by a lock in one process:

- an account's requests run one at a time (:meth:`PostgresDatabase.lock_account`, a
  transaction-scoped advisory lock taken first in every request's write transaction), so
  its daily quota, memory cap and idempotency records are read and written as on SQLite,
  where one write lock serves the whole file;
- migrations run under an advisory lock too, so processes starting together migrate once.

The server's shared SQL uses ``?`` placeholders and reads rows by index and by column name
(SQLite's ``sqlite3.Row``); :class:`PgConnection` translates the one and builds the other.
Reads run in a ``REPEATABLE READ READ ONLY`` transaction (one snapshot, as SQLite's).
Transactions are pipelined: ``BEGIN``, and statements nobody reads the answer of (the
account lock, the statement timeout; :meth:`PgConnection.queue`), go with the next
statement's round trip, and ``COMMIT`` is acknowledged before the block returns, so a
request makes one round trip per statement whose answer the server reads.
The query budget is ``statement_timeout`` (``SET LOCAL``) plus the wall time of the
request's budgeted statements (:data:`WALL_TIME_FACTOR` seconds of it are one second of
budget); ``query_budget_steps`` counts SQLite's virtual-machine steps and has no meaning
here.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.adapt import Loader
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool

from ..backend import Backend, BackendUnavailableError, SchemaTooNewError, TextIndex
from ..budget import Budget
from ..errors import validation_error
from ..filters import Filter
from .filters import compile_filters
from .schema import MIGRATIONS, SCHEMA_VERSION
from .text import TsvectorIndex, document

__all__ = ["PgConnection", "PostgresDatabase"]

#: Advisory lock keys: one for migrations, and a range for accounts (key + account id).
_MIGRATION_LOCK = 0x6D6C_0000_0001
_ACCOUNT_LOCKS = 0x6D6C_0001_0000_0000
_POOL_SIZE = 16
_BEGIN_READ = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
_BEGIN_WRITE = "BEGIN READ WRITE"
#: How much wall time of statements counts as one second of the query budget. SQLite's
#: budget is the CPU time of the serving thread; here the database works in its own
#: processes, so what the server sees is wall time: the work, the round trips, and any wait
#: for a database busy with other clients. Counting a fifth of it keeps an ordinary recall
#: (a few ms of work, tens of ms on a loaded machine) well inside the budget while a query
#: that grows with what is stored still meets it.
WALL_TIME_FACTOR = 5.0


class _NumberLoader(Loader):
    """``numeric`` (what ``sum()`` of integers gives) as an int when whole, else a float,
    as SQLite returns them; never ``Decimal``."""

    def load(self, data: Any) -> Any:
        text = bytes(data).decode()
        try:
            return int(text)
        except ValueError:
            return float(text)


@lru_cache(maxsize=64)
def _row_class(names: tuple[str, ...]) -> type:
    index = {name: i for i, name in enumerate(names)}

    class Row(tuple):  # type: ignore[type-arg]
        """A row read by position or by column name, like ``sqlite3.Row``."""

        __slots__ = ()

        def __getitem__(self, key: Any) -> Any:
            if isinstance(key, str):
                return tuple.__getitem__(self, index[key])
            return tuple.__getitem__(self, key)

        def keys(self) -> list[str]:
            return list(names)

    return Row


def _row_factory(cursor: Any) -> Any:
    description = cursor.description
    if description is None:
        return tuple
    cls = _row_class(tuple(column.name for column in description))
    return cls


@lru_cache(maxsize=1024)
def _translate(sql: str) -> str:
    """The shared SQL's ``?`` placeholders as psycopg's ``%s`` (no ``?`` is ever quoted in it)."""
    return sql.replace("%", "%%").replace("?", "%s")


def _refuse_nul(params: Iterable[Any]) -> None:
    """PostgreSQL text cannot hold U+0000: a clear 422 instead of a failed statement."""
    for value in params:
        if isinstance(value, str) and "\x00" in value:
            raise validation_error(
                "text with the NUL character (U+0000) cannot be stored in PostgreSQL", None
            )


class PgConnection:
    """A psycopg connection running the server's shared SQL (see the module docstring)."""

    def __init__(
        self,
        raw: psycopg.Connection[Any],
        dialect: PostgresDatabase,
        pipeline: psycopg.Pipeline | None = None,
    ) -> None:
        self.raw = raw
        self.dialect = dialect
        #: Set by :meth:`PostgresDatabase.guard`: statements are timed against it.
        self.budget: Budget | None = None
        self._pipeline = pipeline

    def _run(self, sql: str, params: Sequence[Any]) -> Any:
        cursor = self.raw.execute(_translate(sql), params)
        if self._pipeline is not None:
            # The statement's answer, and those of the statements queued before it, now:
            # errors, rows and rowcount are the statement's own, as outside a pipeline.
            self._pipeline.sync()
        return cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        _refuse_nul(params)
        budget = self.budget
        if budget is None:
            return self._run(sql, params)
        started = time.perf_counter()
        try:
            return self._run(sql, params)
        finally:
            budget.spent_seconds += (time.perf_counter() - started) / WALL_TIME_FACTOR
            if budget.exhausted:
                raise budget.too_expensive()

    def queue(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run a statement whose answer nobody reads (a lock, a setting) with the next one:
        in a pipelined transaction it travels with the next statement's round trip (an
        error in it is raised there, or at the commit)."""
        self.raw.execute(_translate(sql), params)

    def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> Any:
        rows = [tuple(p) for p in params]
        for row in rows:
            _refuse_nul(row)
        cursor = self.raw.cursor()
        if rows:
            cursor.executemany(_translate(sql), rows)
            if self._pipeline is not None:
                self._pipeline.sync()
        return cursor


def _describe(url: str) -> str:
    """``user@host:port/dbname`` of a URL: never its password."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "the given PostgreSQL URL"
    user = f"{info['user']}@" if info.get("user") else ""
    port = f":{info['port']}" if info.get("port") else ""
    return f"{user}{info.get('host', 'localhost')}{port}/{info.get('dbname', '')}"


class PostgresDatabase(Backend):
    """The server on PostgreSQL. Opening is lazy; :meth:`close` closes the pool.

    Example:
        >>> db = PostgresDatabase("postgresql://memlayer@db.internal:5432/memlayer")
        >>> db.open()  # doctest: +SKIP
        >>> with db.read() as conn:  # doctest: +SKIP
        ...     conn.execute("SELECT count(*) FROM memories").fetchone()[0]
    """

    name = "postgres"
    text: TextIndex = TsvectorIndex()
    # The rowids come as one array parameter (one_of): PostgreSQL looks them up by key.
    by_rowid = "memories AS m"

    def __init__(self, url: str) -> None:
        self.url = url
        self.location = _describe(url)
        self._pool: ConnectionPool[Any] | None = None
        self._closed = False

    # -- connections -----------------------------------------------------------------

    def _configure(self, raw: psycopg.Connection[Any]) -> None:
        # Transactions are begun and ended by their own statements (see _transaction).
        raw.autocommit = True
        raw.adapters.register_loader("numeric", _NumberLoader)
        raw.row_factory = _row_factory

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            raw = psycopg.connect(self.url, connect_timeout=10)
        except psycopg.Error as exc:
            reason = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            raise BackendUnavailableError(
                f"cannot connect to PostgreSQL at {self.location}: {reason or type(exc).__name__} "
                "(check the URL in --db or $MEMLAYER_DB, and that the server is running)"
            ) from None
        self._configure(raw)
        return raw

    def open(self) -> None:
        if self._closed:
            raise RuntimeError("database is closed")
        if self._pool is not None:
            return
        self.migrate()
        pool: ConnectionPool[Any] = ConnectionPool(
            self.url,
            min_size=1,
            max_size=_POOL_SIZE,
            configure=self._configure,
            open=False,
            name="memlayer",
        )
        pool.open(wait=True, timeout=30)
        self._pool = pool

    def close(self) -> None:
        self._closed = True
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def migrate(self) -> tuple[int, int]:
        with self._connect() as raw, raw.transaction():
            conn = PgConnection(raw, self)
            conn.execute("SELECT pg_advisory_xact_lock(?::bigint)", (_MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS memlayer_schema (version INTEGER NOT NULL)")
            row = conn.execute("SELECT max(version) FROM memlayer_schema").fetchone()
            found = int(row[0] or 0)
            if found > SCHEMA_VERSION:
                raise SchemaTooNewError(
                    f"database schema version {found} is newer than this server's "
                    f"{SCHEMA_VERSION}; upgrade memlayer-integrations"
                )
            for version in range(found + 1, SCHEMA_VERSION + 1):
                raw.execute(MIGRATIONS[version - 1])
                conn.execute("DELETE FROM memlayer_schema")
                conn.execute("INSERT INTO memlayer_schema (version) VALUES (?)", (version,))
            conn.execute(
                "INSERT INTO server_secrets (name, value) VALUES ('cursor', ?)"
                " ON CONFLICT (name) DO NOTHING",
                (secrets.token_bytes(32),),
            )
        return found, SCHEMA_VERSION

    @contextmanager
    def _transaction(self, read_only: bool) -> Iterator[PgConnection]:
        if self._pool is None:
            self.open()
        assert self._pool is not None
        with self._pool.connection() as raw, raw.pipeline() as pipeline:
            # Pipelined, with BEGIN and COMMIT sent as statements (psycopg's own
            # transaction() waits for its BEGIN): BEGIN and what PgConnection.queue queued
            # travel with the first statement, COMMIT with the last queued ones. A read is
            # one snapshot.
            raw.execute(_BEGIN_READ if read_only else _BEGIN_WRITE)
            try:
                yield PgConnection(raw, self, pipeline)
            except BaseException:
                with suppress(psycopg.Error):
                    # Answers of queued statements first: an error among them would make
                    # PostgreSQL skip the ROLLBACK.
                    pipeline.sync()
                with suppress(psycopg.Error):
                    raw.execute("ROLLBACK")
                    pipeline.sync()
                raise
            # Its answer comes with the pipeline's last sync: a failed COMMIT raises there.
            raw.execute("COMMIT")

    def write(self) -> Any:
        return self._transaction(read_only=False)

    def read(self) -> Any:
        return self._transaction(read_only=True)

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
        """See :meth:`.backend.Backend.keep_answer`: links by memory id (``schema.py``)."""
        kept = body is not None
        if kept and memory_ids:
            marks = ",".join("?" * len(memory_ids))
            present = conn.execute(
                f"SELECT count(*) FROM memories WHERE account_id = ? AND id IN ({marks})",
                (account_id, *memory_ids),
            ).fetchone()[0]
            kept = present == len(memory_ids)
        inserted = conn.execute(
            "INSERT INTO idempotency (account_id, key, fingerprint, status, body, created_at, kept)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (account_id, key, fingerprint, status, body if kept else b"", created_at, int(kept)),
        ).rowcount
        if inserted and kept and memory_ids:
            conn.executemany(
                "INSERT INTO idempotency_memories (account_id, key, memory_id) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                [(account_id, key, memory_id) for memory_id in memory_ids],
            )

    # -- the dialect -----------------------------------------------------------------

    def lock_account(self, conn: Any, account_id: int) -> None:
        # Queued: the lock is taken before the next statement runs, in its round trip.
        conn.queue("SELECT pg_advisory_xact_lock(?::bigint)", (_ACCOUNT_LOCKS + account_id,))

    def compile_filters(
        self, filters: dict[str, Any] | None, prefix: str = "filters"
    ) -> Filter | None:
        return compile_filters(filters, prefix)

    def ids_taken(self, conn: Any) -> None:
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('accounts', 'id'),"
            " (SELECT coalesce(max(id), 0) + 1 FROM accounts), false)"
        )

    def one_of(self, column: str, ids: Sequence[int]) -> Filter:
        # One array parameter: the statement's text stays the same whatever the count, so
        # it is planned once (a list of 200 parameters took longer to plan than to run).
        return Filter(f"{column} = ANY(?::bigint[])", [list(ids)])

    def text_column(self, content: str, scope: tuple[int, str, str]) -> tuple[str, str, Any] | None:
        return "tsv", "?::tsvector", document(content, scope)

    @contextmanager
    def guard(self, budget: Budget, conn: Any) -> Iterator[None]:
        if budget.exhausted:
            raise budget.too_expensive()
        left = (budget.seconds - budget.spent_seconds) * WALL_TIME_FACTOR
        remaining = max(1, math.ceil(left * 1000))
        conn.queue("SELECT set_config('statement_timeout', ?, true)", (f"{remaining}ms",))
        conn.budget = budget
        try:
            yield
        except pg_errors.QueryCanceled:
            budget.spent_seconds = max(budget.spent_seconds, budget.seconds) + 1e-9
            raise budget.too_expensive() from None
        finally:
            conn.budget = None
            if conn.raw.info.transaction_status == TransactionStatus.INTRANS:
                conn.queue("SET LOCAL statement_timeout TO DEFAULT")
