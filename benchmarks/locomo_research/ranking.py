"""Lexical recall ranking for the local server: SQLite FTS5 only, no dependencies.

Two stages:

1. ``build_match_query`` turns free text into a safe FTS5 query: words are lower-cased,
   general English stop words are dropped, every remaining word is double-quoted (so no
   FTS5 syntax can leak in) and the words are OR-ed. FTS5's ``bm25()`` ranks the matches
   (porter tokenizer, so "painting" finds "paint").
2. ``smooth_with_neighbours`` re-ranks the best ``CANDIDATES`` matches: a memory's score
   gains ``NEIGHBOUR_WEIGHT`` times the better score of the memory stored just before or
   just after it in the same stream (same user, agent and session). A conversation stored
   turn by turn answers a question in the turn *after* the one that uses the question's
   words ("How long do you hold that pose?" -> "30-60 seconds"); this lifts such answers
   without touching the order of unrelated memories much.

Example:
    >>> build_match_query("When did Caroline go to the LGBTQ support group?")
    '"caroline" OR "go" OR "lgbtq" OR "support" OR "group"'
    >>> build_match_query("?!") is None
    True
"""

from __future__ import annotations

import re
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Tuple

#: FTS5 table (external content over ``memories``; ``rowid`` is the memory's rowid).
FTS_TABLE_SQL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS memories_fts USING fts5("
    "content, content='memories', content_rowid='rowid', "
    "tokenize='porter unicode61 remove_diacritics 2')"
)

#: Stage 1: the best ``CANDIDATES`` matches in a scope, score positive (higher is better).
#: Parameters: match query, user_id, candidate count. Add the agent/session/filter
#: conditions the request carries to the WHERE clause.
CANDIDATES_SQL = (
    "SELECT m.rowid, -bm25(memories_fts) AS score "
    "FROM memories_fts JOIN memories AS m ON m.rowid = memories_fts.rowid "
    "WHERE memories_fts MATCH ? AND m.user_id = ? "
    "ORDER BY bm25(memories_fts) LIMIT ?"
)

#: Stage 2 helper: the rowids stored just before and just after each of the best
#: ``LENDERS`` candidates in the same stream. Needs an index on
#: ``memories(user_id, agent_id, session_id, rowid)``. Format ``{ids}`` with one ``?`` per candidate rowid.
NEIGHBOURS_SQL = (
    "SELECT m.rowid, "
    "(SELECT p.rowid FROM memories AS p WHERE p.user_id = m.user_id "
    " AND p.agent_id IS m.agent_id AND p.session_id IS m.session_id "
    " AND p.rowid < m.rowid ORDER BY p.rowid DESC LIMIT 1), "
    "(SELECT n.rowid FROM memories AS n WHERE n.user_id = m.user_id "
    " AND n.agent_id IS m.agent_id AND n.session_id IS m.session_id "
    " AND n.rowid > m.rowid ORDER BY n.rowid ASC LIMIT 1) "
    "FROM memories AS m WHERE m.rowid IN ({ids})"
)

#: Match count of one word, capped: parameters '"word"' and ``budget + 1``.
PROBE_SQL = (
    "SELECT count(*) FROM (SELECT 1 FROM memories_fts WHERE memories_fts MATCH ? LIMIT ?)"
)

#: How many bm25 matches stage 2 re-ranks.
CANDIDATES = 200
#: How many of the best candidates lend score to their neighbours (bounds stage 2's cost).
LENDERS = 200
#: Most matches (summed over the words that choose candidates) a recall scores in full.
POSTINGS_BUDGET = 2000
#: Share of the better neighbour's score a memory gains.
NEIGHBOUR_WEIGHT = 0.5
#: Longest query kept, in distinct words: bounds the OR query's cost.
MAX_QUERY_TERMS = 32

# A general English stop-word list (function words, auxiliaries, pronouns, question
# words and the fragments the tokenizer leaves from contractions: "don't" -> "don", "t").
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

# Runs of letters and digits: the same split as FTS5's unicode61 tokenizer (which treats
# "_" and punctuation as separators).
_WORD = re.compile(r"[^\W_]+")


def query_terms(text: str) -> List[str]:
    """Return the distinct searchable words of ``text``, in order, lower-cased.

    Stop words and single letters are dropped (single digits are kept: "3 kids").
    At most ``MAX_QUERY_TERMS`` words are kept.

    Example:
        >>> query_terms("What's Tim's job? Tim's a 3D artist")
        ['tim', 'job', '3d', 'artist']
    """
    terms: List[str] = []
    seen = set()
    for word in _WORD.findall(text.lower()):
        if word in STOPWORDS or word in seen:
            continue
        if len(word) == 1 and not word.isdigit():
            continue
        seen.add(word)
        terms.append(word)
        if len(terms) == MAX_QUERY_TERMS:
            break
    return terms


