"""Why a recalled memory came back, for a recall that asks (``"explain": true``).

People looking at what an agent remembers ask "why did *that* come back?". Ranking
(``search.py``) gives a memory a score for two reasons: it shares words with the question
(BM25 over a Porter-stemmed index), or it is a turn next to such a memory in the same
conversation, which lends it a share of its score. This module reconstructs both from the
same index, after ranking and only for the returned page, so a recall that does not ask
pays nothing and the ranking code stays free of bookkeeping:

* ``matched_words``: the question's searchable words (as :func:`search.query_terms` keeps
  them) that the memory's content matches, stemmed as the index stems them ("plans"
  matches "plan").
* ``neighbour_of``: the id of the nearest memory at most ``NEIGHBOUR_REACH`` turns away in
  the same conversation (user, agent and ``session_id``) that matches one of the words,
  i.e. the one lending it score; ``None`` if there is none.

A result with neither came back for a reason this module does not know of.
"""

from __future__ import annotations

from typing import Any

from .backend import dialect_of
from .search import NEIGHBOUR_REACH, query_terms

__all__ = ["explain"]

_AROUND = (
    "SELECT rowid, id FROM memories WHERE account_id = ? AND user_id = ? AND agent_id = ?"
    " AND session_id = ? AND rowid {op} ? ORDER BY rowid {order} LIMIT ?"
)


def _around(conn: Any, row: Any) -> list[tuple[int, str]]:
    """``(rowid, id)`` of the turns at most ``NEIGHBOUR_REACH`` away from ``row``, nearest first."""
    scope = (row["account_id"], row["user_id"], row["agent_id"], row["session_id"])
    before = conn.execute(
        _AROUND.format(op="<", order="DESC"), [*scope, row["rowid"], NEIGHBOUR_REACH]
    ).fetchall()
    after = conn.execute(
        _AROUND.format(op=">", order="ASC"), [*scope, row["rowid"], NEIGHBOUR_REACH]
    ).fetchall()
    nearest: list[tuple[int, str]] = []
    for distance in range(NEIGHBOUR_REACH):
        for side in (before, after):
            if distance < len(side):
                nearest.append((side[distance][0], side[distance][1]))
    return nearest


def explain(conn: Any, query: str, rows: list[Any]) -> list[dict[str, Any]]:
    """One ``{"matched_words": [...], "neighbour_of": id | None}`` per row, in order.

    ``rows`` are full ``memories`` rows (with ``rowid`` and ``account_id``), as
    :func:`search.search` returns them.
    """
    terms = query_terms(query)
    text = dialect_of(conn).text
    rowids = [row["rowid"] for row in rows]
    words: dict[int, list[str]] = {rowid: [] for rowid in rowids}
    for term in terms:
        for rowid in text.matching(conn, [term], rowids):
            words[rowid].append(term)
    around = {row["rowid"]: _around(conn, row) for row in rows if row["session_id"] is not None}
    candidates = sorted({rowid for turns in around.values() for rowid, _ in turns})
    lenders = text.matching(conn, terms, candidates)
    explained = []
    for row in rows:
        lender = next((mid for rid, mid in around.get(row["rowid"], []) if rid in lenders), None)
        explained.append({"matched_words": words[row["rowid"]], "neighbour_of": lender})
    return explained
