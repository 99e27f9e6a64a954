"""Lexical scores that depend on one scope's memories only, and read as a relevance in (0, 1).

FTS5's own ``bm25()`` weighs a word by how many memories of the *whole index* hold it, and
normalizes lengths by the whole index's average: every account's score for a word moved
when another account stored or forgot it, which told one tenant what another stores. And
on a young account almost every word is "common" to BM25, so its weights were clamped to
1e-6 and good matches printed as ``0.0``.

So recall scores memories itself, with BM25 over the scope being searched (the user's
memories, or the user's with one agent):

- ``N``: memories in the scope, and their average length in characters (``scope_sizes``,
  kept by triggers);
- a word's document frequency ``df``: memories of the scope holding it (counted inside the
  scope, capped at the recall's postings budget);
- ``idf = ln(1 + (N - df + 0.5) / (df + 0.5))``, positive however common the word
  (Lucene's variant), and ``tf``, how often the memory holds the word, read from FTS5's
  ``highlight()`` of the match, stemmed by the same tokenizer as the index.

``raw = sum(idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / avg_length)))`` ranks;
:func:`relevance` turns it into the ``score`` of the contract, ``1 - e^-raw``: in (0, 1),
higher is better, the same order. Other rankers (a vector similarity, say) can fuse with
:func:`relevance`, which is on the same scale as a similarity.
"""

from __future__ import annotations

import math
import re
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "HIGHLIGHT",
    "K1",
    "B",
    "ScopeStats",
    "Scorer",
    "relevance",
    "scope_stats",
    "stems",
]

#: BM25's term-frequency saturation and length normalization (the usual values).
K1 = 1.2
B = 0.75
_OPEN, _CLOSE = "\x01", "\x02"
#: The SQL that marks each matched word of a memory's content (``memories_fts`` column 0).
HIGHLIGHT = "highlight(memories_fts, 0, char(1), char(2))"
_SPAN = re.compile(f"{_OPEN}(.*?){_CLOSE}", re.S)
# Must be the index's tokenizer (db.py), so stems compare equal to what FTS5 matched.
_TOKENIZER = "porter unicode61 remove_diacritics 2"


def relevance(raw: float) -> float:
    """The contract's ``score`` for a raw BM25 score: ``1 - e^-raw``, in (0, 1), same order.

    Example:
        >>> round(relevance(2.0), 3)
        0.865
    """
    return max(-math.expm1(-raw), 5e-324)


@dataclass(frozen=True)
class ScopeStats:
    """How many memories a scope holds, and their average length in characters."""

    size: int
    avg_length: float


def scope_stats(
    conn: sqlite3.Connection, account_id: int, user_id: str, agent_id: str | None
) -> ScopeStats:
    """The scope's :class:`ScopeStats`, from ``scope_sizes`` (kept by triggers, see ``db.py``)."""
    sql = (
        "SELECT coalesce(sum(memories), 0), coalesce(sum(chars), 0) FROM scope_sizes"
        " WHERE account_id = ? AND user_id = ?"
    )
    params: list[object] = [account_id, user_id]
    if agent_id is not None:
        sql += " AND agent_id = ?"
        params.append(agent_id)
    size, chars = conn.execute(sql, params).fetchone()
    return ScopeStats(size, chars / size if size else 0.0)


_local = threading.local()


def _scratch() -> sqlite3.Connection:
    """A per-thread in-memory FTS5 table with the index's tokenizer, to stem words with."""
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = sqlite3.connect(":memory:", isolation_level=None)
        conn.execute(f"CREATE VIRTUAL TABLE words USING fts5(w, tokenize='{_TOKENIZER}')")
        conn.execute("CREATE VIRTUAL TABLE tokens USING fts5vocab(words, 'instance')")
        _local.conn = conn
    return conn


def stems(words: Sequence[str]) -> list[tuple[str, ...]]:
    """Each of ``words`` as the index's tokenizer sees it: its tokens, stemmed and folded.

    Example:
        >>> stems(["Plans", "café-latte"])
        [('plan',), ('cafe', 'latt')]
    """
    conn = _scratch()
    conn.execute("BEGIN")
    try:
        conn.executemany("INSERT INTO words (rowid, w) VALUES (?, ?)", enumerate(words, 1))
        found: dict[int, list[str]] = {}
        for doc, term in conn.execute("SELECT doc, term FROM tokens ORDER BY doc, offset"):
            found.setdefault(doc, []).append(term)
    finally:
        conn.execute("ROLLBACK")
    return [tuple(found.get(i, ())) for i in range(1, len(words) + 1)]


class Scorer:
    """BM25 of one query over one scope (module docstring).

    Args:
        terms: the query's words, as they were quoted into the MATCH expression.
        frequencies: each word's document frequency in the scope (0: not scored).
        stats: the scope's size and average length.
    """

    def __init__(self, terms: Sequence[str], frequencies: Sequence[int], stats: ScopeStats):
        self._weights: dict[tuple[str, ...], float] = {}
        n = max(stats.size, 1)
        for stem, df in zip(stems(terms), frequencies, strict=True):
            if stem and df > 0:
                self._weights[stem] = math.log(1 + (n - df + 0.5) / (df + 0.5))
        self._avg = stats.avg_length or 1.0
        self._stems: dict[str, tuple[str, ...]] = {}

    def prepare(self, highlighted: Iterable[str]) -> None:
        """Stem, in one go, every matched word in these highlighted memories."""
        new = {s for text in highlighted for s in _SPAN.findall(text)} - set(self._stems)
        if new:
            ordered = sorted(new)
            self._stems.update(zip(ordered, stems(ordered), strict=True))

    def raw(self, highlighted: str, length: int) -> float:
        """The BM25 score of one memory: its ``highlight()`` and its length in characters."""
        counts: dict[tuple[str, ...], int] = {}
        for span in _SPAN.findall(highlighted):
            stem = self._stems.get(span)
            if stem is None:
                self.prepare([highlighted])
                stem = self._stems[span]
            # A span is one phrase's match; adjacent matches of one-word phrases may share one.
            for key in [stem] if stem in self._weights else [(token,) for token in stem]:
                counts[key] = counts.get(key, 0) + 1
        norm = K1 * (1 - B + B * length / self._avg)
        return sum(
            weight * tf * (K1 + 1) / (tf + norm)
            for stem, weight in self._weights.items()
            if (tf := counts.get(stem, 0))
        )
