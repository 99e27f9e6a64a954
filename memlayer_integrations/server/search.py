"""Recall: turning a user's question into a full-text query, and ranking memories by it.

All ranking lives in this module, behind :func:`search` (and :func:`build_match_query`,
which turns plain text into a safe FTS5 ``MATCH`` expression, or ``None`` when the text has
no searchable word).

User text never reaches FTS5 syntax unescaped: it is cut into words and every word is
emitted as a double-quoted string, so quotes, ``AND``/``OR``/``NOT``/``NEAR``, ``*``, ``:``,
parentheses or emoji are only ever text. General English stop words ("what", "is", "the")
and single letters are dropped, because they match nearly every memory and only blur the
ranking; a question made only of stop words ("who is he") searches those words instead.
The remaining words are OR-ed over a Porter-stemmed index (``memories_fts``, see
``sqlite_schema.py``), so "plans" finds "plan", and the matches are ranked by BM25 computed over the
scope alone (:mod:`.scoring`): a memory matching more (and, in this scope, rarer) words of
the question ranks higher.

The index itself is the backend's (``backend.TextIndex``): FTS5 on SQLite
(``sqlite_text.py``), the same tokens in a GIN ``tsvector`` on PostgreSQL
(``postgres/text.py``). Everything else here, and the scoring, runs the same on both.

Scope: a query, and every word count, is ANDed with the word naming its scope (column
``scope_terms``, see :func:`scope_word`), so FTS5 only walks the postings of that user's
(or that user and agent's) memories and counts words there. Which memories are candidates,
and how they score, never depends on what other scopes or accounts store: a tenant cannot
learn another's words from its own results. The SQL conditions on the ids decide what is
returned.

Cost control: FTS5 scores every memory that matches, so one very common word would make an
OR query as slow as the whole scope. In a scope of more than ``POSTINGS_BUDGET`` memories,
:func:`search` therefore counts each word's matches (capped at ``POSTINGS_BUDGET + 1``);
the rarest words whose counts add up to at most ``POSTINGS_BUDGET`` choose the candidates
and the others only add to their score: the candidates are the matches of ``"rare"``
alone (FTS5 never walks the common words' postings), scored for every word. Where no
word is that common the query is the plain OR. Words that match nothing are left out. When
every word is in more than ``POSTINGS_BUDGET`` memories, the candidates are the newest
``POSTINGS_BUDGET`` memories holding the rarest word: a question made only of everyday words
favours what was said recently. A scope of at most ``POSTINGS_BUDGET`` memories cannot
match more than the budget, so it gets plain BM25 over the OR of all the words (its
words are still counted, to weigh them). A small scope is read in one statement, whole
or every match of it, and its words counted in what was read (``scan.py``): the same
answers, without a statement per word.

Conversations: a chat stored turn by turn often answers a question in the turn *after*
the one that uses the question's words ("How long do you hold that pose?" is answered by
"30-60 seconds"). So each of the best ``CANDIDATES`` matches lends ``NEIGHBOUR_WEIGHT`` of
its score to the memories stored just before and just after it in the same conversation
(same user, agent and ``session_id``), and ``NEIGHBOUR_WEIGHT`` squared to those two turns
away; a memory keeps the largest share lent to it. A neighbour from outside the candidates
is returned only where its share outranks a match, never to pad out a short result, and
only if it meets every condition of the request. Memories without a ``session_id`` are not
a conversation and are ranked by BM25 alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import Any

from .backend import TextQuery, dialect_of
from .db import MEMORY_COLUMNS
from .filters import Filter, scope_condition
from .scan import ScopeScan
from .scoring import Scorer, scope_stats
from .sqlite_text import match_expression, scope_word

__all__ = [
    "CANDIDATES",
    "MAX_QUERY_TERMS",
    "MAX_SCORED",
    "NEIGHBOUR_REACH",
    "NEIGHBOUR_WEIGHT",
    "POSTINGS_BUDGET",
    "STOPWORDS",
    "build_match_query",
    "choose_terms",
    "query_terms",
    "ranked",
    "scope_word",
    "search",
]
# Letters and digits, as FTS5's unicode61 tokenizer sees words (``_`` separates words there).
_WORD = re.compile(r"[^\W_]+")
#: Longest query kept, in distinct words: more add little to BM25 and only slow the query down.
MAX_QUERY_TERMS = 32
#: Most matches (summed over the words that choose the candidates) one recall scores in full.
POSTINGS_BUDGET = 1000

# A general English stop-word list: function words, auxiliaries, pronouns, question words
# and the fragments the tokenizer leaves from contractions ("don't" -> "don", "t").
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "aren",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "cannot",
        "could",
        "couldn",
        "d",
        "did",
        "didn",
        "do",
        "does",
        "doesn",
        "doing",
        "don",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "hadn",
        "has",
        "hasn",
        "have",
        "haven",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "isn",
        "it",
        "its",
        "itself",
        "just",
        "ll",
        "m",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "ought",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "re",
        "s",
        "same",
        "she",
        "should",
        "shouldn",
        "so",
        "some",
        "such",
        "t",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "ve",
        "very",
        "was",
        "wasn",
        "we",
        "were",
        "weren",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "won",
        "would",
        "wouldn",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
    ]
)

#: How many of the best BM25 matches lend score to their conversation neighbours.
CANDIDATES = 200
#: Share of a candidate's score lent to the next memory along the conversation (squared
#: for the one after that).
NEIGHBOUR_WEIGHT = 0.5
#: How far along a conversation a candidate lends: to the memories 1 and 2 turns away.
NEIGHBOUR_REACH = 2

#: Most matches one recall scores (the candidates are chosen to be at most the budget).
MAX_SCORED = 4 * POSTINGS_BUDGET


def _neighbour(direction: str, distance: int) -> str:
    """Subquery: the memory ``distance`` turns before (``<``) or after (``>``) candidate ``c``."""
    order = "DESC" if direction == "<" else "ASC"
    return (
        "(SELECT n.rowid FROM memories AS n WHERE n.account_id = c.account_id AND n.user_id = c.user_id"
        " AND n.agent_id = c.agent_id AND n.session_id = c.session_id"
        f" AND n.rowid {direction} c.rowid ORDER BY n.rowid {order} LIMIT 1 OFFSET {distance - 1})"
    )


# Each candidate and its neighbours: c.rowid, then (before, after) for distance 1, 2, ...
_NEIGHBOURS_SQL = (
    "SELECT c.rowid, "
    + ", ".join(_neighbour(d, k) for k in range(1, NEIGHBOUR_REACH + 1) for d in "<>")
    + " FROM memories AS c WHERE c.session_id IS NOT NULL AND {ids}"
)


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
    document_frequency: Callable[[str], int] | None = None,
    budget: int = POSTINGS_BUDGET,
) -> str | None:
    """A safe FTS5 MATCH expression for ``text``, or ``None`` if it has no word to search.

    Args:
        text: the user's question, any characters.
        document_frequency: a word's match count, capped at ``budget + 1``. Without it the
            query is the plain OR of the words.
        budget: most matches the candidate-choosing words may add up to.

    With ``document_frequency``, words that match nothing are left out (``None`` if no word
    matches anything), and the rarest of the others whose counts add up to at most
    ``budget`` (always at least one word) choose the candidates: the expression is theirs
    alone (a memory holding a rare word holds a word of the question; the others only add
    to its score, :mod:`.scoring`).

    Example:
        >>> build_match_query('what "plan" is NEAR(me)*?')
        '"plan" OR "near"'
        >>> build_match_query("?!") is None
        True
        >>> build_match_query("likes tea", {"tea": 40, "likes": 3000}.get)
        '"tea"'
        >>> build_match_query("likes zebras", {"zebras": 0, "likes": 3000}.get)
        '"likes"'
    """
    chosen = choose_terms(query_terms(text), document_frequency, budget)
    if chosen is None:
        return None
    terms, rare = chosen
    return match_expression(terms, rare)


def choose_terms(
    terms: Sequence[str],
    document_frequency: Callable[[str], int] | None = None,
    budget: int = POSTINGS_BUDGET,
) -> tuple[list[str], list[str] | None] | None:
    """``(words to match, words that choose the candidates or None)`` for
    :func:`build_match_query` (which says how), or ``None`` if no word is left.

    Example:
        >>> choose_terms(["likes", "tea"], {"tea": 40, "likes": 3000}.get)
        (['likes', 'tea'], ['tea'])
    """
    terms = list(terms)
    counts: dict[str, int] = {}
    if terms and document_frequency is not None:
        counts = {t: document_frequency(t) for t in terms}
        # A word that matches nothing would otherwise be the "rarest" and, alone, choose no candidate.
        terms = [t for t in terms if counts[t] > 0]
    if not terms:
        return None
    if document_frequency is None:
        return terms, None
    rare: set[str] = set()
    total = 0
    for term in sorted(terms, key=counts.__getitem__):
        if rare and total + counts[term] > budget:
            break
        rare.add(term)
        total += counts[term]
    if len(rare) == len(terms):
        return terms, None
    return terms, [t for t in terms if t in rare]


def _matches(
    conn: Any, query: TextQuery, where: Filter, scorer: Scorer, since: int = 0
) -> list[tuple[int, float, bool]]:
    """``(rowid, raw score, in a session)`` of the matches meeting ``where`` from rowid
    ``since`` on, best first (ties: oldest first). At most ``MAX_SCORED`` of them, the newest:
    the candidates are chosen to be far fewer (module docstring); only a fallback to every
    match of a large scope reaches it."""
    return _best_first_sorted(
        dialect_of(conn).text.scored(conn, query, where, since, MAX_SCORED, scorer)
    )


def _best_first_sorted(scored: list[tuple[int, float, bool]]) -> list[tuple[int, float, bool]]:
    # Best first, ties oldest first: by rowid, then (stable, so ties keep it) by score.
    scored.sort(key=itemgetter(0))
    scored.sort(key=itemgetter(1), reverse=True)
    return scored


def _smoothed(
    conn: Any, head: list[tuple[int, float, bool]], where: Filter, scan: ScopeScan | None = None
) -> list[tuple[int, float]]:
    """``head`` rescored with what their neighbours lend, plus the neighbours lifted, best first.

    A neighbour outside ``head`` is lifted only when the share lent to it beats the lowest
    BM25 score in ``head``: neighbours move ahead of weaker matches, they never pad a short
    result. It scores that share, and must meet every condition of the request. Only
    memories in a session have neighbours. With ``scan`` (the whole scope, read), the
    neighbours and the conditions are looked up in it instead of in SQL.
    """
    scores = {rowid: score for rowid, score, _ in head}
    lent: dict[int, float] = {}  # the largest share any candidate lends to a memory
    in_session = [rowid for rowid, _, session in head if session]
    dialect = dialect_of(conn)
    neighbours: Any = []
    if in_session and scan is not None and scan.whole:
        neighbours = scan.neighbours(in_session, NEIGHBOUR_REACH)
    elif in_session:
        ids = dialect.one_of("c.rowid", in_session)
        neighbours = conn.execute(_NEIGHBOURS_SQL.format(ids=ids.sql), ids.params)
    for rowid, *around in neighbours:
        for i, other in enumerate(around):
            share = scores[rowid] * NEIGHBOUR_WEIGHT ** (i // 2 + 1)
            if other is not None and share > lent.get(other, 0.0):
                lent[other] = share
    ranked = [(rowid, score + lent.get(rowid, 0.0)) for rowid, score, _ in head]
    lowest = head[-1][1]
    lifted = [rowid for rowid, share in lent.items() if rowid not in scores and share > lowest]
    if lifted and scan is not None and scan.whole:
        ranked += [(rowid, lent[rowid]) for rowid in scan.meeting(lifted)]
    elif lifted:
        ids = dialect.one_of("m.rowid", lifted)
        sql = f"SELECT m.rowid FROM {dialect.by_rowid} WHERE {ids.sql} AND {where.sql}"
        ranked += [(r[0], lent[r[0]]) for r in conn.execute(sql, [*ids.params, *where.params])]
    return sorted(ranked, key=_best_first)


def _best_first(hit: tuple[int, float]) -> tuple[float, int]:
    return (-hit[1], hit[0])


def _rows(conn: Any, rowids: Iterable[int]) -> dict[int, Any]:
    wanted = list(rowids)
    if not wanted:
        return {}
    ids = dialect_of(conn).one_of("m.rowid", wanted)
    sql = f"SELECT {MEMORY_COLUMNS} FROM memories AS m WHERE {ids.sql}"
    return {row["rowid"]: row for row in conn.execute(sql, ids.params)}


def search(
    conn: Any,
    account_id: int,
    query: str,
    *,
    user_id: str,
    agent_id: str | None,
    session_id: str | None,
    filters: Filter | None,
    limit: int,
    offset: int,
    now: str | None = None,
    agent_prefix: str | None = None,
) -> list[tuple[Any, float]]:
    """Memories of one scope matching ``query``, best first, with their raw score (> 0).

    :func:`ranked`, with each memory's row.
    """
    page = ranked(
        conn,
        account_id,
        query,
        user_id=user_id,
        agent_id=agent_id,
        session_id=session_id,
        filters=filters,
        limit=limit,
        offset=offset,
        now=now,
        agent_prefix=agent_prefix,
    )
    rows = _rows(conn, (rowid for rowid, _ in page))
    return [(rows[rowid], score) for rowid, score in page]


def ranked(
    conn: Any,
    account_id: int,
    query: str,
    *,
    user_id: str,
    agent_id: str | None,
    session_id: str | None,
    filters: Filter | None,
    limit: int,
    offset: int,
    now: str | None = None,
    agent_prefix: str | None = None,
) -> list[tuple[int, float]]:
    """The rowids of the memories of one scope matching ``query``, best first, with their raw
    score (> 0): :func:`search` without reading the rows (hybrid recall reads only those of
    the page it returns).

    ``agent_id=None`` searches all of the user's agents; ``agent_prefix`` only an agent and
    those below it, ranked as in a search of all the user's agents (the user's statistics).
    ``filters`` is a condition on ``memories AS m``; :func:`search` returns full
    ``memories`` rows. The order is one fixed ranking of all
    matches (per-scope BM25, :mod:`.scoring`, plus the neighbour bonus from the best
    ``CANDIDATES``), so pages cut with ``offset`` never overlap or skip. Nothing in it
    depends on what other scopes or accounts store. :func:`.scoring.relevance` turns a raw
    score into the contract's ``score``. Memories expired at ``now`` are left out.
    """
    text = dialect_of(conn).text
    stats = scope_stats(conn, account_id, user_id, agent_id)
    terms = query_terms(query)
    if not terms:
        return []
    where = scope_condition(
        account_id,
        user_id,
        agent_id,
        session_id,
        filters=filters,
        live_at=now,
        agent_prefix=agent_prefix,
    )

    def scoped(words: Sequence[str], choose: Sequence[str] | None = None) -> TextQuery:
        return TextQuery(account_id, user_id, agent_id, words, choose)

    scan = None
    # (A limit of 0: the index never reads a scope that way, not even an empty one.)
    scan_limit = min(text.scans_up_to, POSTINGS_BUDGET)
    matches_limit = min(text.reads_matches_up_to, POSTINGS_BUDGET)
    if scan_limit and stats.size <= scan_limit:
        # A small scope: read whole, searched here (scan.py), the same answers.
        scan = ScopeScan.read(conn, account_id, user_id, agent_id, where, terms)
        found = scan.counts()
    elif matches_limit and stats.size <= matches_limit:
        # Every match is at most a few hundred rows: read once, the words counted in them.
        scan = ScopeScan.read_matches(conn, scoped(terms), where)
        found = scan.counts()
    else:
        found = text.counts(conn, [scoped([term]) for term in terms], POSTINGS_BUDGET + 1)
    counts = dict(zip(terms, found, strict=True))
    since = 0
    chosen: tuple[list[str], list[str] | None] | None
    if stats.size <= POSTINGS_BUDGET:
        # At most the budget can match, however common the words: the plain OR.
        chosen = (terms, None) if any(counts.values()) else None
    else:
        chosen = choose_terms(terms, counts.__getitem__, POSTINGS_BUDGET)
        rarest = min(
            (term for term, n in counts.items() if n), key=counts.__getitem__, default=None
        )
        if rarest is not None and counts[rarest] > POSTINGS_BUDGET:
            # Every word is common here: the newest memories holding the rarest one are the candidates.
            since = text.window_start(conn, scoped([rarest]), POSTINGS_BUDGET)
    if chosen is None:
        return []
    scorer = Scorer(list(counts), list(counts.values()), stats)
    if scan is not None:
        matches = _best_first_sorted(scan.scored(scorer))
    else:
        matches = _matches(conn, scoped(*chosen), where, scorer, since)
    if not matches and (since or chosen[1] is not None):
        # The candidates met none of the request's conditions (filters, a session): rank
        # every match.
        matches = _matches(conn, scoped(terms), where, scorer)
    if not matches:
        return []
    head, rest = matches[:CANDIDATES], matches[CANDIDATES:]
    order = _smoothed(conn, head, where, scan)
    end = offset + limit
    if rest and len(order) < end:
        # The rest of the matches, in BM25 order: each scores at most the head's lowest,
        # below everything in `order`. Lifted neighbours among them are already ranked.
        seen = {rowid for rowid, _ in order}
        order += [(rowid, score) for rowid, score, _ in rest if rowid not in seen]
    return order[offset:end]
