"""Recall: turning a user's question into a full-text query, and ranking memories by it.

All ranking lives in this module, behind two functions:

* :func:`build_match_query` turns plain text into a safe FTS5 ``MATCH`` expression, or
  ``None`` when the text has no searchable word.
* :func:`search` runs it within a scope and returns ``(row, score)`` pairs, best first.

User text never reaches FTS5 syntax unescaped: it is cut into words and every word is
emitted as a double-quoted string, so quotes, ``AND``/``OR``/``NOT``/``NEAR``, ``*``, ``:``,
parentheses or emoji are only ever text. General English stop words ("what", "is", "the")
and single letters are dropped, because they match nearly every memory and only blur the
ranking; a question made only of stop words ("who is he") searches those words instead.
The remaining words are OR-ed and ranked by BM25 over a Porter-stemmed index
(``memories_fts``, see ``db.py``), so "plans" finds "plan" and a memory matching more (and
rarer) words of the question ranks higher.

Cost control: FTS5 scores every memory that matches, so one very common word would make an
OR query as slow as the whole store. :func:`search` therefore counts each word's matches
(capped at ``POSTINGS_BUDGET + 1``); the rarest words whose counts add up to at most
``POSTINGS_BUDGET`` choose the candidates and the others only add to their score:
``("rare") AND ("rare" OR "common")``. On a store where no word is that common the query is
the plain OR.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Callable, Optional

from .filters import Filter

__all__ = ["build_match_query", "query_terms", "search", "MAX_QUERY_TERMS", "POSTINGS_BUDGET", "STOPWORDS"]

# Letters and digits, as FTS5's unicode61 tokenizer sees words (``_`` separates words there).
_WORD = re.compile(r"[^\W_]+")
#: Longest query kept, in distinct words: more add little to BM25 and only slow the query down.
MAX_QUERY_TERMS = 32
#: Most matches (summed over the words that choose the candidates) one recall scores in full.
POSTINGS_BUDGET = 2000

# A general English stop-word list: function words, auxiliaries, pronouns, question words
# and the fragments the tokenizer leaves from contractions ("don't" -> "don", "t").
STOPWORDS = frozenset(
    """
    a about above after again against all am an and any are aren as at be because been
    before being below between both but by can cannot could couldn d did didn do does
    doesn doing don down during each few for from further had hadn has hasn have haven
    having he her here hers herself him himself his how i if in into is isn it its itself
    just ll m me more most my myself no nor not of off on once only or other ought our
    ours ourselves out over own re s same she should shouldn so some such t than that the
    their theirs them themselves then there these they this those through to too under
    until up ve very was wasn we were weren what when where which while who whom why will
    with won would wouldn you your yours yourself yourselves
    """.split()
)

# One word's match count, capped: parameters '"word"' and the cap.
_PROBE_SQL = "SELECT count(*) FROM (SELECT 1 FROM memories_fts WHERE memories_fts MATCH ? LIMIT ?)"


def _quote(term: str) -> str:
    # Words hold no '"' (they are letters and digits), but doubling keeps quoting correct
    # should the word pattern ever change.
    return '"' + term.replace('"', '""') + '"'


def query_terms(text: str) -> list[str]:
    """The distinct searchable words of ``text``, in order, lower-cased.

    Stop words and single letters are dropped (single digits are kept: "3 kids"). If that
    leaves nothing, every word is kept, so "who is he" still searches something. At most
    ``MAX_QUERY_TERMS`` words are returned.

    Example:
        >>> query_terms("What's Tim's job? Tim's a 3D artist")
        ['tim', 'job', '3d', 'artist']
        >>> query_terms("Who is he?")
        ['who', 'is', 'he']
    """
    words = list(dict.fromkeys(_WORD.findall(text.lower())))
    kept = [w for w in words if w not in STOPWORDS and (len(w) > 1 or w.isdigit())]
    return (kept or words)[:MAX_QUERY_TERMS]


def build_match_query(
    text: str,
    document_frequency: Optional[Callable[[str], int]] = None,
    budget: int = POSTINGS_BUDGET,
) -> Optional[str]:
    """A safe FTS5 MATCH expression for ``text``, or ``None`` if it has no word to search.

    Args:
        text: the user's question, any characters.
        document_frequency: a word's match count, capped at ``budget + 1``. Without it the
            query is the plain OR of the words.
        budget: most matches the candidate-choosing words may add up to.

    With ``document_frequency``, the rarest words whose counts add up to at most ``budget``
    (always at least one word) choose the candidates: ``(rare) AND (all words)``. BM25 then
    counts the rare words twice, a mild extra weight on them.

    Example:
        >>> build_match_query('what "plan" is NEAR(me)*?')
        '"plan" OR "near"'
        >>> build_match_query("?!") is None
        True
        >>> build_match_query("likes tea", {"tea": 40, "likes": 3000}.get)
        '("tea") AND ("likes" OR "tea")'
    """
    terms = query_terms(text)
    if not terms:
        return None
    everything = " OR ".join(_quote(t) for t in terms)
    if document_frequency is None:
        return everything
    counts = {t: document_frequency(t) for t in terms}
    rare: set[str] = set()
    total = 0
    for term in sorted(terms, key=counts.__getitem__):
        if rare and total + counts[term] > budget:
            break
        rare.add(term)
        total += counts[term]
    if len(rare) == len(terms):
        return everything
    chosen = " OR ".join(_quote(t) for t in terms if t in rare)
    return f"({chosen}) AND ({everything})"


def _match_count(conn: sqlite3.Connection, cap: int) -> Callable[[str], int]:
    """A word's number of matching memories (all accounts), counted up to ``cap``."""
    return lambda term: conn.execute(_PROBE_SQL, (_quote(term), cap)).fetchone()[0]


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
    match = build_match_query(query, _match_count(conn, POSTINGS_BUDGET + 1), POSTINGS_BUDGET)
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
