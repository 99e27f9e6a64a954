"""Hybrid recall: words and meaning, fused into one readable score.

Used instead of :func:`search.search` when the server has an embedder. Two rankings of one
scope are made:

* **words**: :func:`search.search`, BM25 with its conversation-neighbour bonus, unchanged;
* **meaning**: the cosine between the question's vector and every memory's
  (:meth:`vectors.SemanticIndex.nearest`). A vector index always has neighbours, so a
  question that shares no word with any memory still gets the scope's closest memories.

Each is brought to 0..1 within the question, then mixed::

    words   = raw lexical score / best raw lexical score             (0 when no word matches)
    meaning = (cosine - floor) / (best cosine - floor), clipped to 0..1
    score   = (MEANING_WEIGHT * meaning + WORDS_WEIGHT * words + ANCHOR_BONUS * anchors)
              / (MEANING_WEIGHT + WORDS_WEIGHT + ANCHOR_BONUS)        # 0.4, 0.6, 0.3

``floor`` is the cosine of the ``POOL``-th closest memory (or of the farthest one in a
smaller scope): cosines of embedding models crowd into a narrow band, and what says "close"
is the distance from the rest of the scope, not the raw number.

**Exact matches are not lost.** A word of the question that occurs in at most
``ANCHOR_SHARE`` of the scope's memories (and in at most ``ANCHOR_MAX`` of them) is an
*anchor*: a name, a rare word, a number, an id. ``anchors`` is the share of the question's
anchors a memory holds, each weighted by its rarity (``log(1 + size / matches)``): 1 for a
memory holding all of them. Such a memory also has the best or nearly the best ``words``
(rare words weigh most in BM25), so it scores at least ``WORDS_WEIGHT + ANCHOR_BONUS`` of
the scale, out of reach of a memory that is only close in meaning and matches fewer rare
words. Memories holding an anchor are scored even when neither pool holds them.
Questions made of common words have no anchor and rank by words and meaning alone.

The weights were chosen on two sets, for every user alike: words weigh more than meaning
because on long conversations (LoCoMo) words alone find more of the evidence than a small
embedding model does, and meaning decides where no word matches, which is where recall by
words alone returns nothing.

The pool: the best ``POOL`` (or ``offset + limit``, if larger) of each ranking are scored.
A memory outside both pools has a lower meaning than the meaning pool's last and lower
words than the words pool's last, so it scores at most what those two sum to; pages cut
from this order do not overlap.
"""

from __future__ import annotations

import math
from concurrent.futures import Future
from typing import Any

from . import search as search_module
from .backend import TextQuery, dialect_of
from .db import MEMORY_COLUMNS
from .embedders import EmbedderError
from .errors import ApiError
from .filters import Filter, scope_condition
from .scoring import scope_stats
from .search import query_terms
from .vectors import SemanticIndex

__all__ = [
    "ANCHOR_BONUS",
    "ANCHOR_MAX",
    "ANCHOR_SHARE",
    "MEANING_WEIGHT",
    "POOL",
    "WORDS_WEIGHT",
    "search",
]

#: How many of the best memories of each ranking are fused.
POOL = 100
#: Weight of the meaning (0..1) in the score.
MEANING_WEIGHT = 0.4
#: Weight of the words (0..1) in the score.
WORDS_WEIGHT = 0.6
#: Weight of the anchors held (0..1) in the score (see the module docstring).
ANCHOR_BONUS = 0.3
#: A word is an anchor if at most this share of the scope's memories hold it...
ANCHOR_SHARE = 0.02
#: ...and at most this many (whatever the scope's size), and at least one does.
ANCHOR_MAX = 20
#: The scores are divided by this, so the best possible score is 1.
_SCALE = MEANING_WEIGHT + WORDS_WEIGHT + ANCHOR_BONUS


def _anchored(
    conn: Any, account_id: int, user_id: str, agent_id: str | None, query: str
) -> dict[int, float]:
    """The memories holding an anchor of the question (see the module docstring), each with
    the weight of the anchors it holds over the weight of all of them (1.0: every one).

    An anchor is held by at most ``ANCHOR_MAX`` memories of the scope, so the memories are
    read straight from the full-text index, whatever the two pools hold.
    """
    size = scope_stats(conn, account_id, user_id, agent_id).size
    if size == 0:
        return {}
    cap = max(1, min(ANCHOR_MAX, int(size * ANCHOR_SHARE)))
    text = dialect_of(conn).text

    def scoped(word: str) -> TextQuery:
        return TextQuery(account_id, user_id, agent_id, [word])

    terms = query_terms(query)
    found = text.counts(conn, [scoped(t) for t in terms], cap + 1)
    counts = dict(zip(terms, found, strict=True))
    anchors = {t: math.log1p(size / n) for t, n in counts.items() if 0 < n <= cap}
    total = sum(anchors.values())
    held: dict[int, float] = {}
    for word, weight in anchors.items():
        for rowid in text.holding(conn, scoped(word)):
            held[rowid] = held.get(rowid, 0.0) + weight / total
    return held


