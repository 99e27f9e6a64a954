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
  chunk once per process, :class:`_Chunks`), or counted by an index that keeps each
  memory's tokens (:meth:`Scorer.raw_counts`, the same scores), or by :func:`held`, which
  finds a question's words in a small scope's memories without the index (``scan.py``).

``raw = sum(idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / avg_length)))`` ranks;
:func:`relevance` turns it into the ``score`` of the contract, ``1 - e^-raw``: in (0, 1),
higher is better, the same order. Other rankers (a vector similarity, say) can fuse with
:func:`relevance`, which is on the same scale as a similarity.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "K1",
    "B",
    "ScopeStats",
    "Scorer",
    "held",
    "relevance",
    "scope_stats",
    "stems",
    "tokens",
]

#: BM25's term-frequency saturation and length normalization (the usual values).
K1 = 1.2
B = 0.75
# Must be the index's tokenizer (sqlite_schema.py), so stems compare equal to what FTS5 matched.
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
    """The scope's :class:`ScopeStats`, from ``scope_sizes`` (kept by triggers, see
    ``sqlite_schema.py``)."""
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


# Put between texts cut in one call (Scorer.raw_all): a chunk no text is expected to hold.
_SEPARATOR = "\x00\x01\x00"
_APART = f" {_SEPARATOR} "

#: Most chunks kept tokenized (a few MiB with the reverse map); past it the cache starts again.
_CHUNKS_KEPT = 100_000


class _Chunks:
    """Whitespace-separated chunks of text -> their tokens, and each token -> the chunks
    holding it.

    Whitespace separates tokens for the index's tokenizer too, so a text's tokens are its
    chunks' tokens, one after the other. Each distinct chunk is tokenized once, by the
    index's own tokenizer (:func:`stems`, one statement for all new chunks), and scoring a
    memory costs a few dict lookups instead of a ``highlight()`` of it in SQL. The reverse
    map lets a :class:`Scorer` find the few chunks that hold a query's words up front,
    instead of looking at every chunk of every memory. Entries are only ever added, and
    only under ``_lock``; when the cache is full a new one replaces it, so a cache handed
    out keeps every chunk it was asked for.
    """

    def __init__(self) -> None:
        self.tokens: dict[str, tuple[str, ...]] = {}
        self.holders: dict[str, set[str]] = {}

    def add(self, chunks: Iterable[str], tokens: Iterable[tuple[str, ...]]) -> None:
        for chunk, found in zip(chunks, tokens, strict=True):
            self.tokens[chunk] = found
            for token in found:
                self.holders.setdefault(token, set()).add(chunk)

    def holding(self, wanted: Iterable[str]) -> set[str]:
        """The chunks holding any of the ``wanted`` tokens."""
        with _lock:
            return set().union(*(self.holders.get(token, ()) for token in wanted))


_lock = threading.Lock()
_cache = _Chunks()


def _tokenized(chunks: set[str]) -> _Chunks:
    """The process's chunk cache (:class:`_Chunks`), holding every one of ``chunks``.

    Shared by every thread (recalls run on a pool of them); it only ever maps a chunk to
    what the tokenizer makes of it, so no thread can see a wrong entry.
    """
    global _cache
    seen = _cache
    new = chunks.difference(seen.tokens)
    if not new:
        return seen
    ordered = sorted(new)
    fresh = dict(zip(ordered, stems(ordered), strict=True))
    with _lock:
        cache = _cache
        if len(cache.tokens) + len(new) > _CHUNKS_KEPT:
            cache = _cache = _Chunks()
        # What ``seen`` held but a cache started again meanwhile lacks, too.
        missing = list(chunks.difference(cache.tokens))
        cache.add(missing, [fresh[c] if c in fresh else seen.tokens[c] for c in missing])
    return cache


