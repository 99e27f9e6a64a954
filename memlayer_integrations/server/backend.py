"""The storage seam: what the server needs from a database, with two implementations.

The server's logic (``store.py``, ``search.py``, ``hybrid.py``, ``explain.py``, ``keys.py``
and the quota and idempotency steps of ``service.py``) is written once, in the SQL both
databases speak (``?`` placeholders; the PostgreSQL connection translates them), against a
connection that knows its :class:`Dialect` (``conn.dialect``). What the two databases do
differently lives behind the backend, and nowhere else:

- connections, transactions and versioned migrations (:meth:`Backend.open`,
  :meth:`~Backend.read`, :meth:`~Backend.write`, :meth:`~Backend.migrate`);
- :meth:`~Backend.lock_account`: how an account's requests are made one at a time, so its
  daily quota, memory cap and idempotency keys are exact however many server processes
  share the database;
- how a kept answer is linked to the memories it shows (:meth:`~Backend.keep_answer`);
- metadata filters (:meth:`~Backend.compile_filters`: JSON is not queried the same way);
- the full-text index behind recall (:class:`TextIndex`, :meth:`Dialect.text_column`) and
  how a statement names many rowids at once (:meth:`Dialect.one_of`);
- the query budget (:meth:`~Backend.guard`: SQLite's progress handler, PostgreSQL's
  ``statement_timeout``).

:func:`open_backend` picks the implementation from the ``--db`` value: a
``postgresql://`` URL is PostgreSQL (:mod:`.postgres`, needs the ``postgres`` extra),
anything else a SQLite file (:class:`.db.Database`, the zero-dependency default).
Vectors are float32 bytes in a table on both (``vectors.TableVectors``, the same SQL).
"""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .budget import Budget
    from .filters import Filter
    from .scoring import Scorer

__all__ = [
    "POSTGRES_SCHEMES",
    "Backend",
    "BackendUnavailableError",
    "Dialect",
    "SchemaTooNewError",
    "TextIndex",
    "TextQuery",
    "dialect_of",
    "is_postgres_url",
    "open_backend",
]

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class SchemaTooNewError(RuntimeError):
    """The database was written by a newer version of this package."""


class BackendUnavailableError(RuntimeError):
    """The database cannot be reached (or refuses the connection). A missing driver is an
    ``ImportError`` naming the extra to install.

    The message is one line that names the fix.
    """


@dataclass(frozen=True)
class TextQuery:
    """A full-text question confined to one scope.

    Args:
        account_id, user_id, agent_id: the scope (``agent_id=None``: all the user's agents).
        terms: the words (``search.query_terms``); a memory matches if it holds any.
        choose: if given, a memory must also hold one of these (the rare words that choose
            the candidates, see ``search.py``).
    """

    account_id: int
    user_id: str
    agent_id: str | None
    terms: Sequence[str]
    choose: Sequence[str] | None = None


class TextIndex(ABC):
    """The full-text index recall reads. Words are matched as the index's tokenizer sees
    them (SQLite FTS5's ``porter unicode61 remove_diacritics 2``, on both backends), so
    a word matches the same memories, and scores the same, whichever database holds them.
    """

    #: A scope of at most this many memories is recalled by reading its rows instead of
    #: through the index (``scan.py``: the same answers); 0, never.
    scans_up_to: int = 0
    #: A larger scope of at most this many memories is recalled from :meth:`every_match`,
    #: one statement, instead of counting each word and then reading the matches; 0, never.
    reads_matches_up_to: int = 0

    @abstractmethod
    def count(self, conn: Any, query: TextQuery, cap: int) -> int:
        """How many memories of the scope match ``query`` (expired ones too), up to ``cap``."""

    def counts(self, conn: Any, queries: Sequence[TextQuery], cap: int) -> list[int]:
        """:meth:`count` of each of ``queries`` (a database may answer them in one statement)."""
        return [self.count(conn, query, cap) for query in queries]

    @abstractmethod
    def matches(
        self, conn: Any, query: TextQuery, where: Filter, since: int, limit: int
    ) -> list[Any]:
        """``(rowid, content, length, in a session)`` of the newest ``limit`` matches that
        meet ``where`` (a condition on ``memories AS m``) from rowid ``since`` on, in any
        order."""

    def scored(
        self, conn: Any, query: TextQuery, where: Filter, since: int, limit: int, scorer: Scorer
    ) -> list[tuple[int, float, bool]]:
        """``(rowid, raw BM25 score, in a session)`` of the rows :meth:`matches` finds.

        Here each match's content is read and scored (``Scorer.raw_all``). An index that
        stores each memory's tokens may instead count the query's tokens where they are
        (``Scorer.counted``) and score the counts (``Scorer.raw_counts``, the same scores):
        no content travels, nothing is tokenized again.
        """
        rows = self.matches(conn, query, where, since, limit)
        raw = scorer.raw_all(list(map(itemgetter(1, 2), rows)))
        return list(
            zip(map(itemgetter(0), rows), raw, map(bool, map(itemgetter(3), rows)), strict=True)
        )

    def every_match(self, conn: Any, query: TextQuery, where: Filter) -> list[Any]:
        """``(rowid, content, length, agent_id, session_id, meets where)`` of every memory
        of the scope that matches ``query``, whatever ``where`` says (``scan.py``): only
        for an index with ``reads_matches_up_to``."""
        raise NotImplementedError

    @abstractmethod
    def window_start(self, conn: Any, query: TextQuery, size: int) -> int:
        """The rowid from which on the newest ``size`` matches lie (0: fewer match)."""

    @abstractmethod
    def holding(self, conn: Any, query: TextQuery) -> list[int]:
        """Rowids of every match (for words known to be rare)."""

    @abstractmethod
    def matching(self, conn: Any, terms: Sequence[str], rowids: Sequence[int]) -> set[int]:
        """Which of ``rowids`` hold any of ``terms``."""


