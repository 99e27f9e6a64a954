"""SQLite's side of the seam (``backend.Dialect``): FTS5 recall, ``json_each`` filters, the
progress-handler budget, and no account lock (one write lock serves the whole file).

The full-text index is ``memories_fts`` (``sqlite_schema.py``, migration 2): FTS5 with the Porter
tokenizer over ``content``, and ``scope_terms``, two words naming each memory's scope. A
:class:`~.backend.TextQuery` becomes a ``MATCH`` of the scope's word AND the question's
words, so FTS5 walks only that scope's postings (``search.py`` says why).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from .backend import Dialect, TextIndex, TextQuery
from .budget import Budget
from .filters import Filter, compile_filters
from .scan import MATCHES_LIMIT, SCAN_LIMIT, plain_rows

__all__ = [
    "FEW_MATCHES",
    "SQLITE",
    "FtsIndex",
    "SQLiteDialect",
    "match_expression",
    "quote",
    "scope_word",
]

#: Recall's candidates are at most ``search.POSTINGS_BUDGET`` (1,000) matches: up to this
#: many, :meth:`FtsIndex.matches` reads them in one statement, oldest first.
FEW_MATCHES = 1000


def quote(term: str) -> str:
    """A word as an FTS5 string. Words hold no '"' (letters and digits), but doubling keeps
    quoting correct should the word pattern ever change."""
    return '"' + term.replace('"', '""') + '"'


def scope_word(account_id: int, user_id: str, agent_id: str | None = None) -> str:
    """The word ``scope_terms`` holds for this scope (``sqlite_schema.py`` computes the same
    in SQL).

    ``'u' <account> 'x' <hex of user_id>``, and with an agent ``'a' ... 'y' <hex of agent_id>``:
    hex digits and the letters between them make any id one plain word for the tokenizer.

    Example:
        >>> scope_word(1, "bob", "x")
        'a1x626F62y78'
    """
    user = user_id.encode("utf-8").hex().upper()
    if agent_id is None:
        return f"u{account_id}x{user}"
    return f"a{account_id}x{user}y{agent_id.encode('utf-8').hex().upper()}"


def match_expression(terms: Sequence[str], choose: Sequence[str] | None = None) -> str:
    """The FTS5 expression for "any of ``terms``" (and, with ``choose``, one of those too).

    When every word of ``choose`` is one of ``terms`` (``search.choose_terms``'s rare words
    always are), a memory holding one of ``choose`` holds one of ``terms``: the expression
    is then "any of ``choose``" alone, the same memories, and FTS5 does not walk the
    postings of the common words at all (at 100k memories in one scope: 0.9 ms against
    1.7 ms for the ~660 candidates of a recall).

    Example:
        >>> match_expression(["likes", "tea"], ["tea"])
        '"tea"'
        >>> match_expression(["likes", "tea"], ["cake"])
        '("cake") AND ("likes" OR "tea")'
    """
    if choose is not None and set(choose) <= set(terms):
        terms, choose = choose, None
    everything = " OR ".join(quote(t) for t in terms)
    if choose is None:
        return everything
    return f"({' OR '.join(quote(t) for t in choose)}) AND ({everything})"


def _scoped(query: TextQuery) -> str:
    expression = match_expression(query.terms, query.choose)
    scope = quote(scope_word(query.account_id, query.user_id, query.agent_id))
    return f"scope_terms : {scope} AND content : ({expression})"


class FtsIndex(TextIndex):
    """:class:`~.backend.TextIndex` on ``memories_fts``."""

    # Measured: below it, one read of the scope's rows costs less than FTS5 intersecting
    # the scope word's postings with each word's (``scan.py``).
    scans_up_to = SCAN_LIMIT
    # Every match of a scope this size is a few hundred rows: read them once and count the
    # words in them, instead of one FTS5 count per word first.
    reads_matches_up_to = MATCHES_LIMIT

    def count(self, conn: Any, query: TextQuery, cap: int) -> int:
        return self.counts(conn, [query], cap)[0]

    def counts(self, conn: Any, queries: Sequence[TextQuery], cap: int) -> list[int]:
        # One statement for every word of a question (at most search.MAX_QUERY_TERMS).
        if not queries:
            return []
        one = (
            "(SELECT count(*) FROM (SELECT 1 FROM memories_fts WHERE memories_fts MATCH ? LIMIT ?))"
        )
        sql = f"SELECT {', '.join([one] * len(queries))}"
        found = conn.execute(sql, [p for query in queries for p in (_scoped(query), cap)])
        return [int(n) for n in found.fetchone()]

    def matches(
        self, conn: Any, query: TextQuery, where: Filter, since: int, limit: int
    ) -> list[Any]:
        # CROSS JOIN: the full-text match drives the loop. Left to itself, the planner may
        # walk the scope's rows and evaluate the MATCH once per row (quadratic in its size).
        sql = (
            "SELECT m.rowid, m.content, length(m.content), m.session_id IS NOT NULL"
            " FROM memories_fts CROSS JOIN memories AS m ON m.rowid = memories_fts.rowid"
            f" WHERE memories_fts MATCH ? AND memories_fts.rowid >= ? AND {where.sql}"
            " ORDER BY memories_fts.rowid {order} LIMIT ?"
        )
        params = [_scoped(query), since, *where.params]
        # FTS5 walks postings backwards at about 1.3 times the cost, and recall's candidates
        # are chosen to be few: up to FEW_MATCHES they are read oldest first; only when
        # more match (a fallback to every match) are they read again, newest first, for
        # the newest ``limit``. Either way the same rows (in another order; recall orders
        # them by score). Plain tuples (``plain_rows``): hundreds of rows, each read once.
        few = min(limit, FEW_MATCHES)
        rows = plain_rows(conn.execute(sql.format(order="ASC"), [*params, few + 1]))
        if len(rows) <= few:
            return rows
        return plain_rows(conn.execute(sql.format(order="DESC"), [*params, limit]))

    def every_match(self, conn: Any, query: TextQuery, where: Filter) -> list[Any]:
        sql = (
            "SELECT m.rowid, m.content, length(m.content), m.agent_id, m.session_id,"
            f" CASE WHEN {where.sql} THEN 1 ELSE 0 END"
            " FROM memories_fts CROSS JOIN memories AS m ON m.rowid = memories_fts.rowid"
            " WHERE memories_fts MATCH ?"
        )
        return plain_rows(conn.execute(sql, [*where.params, _scoped(query)]))

    def window_start(self, conn: Any, query: TextQuery, size: int) -> int:
        row = conn.execute(
            "SELECT rowid FROM memories_fts WHERE memories_fts MATCH ? ORDER BY rowid DESC LIMIT 1 OFFSET ?",
            (_scoped(query), size - 1),
        ).fetchone()
        return 0 if row is None else int(row[0])

    def holding(self, conn: Any, query: TextQuery) -> list[int]:
        sql = "SELECT rowid FROM memories_fts WHERE memories_fts MATCH ?"
        return [r[0] for r in conn.execute(sql, (_scoped(query),))]

    def matching(self, conn: Any, terms: Sequence[str], rowids: Sequence[int]) -> set[int]:
        if not rowids or not terms:
            return set()
        marks = ",".join("?" * len(rowids))
        sql = f"SELECT rowid FROM memories_fts WHERE memories_fts MATCH ? AND rowid IN ({marks})"
        expression = f"content : ({match_expression(terms)})"
        return {r[0] for r in conn.execute(sql, [expression, *rowids])}


class SQLiteDialect(Dialect):
    """The SQLite parts of the seam; :class:`.db.Database` adds the file and its connections."""

    text: TextIndex = FtsIndex()
    # NOT INDEXED: left to itself, the planner walks the scope's index (the conditions name
    # the scope) and tests every row against the list: 70 ms at 50k memories, against
    # 0.3 ms by rowid.
    by_rowid = "memories AS m NOT INDEXED"

    def lock_account(self, conn: Any, account_id: int) -> None:
        """Nothing to do: every write transaction already holds the file's one write lock."""

    def ids_taken(self, conn: Any) -> None:
        """Nothing to do: a new row's ``INTEGER PRIMARY KEY`` is the largest one plus one."""

    def one_of(self, column: str, ids: Sequence[int]) -> Filter:
        return Filter(f"{column} IN ({','.join('?' * len(ids))})", list(ids))

    def text_column(self, content: str, scope: tuple[int, str, str]) -> tuple[str, str, Any] | None:
        """None: ``memories_fts`` is kept in step by triggers (``sqlite_schema.py``)."""
        return None

    def compile_filters(
        self, filters: dict[str, Any] | None, prefix: str = "filters"
    ) -> Filter | None:
        return compile_filters(filters, prefix)

    def guard(self, budget: Budget, conn: Any) -> AbstractContextManager[None]:
        return budget.progress_guard(conn)


#: The dialect of a plain ``sqlite3`` connection (see ``backend.dialect_of``).
SQLITE = SQLiteDialect()