def tokens(text: str) -> list[str]:
    """``text``'s tokens, in order, as the index's tokenizer makes them (stemmed, folded).

    Example:
        >>> tokens("Plans for the café")
        ['plan', 'for', 'the', 'cafe']
    """
    chunks = text.split()
    cache = _tokenized(set(chunks)).tokens
    return [token for chunk in chunks for token in cache[chunk]]


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
        # A query word holds no whitespace: it is one chunk, most often tokenized already.
        known = _tokenized(set(terms)).tokens
        for stem, df in zip([known[t] for t in terms], frequencies, strict=True):
            if stem and df > 0:
                self._weights[stem] = math.log(1 + (n - df + 0.5) / (df + 0.5))
        self._avg = stats.avg_length or 1.0
        # The words of a phrase the tokenizer cuts in several (rare: a query word is one
        # word to recall, and almost always one token to the index).
        self._phrases = [stem for stem in self._weights if len(stem) > 1]
        self._wanted = {token for stem in self._weights for token in stem}

    def raw_all(self, memories: Sequence[tuple[str, int]]) -> list[float]:
        """The BM25 score of each memory, given as its content and length in characters."""
        if self._phrases:
            return self._raw_each(memories)
        # All the texts cut in one call, a separator chunk between them: a recall scores
        # hundreds of short memories, and one split, one set and one filter over all their
        # chunks cost less than a split and a filter per memory (at 100k memories, ~660 of
        # them: 1.55 -> 1.1 ms). Should a text hold the separator, each is cut on its own.
        joined = _APART.join(text for text, _ in memories)
        if joined.count(_SEPARATOR) != len(memories) - 1:
            return self._raw_each(memories)
        every = joined.split()
        chunks = set(every)
        chunks.discard(_SEPARATOR)
        cache = _tokenized(chunks)
        # The chunks holding a weighed word -> those words, once per time they hold it. Most
        # chunks hold none: a memory's score is worked out from the list of its chunks that
        # hold any, and memories share a few such lists (and lengths).
        keys: dict[str, tuple[tuple[str, ...], ...]] = {
            chunk: tuple((t,) for t in cache.tokens[chunk] if t in self._wanted)
            for chunk in cache.holding(self._wanted) & chunks
        }
        if not keys:
            return [0.0] * len(memories)
        kept = {_SEPARATOR, *keys}
        # Each memory's chunks holding a word, as one string (" a b "), in the texts' order.
        held = " ".join(filter(kept.__contains__, every)).split(_SEPARATOR)
        pairs = list(zip(held, [length for _, length in memories], strict=True))
        terms_of: dict[str, list[tuple[float, int]]] = {}
        score_of: dict[tuple[str, int], float] = {}
        for found, length in set(pairs):
            terms = terms_of.get(found)
            if terms is None:
                terms = terms_of[found] = self._terms(tuple(found.split()), keys)
            score_of[found, length] = self._sum(terms, length)
        return list(map(score_of.__getitem__, pairs))

    def _raw_each(self, memories: Sequence[tuple[str, int]]) -> list[float]:
        """:meth:`raw_all`, each memory's text cut on its own (a phrase's occurrences
        depend on the order of all its tokens)."""
        split = [text.split() for text, _ in memories]
        cache = _tokenized(set().union(*split))
        counted = [self._phrase_counts(words, cache.tokens) for words in split]
        return [
            self._score(counts, length)
            for counts, (_, length) in zip(counted, memories, strict=True)
        ]

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
        # raw_all's terms, in its order: the same sums.
        return [
            self._sum([(weights[place] * tf * (K1 + 1), tf) for place, tf in held], length)
            for held, length in memories
        ]

    def _terms(
        self, found: tuple[str, ...], keys: dict[str, tuple[tuple[str, ...], ...]]
    ) -> list[tuple[float, int]]:
        counts: dict[tuple[str, ...], int] = {}
        for chunk in found:
            for key in keys[chunk]:
                counts[key] = counts.get(key, 0) + 1
        return self._numerators(counts)

    def _numerators(self, counts: dict[tuple[str, ...], int]) -> list[tuple[float, int]]:
        """``(weight * tf * (K1 + 1), tf)`` of each weighed word a memory holds, in the
        weights' one order, so equal memories tie exactly (what :meth:`_sum` adds up)."""
        return [
            (weight * tf * (K1 + 1), tf)
            for stem, weight in self._weights.items()
            if (tf := counts.get(stem, 0))
        ]

    def _phrase_counts(
        self, chunks: list[str], cache: dict[str, tuple[str, ...]]
    ) -> dict[tuple[str, ...], int]:
        sequence = [token for chunk in chunks for token in cache[chunk]]
        counts: dict[tuple[str, ...], int] = {}
        for token in sequence:
            if token in self._wanted:
                counts[(token,)] = counts.get((token,), 0) + 1
        for phrase in self._phrases:
            found = _occurrences(sequence, phrase)
            if found:
                counts[phrase] = found
        return counts

    def _score(self, counts: dict[tuple[str, ...], int], length: int) -> float:
        return self._sum(self._numerators(counts), length)

    def _sum(self, terms: Iterable[tuple[float, int]], length: int) -> float:
        """BM25 of one memory of ``length`` characters from its :meth:`_numerators`: the
        one place the sum is written, so every way of counting gives the same float."""
        norm = K1 * (1 - B + B * length / self._avg)
        score = 0.0
        for numerator, tf in terms:
            score += numerator / (tf + norm)
        return score


