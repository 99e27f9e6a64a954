"""Recall in a small scope: its memories read in one statement, their words counted here.

Through the full-text index alone a recall costs one statement per word of the question
(its count in the scope, to weigh it), then the matches, then their conversation
neighbours (``search.py``); each full-text statement intersects the scope word's postings
with a word's postings over the whole index, so it grows with what every scope stores. A
LangGraph namespace holds tens to hundreds of memories, and for a scope that small one
statement is enough:

- up to ``TextIndex.scans_up_to`` memories (``SCAN_LIMIT`` on SQLite), the whole scope is
  read by its own index (:meth:`ScopeScan.read`): no full-text statement at all, a cost
  that grows with the scope alone; the neighbours are looked up in the rows read;
- up to ``TextIndex.reads_matches_up_to`` (``MATCHES_LIMIT``), every memory of the scope
  holding a word of the question is read in one full-text statement
  (:meth:`ScopeScan.read_matches`), and each word's count is counted in those rows.

Either way the words of each memory come from a per-process cache of its tokens
(:func:`.scoring.held`), and the answers are the index's, bit for bit:

- a word matches a memory as FTS5's phrase of the word's tokens does (the same tokenizer);
- a word's count is over every memory of the scope, expired ones and those the request's
  conditions leave out included, as the index counts;
- a memory meets the request's conditions when the same SQL condition holds for its row
  (evaluated in the one statement, so the query budget counts it);
- matches are scored by the same :class:`.scoring.Scorer`, from counts where the index
  would have been read for content (:meth:`.Scorer.raw_counts`, the same floats).

The limits were measured (recall in one scope of a 10k- and a 100k-memory database, the
benchmarks' text and a dense 21-word one): reading a whole scope costs about 3 us a memory
whatever the database holds, the full-text statements grow with the database; past 200
memories reading every match is cheaper, and past 1,000 (``search.POSTINGS_BUDGET``) a
common word could match too many. ``tests/server/test_scan.py`` recalls random questions
all three ways and compares the answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .backend import TextQuery, dialect_of
from .filters import Filter, scope_condition
from .scoring import Scorer, held, tokens

__all__ = ["MATCHES_LIMIT", "SCAN_LIMIT", "ScopeScan", "plain_rows"]

#: Largest scope recalled by reading it whole (on SQLite; the module docstring says why).
SCAN_LIMIT = 200
#: Largest scope recalled from all its matches, read in one statement (on SQLite); at most
#: ``search.POSTINGS_BUDGET``, so no word is too common to read every memory holding it.
MATCHES_LIMIT = 1000

_READ = (
    "SELECT m.rowid, m.content, length(m.content), m.agent_id, m.session_id,"
    " CASE WHEN {meets} THEN 1 ELSE 0 END FROM memories AS m WHERE {scope}"
)


def plain_rows(cursor: Any) -> list[Any]:
    """The rows of a SQLite ``cursor`` as plain tuples: a ``sqlite3.Row`` for each memory
    of a scope costs about as much as reading it. (SQLite makes a row into the cursor's
    ``row_factory`` as it is fetched, so setting it after ``execute`` still applies.)"""
    cursor.row_factory = None
    return list(cursor.fetchall())


class ScopeScan:
    """Every memory of one scope, and a question's words in them (module docstring).

    Args:
        rows: ``(rowid, content, length, agent_id, session_id, meets the request)`` of each
            memory of the scope, as :meth:`read` reads them.
        terms: the question's words (``search.query_terms``).
    """

    def __init__(self, rows: Sequence[Any], terms: Sequence[str], whole: bool = True) -> None:
        #: Whether ``rows`` are the whole scope (else: only the memories holding a word).
        self.whole = whole
        self._rows = rows
        self._terms = list(terms)
        self._stems = {term: tuple(tokens(term)) for term in self._terms}
        self._held = held([row[1] for row in rows], self._stems.values())

    @classmethod
    def read(
        cls,
        conn: Any,
        account_id: int,
        user_id: str,
        agent_id: str | None,
        where: Filter,
        terms: Sequence[str],
    ) -> ScopeScan:
        """The scope's memories (all the user's agents when ``agent_id`` is None), each
        marked with whether it meets ``where``: one statement."""
        scope = scope_condition(account_id, user_id, agent_id)
        sql = _READ.format(meets=where.sql, scope=scope.sql)
        return cls(plain_rows(conn.execute(sql, [*where.params, *scope.params])), terms)

    @classmethod
    def read_matches(cls, conn: Any, query: TextQuery, where: Filter) -> ScopeScan:
        """The scope's memories holding a word of ``query`` (``TextIndex.every_match``),
        each marked with whether it meets ``where``: one statement, and every word's count
        in the scope is counted from them."""
        rows = dialect_of(conn).text.every_match(conn, query, where)
        return cls(rows, query.terms, whole=False)

    def counts(self) -> list[int]:
        """How many memories of the scope hold each word, in the order of the words."""
        holders: dict[tuple[str, ...], int] = {}
        for found in self._held.values():
            for stem in found:
                holders[stem] = holders.get(stem, 0) + 1
        return [holders.get(self._stems[term], 0) for term in self._terms]

    def scored(self, scorer: Scorer) -> list[tuple[int, float, bool]]:
        """``(rowid, raw score, in a session)`` of the memories holding a word of the
        question and meeting the request, unordered (``search._matches`` orders them)."""
        rows, counts = [], []
        for place, found in self._held.items():
            row = self._rows[place]
            if row[5]:
                rows.append(row)
                counts.append(found)
        counted = scorer.counted
        if counted is None:  # a word is a phrase: scored from the content, as the index's are
            raw = scorer.raw_all([(row[1], row[2]) for row in rows])
        else:
            keys = [(token,) for token in counted]
            raw = scorer.raw_counts(
                [
                    (
                        [(place, found[key]) for place, key in enumerate(keys) if key in found],
                        row[2],
                    )
                    for row, found in zip(rows, counts, strict=True)
                ]
            )
        return [(row[0], score, row[4] is not None) for row, score in zip(rows, raw, strict=True)]

    def neighbours(self, rowids: Iterable[int], reach: int) -> list[tuple[int | None, ...]]:
        """``(rowid, before, after, 2 before, 2 after, ...)`` up to ``reach`` turns away, for
        each of ``rowids`` (memories in a session): the memories of the same agent and
        session next to it by rowid, whatever the request's conditions (``None``: none)."""
        conversations: dict[tuple[str, str], list[int]] = {}
        for row in self._rows:
            if row[4] is not None:
                conversations.setdefault((row[3], row[4]), []).append(row[0])
        place: dict[int, tuple[list[int], int]] = {}
        for turns in conversations.values():
            turns.sort()
            place.update((rowid, (turns, i)) for i, rowid in enumerate(turns))
        around: list[tuple[int | None, ...]] = []
        for rowid in rowids:
            turns, i = place[rowid]
            lent: list[int | None] = [rowid]
            for distance in range(1, reach + 1):
                lent.append(turns[i - distance] if i >= distance else None)
                lent.append(turns[i + distance] if i + distance < len(turns) else None)
            around.append(tuple(lent))
        return around

    def meeting(self, rowids: Iterable[int]) -> list[int]:
        """Those of ``rowids`` that meet the request's conditions."""
        meets = {row[0]: row[5] for row in self._rows}
        return [rowid for rowid in rowids if meets[rowid]]