def build_match_query(
    text: str,
    document_frequency: Optional[Callable[[str], int]] = None,
    budget: int = POSTINGS_BUDGET,
) -> Optional[str]:
    """Turn free text into an FTS5 MATCH expression, or ``None`` when nothing is searchable.

    Every word is double-quoted, so quotes, ``*``, ``:``, ``AND``/``NOT``/``NEAR`` or
    column names in the text are searched as plain words and never parsed as syntax.
    A text made only of stop words searches all its words instead, so "who is he" still
    finds something.

    Cost control: FTS5 scores every memory that matches, so one very common word makes
    an OR query as slow as the whole store. With ``document_frequency`` (a callable
    returning a word's match count, capped at ``budget + 1``: run ``PROBE_SQL``), the
    rarest words whose counts add up to at most ``budget`` choose the candidates and
    the others only add to their score: ``(rare) AND (rare OR common)``. Rare words are
    then counted twice by ``bm25()``, a mild extra weight on the rarer words. On a store
    where no word list exceeds the budget the query is the plain OR.

    Example:
        >>> build_match_query('he said "NOT" * col:umn')
        '"said" OR "col" OR "umn"'
        >>> counts = {"tea": 40, "likes": 3000}
        >>> build_match_query("who likes tea", counts.get, budget=2000)
        '("tea") AND ("likes" OR "tea")'
    """
    terms = query_terms(text)
    if not terms:
        # Only stop words (or nothing at all): search the words themselves.
        terms = list(dict.fromkeys(w for w in _WORD.findall(text.lower())))[:MAX_QUERY_TERMS]
    if not terms:
        return None
    # _WORD never yields a double quote, so no escaping is needed inside the quotes.
    everything = " OR ".join(f'"{term}"' for term in terms)
    if document_frequency is None:
        return everything
    counts = {term: document_frequency(term) for term in terms}
    rare: List[str] = []
    total = 0
    for term in sorted(terms, key=counts.__getitem__):
        if rare and total + counts[term] > budget:
            break
        rare.append(term)
        total += counts[term]
    if len(rare) == len(terms):
        return everything
    chosen = " OR ".join(f'"{term}"' for term in terms if term in rare)
    return f"({chosen}) AND ({everything})"


def smooth_with_neighbours(
    scores: Mapping[int, float],
    neighbours: Mapping[int, Tuple[Optional[int], Optional[int]]],
    weight: float = NEIGHBOUR_WEIGHT,
) -> List[Tuple[int, float]]:
    """Re-rank candidates by adding a share of their stream neighbours' scores.

    Args:
        scores: candidate rowid -> positive bm25 score (stage 1, ``CANDIDATES_SQL``).
        neighbours: rowid -> (previous rowid, next rowid) in the same stream for the best
            ``LENDERS`` candidates (``NEIGHBOURS_SQL``); ``None`` where there is none.
            Only these lend score.
        weight: share of the better neighbour's score that is added.

    Returns:
        ``(rowid, score)`` best first. Besides the candidates, it holds the candidates'
        neighbours (their own score counts as 0 unless they are candidates), because an
        answer often shares no word with the question. The caller must still apply the
        request's agent/session/metadata filters to rows that were not candidates.
        Ties keep the order of ``scores`` (bm25 order).

    Example:
        >>> smooth_with_neighbours({7: 4.0, 2: 1.0}, {7: (6, 8), 2: (None, 3)})
        [(7, 4.0), (6, 2.0), (8, 2.0), (2, 1.0), (3, 0.5)]
    """
    # Adjacency is symmetric, so "the better neighbour's score" of a memory is the best
    # score among the candidates that have it as a neighbour.
    lent: Dict[int, float] = {}
    for rowid, score in scores.items():
        for other in neighbours.get(rowid, (None, None)):
            if other is not None and score > lent.get(other, 0.0):
                lent[other] = score
    final: Dict[int, float] = {
        rowid: score + weight * lent.get(rowid, 0.0) for rowid, score in scores.items()
    }
    for rowid, borrowed in lent.items():
        if rowid not in final:
            final[rowid] = weight * borrowed
    return sorted(final.items(), key=lambda item: -item[1])


def rank(
    scores: Mapping[int, float],
    neighbours: Optional[Mapping[int, Tuple[Optional[int], Optional[int]]]] = None,
) -> List[Tuple[int, float]]:
    """Final order: bm25 alone when ``neighbours`` is ``None``, else smoothed."""
    if neighbours is None:
        return sorted(scores.items(), key=lambda item: -item[1])
    return smooth_with_neighbours(scores, neighbours)


def _neighbour_pairs(ordered_ids: Iterable[int]) -> Dict[int, Tuple[Optional[int], Optional[int]]]:
    """rowid -> (previous, next) for one stream given in storage order (tests/benchmarks)."""
    ids = list(ordered_ids)
    out: Dict[int, Tuple[Optional[int], Optional[int]]] = {}
    for i, rowid in enumerate(ids):
        out[rowid] = (ids[i - 1] if i else None, ids[i + 1] if i + 1 < len(ids) else None)
    return out
