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
  memory's text, tokenized by the index's own tokenizer (each distinct whitespace-separated
  chunk once per process, :func:`_chunk_tokens`), or counted by an index that keeps each
  memory's tokens (:meth:`Scorer.raw_counts`, the same scores).

``raw = sum(idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / avg_length)))`` ranks;
:func:`relevance` turns it into the ``score`` of the contract, ``1 - e^-raw``: in (0, 1),
higher is better, the same order. Other rankers (a vector similarity, say) can fuse with
:func:`relevance`, which is on the same scale as a similarity.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "K1",
    "B",
    "ScopeStats",
    "Scorer",
    "relevance",
    "scope_stats",
    "stems",
    "tokens",
]

#: BM25's term-frequency saturation and length normalization (the usual values).
K1 = 1.2
B = 0.75
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


#: Most chunks kept tokenized (a few MiB); past it the cache starts again.
_CHUNKS_KEPT = 100_000
_chunks: dict[str, tuple[str, ...]] = {}


def _chunk_tokens(texts: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """The process's cache of whitespace-separated chunks -> their tokens, holding every
    chunk of ``texts``.

    Whitespace separates tokens for the index's tokenizer too, so a text's tokens are its
    chunks' tokens, one after the other. Each distinct chunk is tokenized once, by the
    index's own tokenizer (:func:`stems`, one statement for all new chunks), and scoring a
    memory costs a few dict lookups instead of a ``highlight()`` of it in SQL. Shared by
    every thread (recalls run on a pool of them); it only ever maps a chunk to what the
    tokenizer makes of it, so no thread can see a wrong entry.
    """
    global _chunks
    cache = _chunks
    new = {c for text in texts for c in text.split() if c not in cache}
    if new:
        if len(cache) + len(new) > _CHUNKS_KEPT:
            cache = _chunks = {}
        ordered = sorted(new)
        cache.update(zip(ordered, stems(ordered), strict=True))
    return cache


def tokens(text: str) -> list[str]:
    """``text``'s tokens, in order, as the index's tokenizer makes them (stemmed, folded).

    Example:
        >>> tokens("Plans for the café")
        ['plan', 'for', 'the', 'cafe']
    """
    cache = _chunk_tokens([text])
    found: list[str] = []
    for chunk in text.split():
        part = cache.get(chunk)
        if part is None:  # the cache started again meanwhile
            cache = _chunk_tokens([chunk])
            part = cache[chunk]
        found.extend(part)
    return found


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
        # The words of a phrase the tokenizer cuts in several (rare: a query word is one
        # word to recall, and almost always one token to the index).
        self._phrases = [stem for stem in self._weights if len(stem) > 1]
        self._wanted = {token for stem in self._weights for token in stem}
        # Each chunk of text seen -> the weighed stems it holds (most hold none).
        self._keys: dict[str, tuple[tuple[str, ...], ...]] = {}

    def raw_all(self, memories: Sequence[tuple[str, int]]) -> list[float]:
        """The BM25 score of each memory, given as its content and length in characters."""
        scores = [self._raw(text, length) for text, length in memories]
        unseen = [i for i, score in enumerate(scores) if score is None]
        if unseen:
            _chunk_tokens(memories[i][0] for i in unseen)
        for i in unseen:
            while (score := self._raw(*memories[i])) is None:  # the cache started again
                _chunk_tokens([memories[i][0]])
            scores[i] = score
        return [score or 0.0 for score in scores]

    def raw(self, text: str, length: int) -> float:
        """The BM25 score of one memory: its content and its length in characters."""
        return self.raw_all([(text, length)])[0]

    @property
    def counted(self) -> tuple[str, ...] | None:
        """The tokens :meth:`raw_counts` scores from, in order: one per weighed word of the
        query. ``None`` when a word is a phrase (several tokens): how often a memory holds
        it depends on the order of its tokens, so it is scored from its content."""
        if self._phrases:
            return None
        return tuple(stem[0] for stem in self._weights)

    def raw_counts(self, memories: Sequence[tuple[Sequence[tuple[int, int]], int]]) -> list[float]:
        """The BM25 score of each memory, given as how often it holds the tokens of
        :attr:`counted` it holds (``(place in counted, count)`` pairs, in the order of
        ``counted``) and its length in characters: what :meth:`raw_all` scores from its
        content, equal to the last bit, without the content (an index that stores each
        memory's tokens can count them where they are)."""
        weights = list(self._weights.values())
        avg = self._avg
        scores = []
        for held, length in memories:
            norm = K1 * (1 - B + B * length / avg)
            score = 0.0
            for place, tf in held:  # raw_all's terms, in its order: the same sums
                score += weights[place] * tf * (K1 + 1) / (tf + norm)
            scores.append(score)
        return scores

    def _raw(self, text: str, length: int) -> float | None:
        """:meth:`raw`, or ``None`` if a chunk of ``text`` was never tokenized."""
        keys = self._keys
        counts: dict[tuple[str, ...], int] = {}
        if self._phrases:
            sequence = self._sequence(text)
            if sequence is None:
                return None
            for token in sequence:
                if token in self._wanted:
                    counts[(token,)] = counts.get((token,), 0) + 1
            for phrase in self._phrases:
                size = len(phrase)
                found = sum(
                    1
                    for i in range(len(sequence) - size + 1)
                    if tuple(sequence[i : i + size]) == phrase
                )
                if found:
                    counts[phrase] = found
        else:
            chunks = text.split()
            looked_up = list(map(keys.get, chunks))
            if None in looked_up:
                for i, chunk in enumerate(chunks):
                    if looked_up[i] is None:
                        looked_up[i] = self._chunk_keys(chunk)
                        if looked_up[i] is None:
                            return None
            for keys_found in looked_up:
                for key in keys_found or ():  # none is None past the loop above
                    counts[key] = counts.get(key, 0) + 1
        norm = K1 * (1 - B + B * length / self._avg)
        score = 0.0
        for stem, weight in self._weights.items():  # one order, so equal memories tie exactly
            tf = counts.get(stem)
            if tf:
                score += weight * tf * (K1 + 1) / (tf + norm)
        return score

    def _chunk_keys(self, chunk: str) -> tuple[tuple[str, ...], ...] | None:
        """The weighed one-token stems in ``chunk`` (``None``: never tokenized), kept."""
        tokens = _chunk_tokens(()).get(chunk)
        if tokens is None:
            return None
        found = self._keys[chunk] = tuple((t,) for t in tokens if t in self._wanted)
        return found

    def _sequence(self, text: str) -> list[str] | None:
        cache = _chunk_tokens(())
        sequence: list[str] = []
        for chunk in text.split():
            tokens = cache.get(chunk)
            if tokens is None:
                return None
            sequence.extend(tokens)
        return sequence
