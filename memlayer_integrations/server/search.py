"""Recall: turning a user's question into a full-text query, and ranking memories by it.

All ranking lives in this module, behind two functions:

* :func:`build_match_query` turns plain text into a safe FTS5 ``MATCH`` expression, or
  ``None`` when the text has no searchable word.
* :func:`search` runs it within a scope and returns ``(row, score)`` pairs, best first.

User text never reaches FTS5 syntax unescaped: it is cut into words and every word is
emitted as a double-quoted string, so quotes, ``AND``/``OR``/``NOT``/``NEAR``, ``*``, ``:``,
parentheses or emoji are only ever text. The words are OR-ed and ranked by BM25 over a
Porter-stemmed index (``memories_fts``, see ``db.py``), so "plans" finds "plan" and a memory
matching more (and rarer) words of the question ranks higher.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Optional

from .filters import Filter

__all__ = ["build_match_query", "search", "MAX_QUERY_TERMS"]

# Letters and digits, as FTS5's unicode61 tokenizer sees words (``_`` separates words there).
_WORD = re.compile(r"[^\W_]+")
#: More distinct words than this add little to BM25 and only slow the query down.
MAX_QUERY_TERMS = 64


def build_match_query(text: str) -> Optional[str]:
    """A safe FTS5 MATCH expression for ``text``, or ``None`` if it has no word to search.

    Example:
        >>> build_match_query('what "plan" is NEAR(me)*?')
        '"what" OR "plan" OR "is" OR "near" OR "me"'
        >>> build_match_query("?!") is None
        True
    """
    terms: list[str] = []
    seen: set[str] = set()
    for word in _WORD.findall(text.lower()):
        if word not in seen:
            seen.add(word)
            terms.append(word)
            if len(terms) == MAX_QUERY_TERMS:
                break
    if not terms:
        return None
    # Words hold no '"' (they are letters and digits), but doubling keeps quoting correct
    # should the word pattern ever change.
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


def search(
    conn: sqlite3.Connection,
    account_id: int,
    query: str,
    *,
    user_id: str,
    agent_id: Optional[str],
    session_id: Optional[str],
    filters: Optional[Filter],
    limit: int,
    offset: int,
) -> list[tuple[sqlite3.Row, float]]:
    """Memories of one scope matching ``query``, best first, with a positive score.

    ``agent_id=None`` searches all of the user's agents. Rows are full ``memories`` rows
    (aliased ``m``; ``filters`` is a condition on ``m``).
    """
    match = build_match_query(query)
    if match is None:
        return []
    sql = (
        "SELECT m.*, bm25(memories_fts) AS bm25_score FROM memories_fts JOIN memories AS m ON m.rowid = memories_fts.rowid"
        " WHERE memories_fts MATCH ? AND m.account_id = ? AND m.user_id = ?"
    )
    params: list[object] = [match, account_id, user_id]
    if agent_id is not None:
        sql += " AND m.agent_id = ?"
        params.append(agent_id)
    if session_id is not None:
        sql += " AND m.session_id = ?"
        params.append(session_id)
    if filters is not None:
        sql += " AND " + filters.sql
        params.extend(filters.params)
    sql += " ORDER BY bm25_score, m.rowid LIMIT ? OFFSET ?"
    params += [limit, offset]
    # FTS5's bm25() is negative, lower is better; the contract's score is positive, higher
    # is better. The floor keeps a score positive when every word is in every document.
    return [(row, max(-row["bm25_score"], 1e-6)) for row in conn.execute(sql, params)]