def search(
    conn: Any,
    account_id: int,
    query: str,
    query_vector: Future[Any],
    index: SemanticIndex,
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
    """Memories of one scope by words and meaning, best first, each with a score in (0, 1].

    Same arguments and rows as :func:`search.search`, plus ``query_vector``, the future of
    the question's vector. Without a session or metadata condition, the vectors are
    scanned on the index's worker thread once the question is embedded there
    (:meth:`SemanticIndex.start_nearest`), while this thread searches the words; with one,
    the scan waits for the memories that meet it. Memories expired at ``now`` are left
    out (the request's sweep has usually deleted them already).
    """
    pool = max(POOL, offset + limit)
    conditioned = session_id is not None or filters is not None or agent_prefix is not None
    scan = (
        None
        if conditioned
        else index.start_nearest(conn, account_id, user_id, agent_id, query_vector, pool)
    )
    lexical = search_module.ranked(  # rowids: only the page's rows are read, at the end
        conn,
        account_id,
        query,
        user_id=user_id,
        agent_id=agent_id,
        session_id=session_id,
        filters=filters,
        limit=pool,
        offset=0,
        now=now,
        agent_prefix=agent_prefix,
    )
    where = scope_condition(
        account_id,
        user_id,
        agent_id,
        session_id,
        filters=filters,
        live_at=now,
        agent_prefix=agent_prefix,
    )
    allowed = None
    if conditioned:
        allowed = [
            r[0]
            for r in conn.execute(
                f"SELECT m.rowid FROM memories AS m WHERE {where.sql}", where.params
            )
        ]
    anchored = _anchored(conn, account_id, user_id, agent_id, query)
    if anchored:  # scored even outside both pools, if they meet the request's conditions
        dialect = dialect_of(conn)
        ids = dialect.one_of("m.rowid", list(anchored))
        sql = f"SELECT m.rowid FROM {dialect.by_rowid} WHERE {ids.sql} AND {where.sql}"
        meets = {r[0] for r in conn.execute(sql, [*ids.params, *where.params])}
        anchored = {rowid: share for rowid, share in anchored.items() if rowid in meets}
    try:
        if scan is not None:
            near = scan.result()
        else:
            vector = query_vector.result()
            near = index.nearest(conn, account_id, user_id, agent_id, vector, pool, allowed)
    except EmbedderError as exc:  # a local model failing while the words were searched
        raise ApiError(503, "embedder_unavailable", f"the embedder failed: {exc}") from exc

    best_words = max((score for _, score in lexical), default=0.0)
    words = {rowid: score / best_words for rowid, score in lexical} if best_words else {}
    cosines = dict(near)
    if near:
        top, floor = near[0][1], near[-1][1]
        spread = top - floor
        meaning = {
            rowid: (min(max((c - floor) / spread, 0.0), 1.0) if spread > 0 else 1.0)
            for rowid, c in cosines.items()
        }
    else:
        meaning = {}
    candidates = list(dict.fromkeys([*words, *meaning, *anchored]))
    scored = sorted(
        (
            (
                (
                    MEANING_WEIGHT * meaning.get(rowid, 0.0)
                    + WORDS_WEIGHT * words.get(rowid, 0.0)
                    + ANCHOR_BONUS * anchored.get(rowid, 0.0)
                )
                / _SCALE,
                rowid,
            )
            for rowid in candidates
        ),
        key=lambda hit: (-hit[0], hit[1]),
    )
    page = scored[offset : offset + limit]
    rows = {}
    if page:
        dialect = dialect_of(conn)
        ids = dialect.one_of("m.rowid", [rowid for _, rowid in page])
        sql = f"SELECT {MEMORY_COLUMNS} FROM {dialect.by_rowid} WHERE {ids.sql} AND {where.sql}"
        rows = {r["rowid"]: r for r in conn.execute(sql, [*ids.params, *where.params])}
    return [(rows[rowid], max(score, 1e-6)) for score, rowid in page if rowid in rows]