#: Most texts kept as bags of tokens (:func:`held`), with the texts themselves: about 9 MiB
#: for memories of 50 characters. Past it the cache starts again.
_BAGS_KEPT = 20_000
_bags: dict[str, dict[str, int]] = {}


def _bagged(texts: Sequence[str]) -> list[dict[str, int]]:
    """Each of ``texts`` as its tokens and how often it holds each, from a per-process
    cache: a small scope is read whole at every recall (``scan.py``), and most of its
    memories were read, and their tokens counted, at the one before."""
    global _bags
    bags = _bags
    found = [bags.get(text) for text in texts]
    if None not in found:
        return found  # type: ignore[return-value]  # no None left
    missing = {text for text, bag in zip(texts, found, strict=True) if bag is None}
    split = {text: text.split() for text in missing}
    cache = _tokenized(set().union(*split.values())).tokens
    new: dict[str, dict[str, int]] = {
        text: Counter(token for chunk in chunks for token in cache[chunk])
        for text, chunks in split.items()
    }
    if len(bags) + len(new) > _BAGS_KEPT:
        bags = _bags = {}
    bags.update(new)
    return [new[text] if bag is None else bag for text, bag in zip(texts, found, strict=True)]


def _occurrences(sequence: Sequence[str], phrase: tuple[str, ...]) -> int:
    """How often ``phrase`` occurs in ``sequence`` (a text's tokens), as FTS5 counts a
    phrase: at every position, overlapping occurrences included."""
    size = len(phrase)
    return sum(
        1 for i in range(len(sequence) - size + 1) if tuple(sequence[i : i + size]) == phrase
    )


def held(
    texts: Sequence[str], stems: Iterable[tuple[str, ...]]
) -> dict[int, dict[tuple[str, ...], int]]:
    """How often each of ``texts`` holds each of ``stems`` (a word's tokens, one after the
    other), counted as FTS5 counts a phrase: what a memory matches, without the index.

    Only the texts holding a stem are in the answer (by their place in ``texts``), with
    only the stems they hold. Tokens are the index's (the chunk cache, :class:`_Chunks`,
    as :class:`Scorer` reads them); an empty stem (a word the tokenizer drops) is held by
    none, as FTS5's empty phrase matches nothing.

    Example:
        >>> held(["Plans and plans", "tea", "a plan for tea"], [("plan",), ("plan", "for")])
        {0: {('plan',): 2}, 2: {('plan',): 1, ('plan', 'for'): 1}}
    """
    stems = [stem for stem in dict.fromkeys(stems) if stem]
    if not stems:
        return {}
    singles = [stem[0] for stem in stems if len(stem) == 1]
    phrases = [stem for stem in stems if len(stem) > 1]
    wanted = set(singles).union(*phrases)
    found: dict[int, dict[tuple[str, ...], int]] = {}
    for place, bag in enumerate(_bagged(texts)):
        if bag.keys().isdisjoint(wanted):  # most memories hold no word of the question
            continue
        counts: dict[tuple[str, ...], int] = {
            (token,): n for token in singles if (n := bag.get(token, 0))
        }
        for phrase in phrases:
            if bag.keys() >= set(phrase):
                n = _occurrences(tokens(texts[place]), phrase)
                if n:
                    counts[phrase] = n
        if counts:
            found[place] = counts
    return found