class Dialect(ABC):
    """What differs between the databases in running a request, on a connection of it."""

    text: TextIndex
    #: The table to read a few memories by rowid from, with the request's conditions too
    #: (``memories AS m`` and whatever makes the database look them up by rowid).
    by_rowid: str

    @abstractmethod
    def lock_account(self, conn: Any, account_id: int) -> None:
        """Hold ``account_id``'s requests one at a time until ``conn``'s transaction ends."""

    @abstractmethod
    def compile_filters(
        self, filters: dict[str, Any] | None, prefix: str = "filters"
    ) -> Filter | None:
        """Metadata filters as a condition on ``memories AS m`` (``None``: no filter), or a 422."""

    @abstractmethod
    def guard(self, budget: Budget, conn: Any) -> AbstractContextManager[None]:
        """Run the block's statements on ``conn`` within ``budget`` (422 past it)."""

    @abstractmethod
    def one_of(self, column: str, ids: Sequence[int]) -> Filter:
        """``column`` is one of ``ids`` (rowids): however the database plans that best."""

    @abstractmethod
    def text_column(self, content: str, scope: tuple[int, str, str]) -> tuple[str, str, Any] | None:
        """What a memory's row holds for the full-text index, written with its content:
        ``(column, placeholder, value)``, or ``None`` when the database indexes it itself."""

    @abstractmethod
    def ids_taken(self, conn: Any) -> None:
        """Rows were inserted with their ids given (an import): make the ids the database
        hands out next follow them."""


class Backend(Dialect):
    """One database the server runs on. Opening is lazy; :meth:`close` closes it for good.

    Connections handed out by :meth:`read` and :meth:`write` run the shared SQL (``?``
    placeholders, rows readable by index and by column name) and carry ``dialect``.
    """

    #: ``"sqlite"`` or ``"postgres"``.
    name: str
    #: Where the data is, for messages (a path, or a URL without its password).
    location: str

    @abstractmethod
    def open(self) -> None:
        """Connect and apply pending migrations (idempotent)."""

    @abstractmethod
    def close(self) -> None:
        """Close every connection; the backend cannot be used afterwards."""

    @abstractmethod
    def write(self) -> AbstractContextManager[Any]:
        """One write transaction, committed at the end of the block, rolled back on error."""

    @abstractmethod
    def read(self) -> AbstractContextManager[Any]:
        """One read-only snapshot, concurrent with writes."""

    @abstractmethod
    def migrate(self) -> tuple[int, int]:
        """Apply pending migrations: ``(version found, version now)``."""

    @abstractmethod
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
        """Record that the request of Idempotency-Key ``key`` was answered (nothing if the
        key already has a record). With ``body`` the answer is kept for replays, linked to
        ``memory_ids`` (the distinct ids of the memories it shows) so that forgetting any of
        them drops it; an answer showing a memory that is already gone is recorded as not
        kept (``kept = 0``, no body), like one given ``body=None``."""


def dialect_of(conn: Any) -> Dialect:
    """The dialect of a connection: its own, or SQLite's for a plain ``sqlite3`` connection."""
    # A sqlite3 connection is answered without asking it for an attribute it does not have
    # (the AttributeError behind getattr's default costs more than the rest: a batch of
    # puts asks once per item).
    if not isinstance(conn, sqlite3.Connection):
        found = getattr(conn, "dialect", None)
        if found is not None:
            return found  # type: ignore[no-any-return]
    if not _SQLITE:
        # Imported on first use (sqlite_text imports this module), then kept: an import
        # statement run again still costs a lookup through the import machinery.
        from .sqlite_text import SQLITE

        _SQLITE.append(SQLITE)
    return _SQLITE[0]


_SQLITE: list[Dialect] = []


def is_postgres_url(value: str | Path) -> bool:
    return isinstance(value, str) and value.startswith(POSTGRES_SCHEMES)


def open_backend(db: str | Path, synchronous: str = "NORMAL") -> Backend:
    """The backend for a ``--db`` value (nothing is opened yet).

    Example:
        >>> open_backend("memlayer.db").name
        'sqlite'
    """
    if is_postgres_url(db):
        from .postgres import PostgresDatabase  # psycopg is imported only here

        return PostgresDatabase(str(db))
    from .db import Database

    return Database(db, synchronous)
