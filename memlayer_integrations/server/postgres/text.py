"""Recall's full-text index on PostgreSQL: ``memories.tsv``, a GIN-indexed ``tsvector``.

PostgreSQL's own parsers and stemmers do not cut and stem words as SQLite's FTS5 Porter
tokenizer does, and recall must rank the same on both backends. So the server writes each
memory's tokens itself, as that tokenizer makes them (``scoring.tokens``, the tokenizer of
the standard library's SQLite), with their positions, into a ``tsvector``: PostgreSQL only
stores and intersects them. A question's words are stemmed the same way (``scoring.stems``)
into a ``tsquery``. A word of several tokens ("café-latte") is a phrase (``<->``), as FTS5
matches it.

Each memory also carries two lexemes naming its scope (``#`` + ``search.scope_word``: the
user's, and the user's with the agent), and every query ANDs the scope's one: GIN then
intersects the question's postings with that scope's, and what a recall counts never
depends on other scopes or accounts, exactly as on SQLite.

What recall's cost control asks of the index (``search.py``) is answered without visiting a
memory per match where it can be: how many memories of the scope hold a word comes from
``scope_words`` (per-scope counts of each lexeme, kept by triggers, ``schema.py``); the
newest matches come from the GIN index and a sort, or, when a word is in a large share of
the scope, from walking the scope's memories newest first (whichever the counts say is
cheaper; never from walking the whole table backwards, which the planner would choose when
it misjudges how many match).

Scoring reads no content (:meth:`TsvectorIndex.scored`): how often a match holds a word
of the question is how many positions its lexeme has in the tsvector, so the database
hands over only those lexemes of each match and ``Scorer.raw_counts`` scores them, to the
last bit as ``Scorer.raw_all`` scores the content. The content is read where a count may
be short (a cap below) and for a question with a phrase.

Limits of ``tsvector``: positions stop at 16383 and at 256 per lexeme (phrases are matched
within them), and a token over 2046 bytes is not indexed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..backend import TextIndex, TextQuery
from ..filters import Filter
from ..scoring import Scorer, stems, tokens
from ..sqlite_text import scope_word

__all__ = ["TsvectorIndex", "document", "scope_lexemes", "tsquery"]

_MAX_POSITION = 16383
_MAX_POSITIONS = 256
_MAX_LEXEME_BYTES = 2046
#: The last position as ``tsvector`` text shows it: every later token is there too.
_LAST_POSITION = str(_MAX_POSITION)
#: Newest first, in an order no index provides: the matches come from the GIN index (what
#: the scope's words hold, then a top-N sort), never from walking the primary key backwards
#: and testing every row of every account until enough match, which the planner picks when
#: it misjudges how many match (always, in a generic plan of a prepared statement).
_NEWEST_FIRST = "m.rowid + 0 DESC"


def _lexeme(token: str) -> str:
    return "'" + token.replace("\\", "\\\\").replace("'", "''") + "'"


def scope_lexemes(account_id: int, user_id: str, agent_id: str) -> list[str]:
    """The two scope lexemes of a memory of this scope."""
    return ["#" + scope_word(account_id, user_id), "#" + scope_word(account_id, user_id, agent_id)]


def document(content: str, scope: tuple[int, str, str]) -> str:
    """The ``tsvector`` text of a memory: its tokens with positions, and its scope lexemes.

    Example:
        >>> document("Plans, plans", (1, "u", "a"))
        "'plan':1,2 '#u1x75':1 '#a1x75y61':1"
    """
    positions: dict[str, list[int]] = {}
    for i, token in enumerate(tokens(content)):
        if len(token.encode()) > _MAX_LEXEME_BYTES:
            continue
        seen = positions.setdefault(token, [])
        if len(seen) < _MAX_POSITIONS:
            seen.append(min(i + 1, _MAX_POSITION))
    parts = [f"{_lexeme(t)}:{','.join(map(str, sorted(set(p))))}" for t, p in positions.items()]
    parts += [f"{_lexeme(word)}:1" for word in scope_lexemes(*scope)]
    return " ".join(parts)


def _indexable(tokens: Sequence[str]) -> bool:
    """Whether every one of ``tokens`` is in the tsvectors that hold it (a longer one is not
    indexed, see the module docstring)."""
    return all(len(token.encode()) <= _MAX_LEXEME_BYTES for token in tokens)


def _counts(held: str, places: dict[str, int]) -> Sequence[tuple[int, int]] | None:
    """``(place, count)`` of each token a memory holds, in the order of the places, from
    the ``tsvector`` text of its lexemes among them (``'plan':3A,7A 'tea':2A``; ``places``:
    each token's :func:`_lexeme` -> its place), or ``None`` where a count reached a cap of
    positions (it may be short)."""
    found = []
    for part in held.split(" ") if held else ():
        lexeme, _, positions = part.rpartition(":")
        n = positions.count(",") + 1
        if n >= _MAX_POSITIONS or _LAST_POSITION in positions:
            return None
        found.append((places[lexeme], n))
    if len(found) > 1:
        found.sort()  # the tsvector's order is the lexemes'
    return found


def _single_token(query: TextQuery) -> str | None:
    """The one token a query of one word, without a choice, asks for (``None``: not that)."""
    if query.choose is not None or len(query.terms) != 1:
        return None
    (stem,) = stems(list(query.terms))
    if len(stem) != 1 or not _indexable(stem):
        return None
    return stem[0]


def _any(terms: Sequence[str]) -> str | None:
    """ "Any of ``terms``" as a tsquery (``None``: no word has a token)."""
    alternatives = []
    for stem in stems(list(terms)):
        if stem:
            phrase = " <-> ".join(_lexeme(t) for t in stem)
            alternatives.append(f"({phrase})" if len(stem) > 1 else phrase)
    return " | ".join(alternatives) or None


def tsquery(query: TextQuery) -> str | None:
    """The ``tsquery`` text of ``query`` (``None``: it can match nothing).

    Example:
        >>> tsquery(TextQuery(1, "u", None, ["likes", "tea"], ["tea"]))
        "'#u1x75' & ('like' | 'tea') & ('tea')"
    """
    everything = _any(query.terms)
    if everything is None:
        return None
    scope = _lexeme("#" + scope_word(query.account_id, query.user_id, query.agent_id))
    expression = f"{scope} & ({everything})"
    if query.choose is not None:
        chosen = _any(query.choose)
        if chosen is None:
            return None
        expression += f" & ({chosen})"
    return expression


class TsvectorIndex(TextIndex):
    """:class:`~..backend.TextIndex` on ``memories.tsv``."""

    def count(self, conn: Any, query: TextQuery, cap: int) -> int:
        return self.counts(conn, [query], cap)[0]

    def counts(self, conn: Any, queries: Sequence[TextQuery], cap: int) -> list[int]:
        # A one-token word is looked up in scope_words (kept by triggers, schema.py): one
        # index probe, where the index would intersect postings and visit a heap page per
        # match. Anything else (a phrase, several words) asks the index, all in one statement.
        found: list[int | None] = [None] * len(queries)
        by_word: dict[tuple[int, str, str | None], dict[str, list[int]]] = {}
        asked: list[tuple[int, str]] = []
        for i, query in enumerate(queries):
            word = _single_token(query)
            if word is not None:
                scope = (query.account_id, query.user_id, query.agent_id)
                by_word.setdefault(scope, {}).setdefault(word, []).append(i)
                continue
            text = tsquery(query)
            if text is None:
                found[i] = 0
            else:
                asked.append((i, text))
        for (account_id, user_id, agent_id), words in by_word.items():
            sql = (
                "SELECT word, sum(memories) FROM scope_words"
                " WHERE account_id = ? AND user_id = ? AND word = ANY(?::text[])"
            )
            params: list[Any] = [account_id, user_id, list(words)]
            if agent_id is not None:
                sql += " AND agent_id = ?"
                params.append(agent_id)
            counted = dict(conn.execute(sql + " GROUP BY word", params).fetchall())
            for word, indexes in words.items():
                for i in indexes:
                    found[i] = min(cap, int(counted.get(word) or 0))
        if asked:
            sql = (
                "SELECT (SELECT count(*) FROM (SELECT 1 FROM memories WHERE tsv @@ q.text::tsquery"
                " LIMIT ?) AS hits) FROM unnest(?::text[]) WITH ORDINALITY AS q(text, i) ORDER BY q.i"
            )
            rows = conn.execute(sql, [cap, [text for _, text in asked]]).fetchall()
            for (i, _), row in zip(asked, rows, strict=True):
                found[i] = int(row[0])
        return [0 if n is None else n for n in found]

    def matches(
        self, conn: Any, query: TextQuery, where: Filter, since: int, limit: int
    ) -> list[Any]:
        text = tsquery(query)
        if text is None:
            return []
        sql = (
            "SELECT m.rowid, m.content, length(m.content), m.session_id IS NOT NULL"
            f" FROM memories AS m WHERE m.tsv @@ ?::tsquery AND m.rowid >= ? AND {where.sql}"
            f" ORDER BY {_NEWEST_FIRST} LIMIT ?"
        )
        # Plain tuples: recall reads these up to thousands of rows by position, which a
        # plain tuple does in C (the connection's rows also answer to column names).
        return [tuple(r) for r in conn.execute(sql, [text, since, *where.params, limit])]

    def scored(
        self, conn: Any, query: TextQuery, where: Filter, since: int, limit: int, scorer: Scorer
    ) -> list[tuple[int, float, bool]]:
        # The tsvector holds each memory's tokens with their positions, so how often a
        # memory holds a token is how many positions it has there: the database hands over
        # only the query's lexemes of each match (setweight marks them, ts_filter keeps
        # them), no content travels and nothing is tokenized again. A question with a
        # phrase is scored from the content (the order of tokens counts).
        wanted = scorer.counted
        text = tsquery(query)
        if wanted is None or text is None or not _indexable(wanted):
            return super().scored(conn, query, where, since, limit, scorer)
        # The subquery sorts and cuts first: the lexemes are read of the matches kept only.
        sql = (
            "SELECT c.rowid, c.length, c.in_session,"
            " ts_filter(setweight(c.tsv, 'A', ?::text[]), '{a}')::text"
            " FROM (SELECT m.rowid, length(m.content) AS length,"
            " m.session_id IS NOT NULL AS in_session, m.tsv FROM memories AS m"
            f" WHERE m.tsv @@ ?::tsquery AND m.rowid >= ? AND {where.sql}"
            f" ORDER BY {_NEWEST_FIRST} LIMIT ?) AS c"
        )
        rows = conn.execute(sql, [list(wanted), text, since, *where.params, limit]).fetchall()
        counted: list[tuple[int, bool]] = []
        counts: list[tuple[Sequence[tuple[int, int]], int]] = []
        capped: dict[int, tuple[int, bool]] = {}
        places = {_lexeme(token): i for i, token in enumerate(wanted)}
        # The same lexemes at the same positions are common ("'noah':1A"): each once.
        parsed: dict[str, Sequence[tuple[int, int]] | None] = {}
        for rowid, length, in_session, held in rows:
            if held in parsed:
                found = parsed[held]
            else:
                found = parsed[held] = _counts(held, places)
            if found is None:
                capped[rowid] = (length, in_session)
            else:
                counted.append((rowid, in_session))
                counts.append((found, length))
        raw = scorer.raw_counts(counts)
        hits = [(rowid, score, s) for (rowid, s), score in zip(counted, raw, strict=True)]
        if capped:
            # A count reached a cap of positions: those few are scored from their content.
            read = conn.execute(
                "SELECT rowid, content FROM memories WHERE rowid = ANY(?::bigint[])", [list(capped)]
            ).fetchall()
            raw = scorer.raw_all([(content, capped[rowid][0]) for rowid, content in read])
            hits += [(r[0], score, capped[r[0]][1]) for r, score in zip(read, raw, strict=True)]
        return hits

    def window_start(self, conn: Any, query: TextQuery, size: int) -> int:
        text = tsquery(query)
        if text is None:
            return 0
        # Two ways to the newest `size` matches: the index's matches, sorted (it visits
        # every memory holding the word), or the scope's memories newest first, tested one
        # by one (about size * scope / holding of them). The cheaper one, by the counts.
        walk = self._walk_length(conn, query, size)
        if walk is not None:
            # The inner LIMIT keeps the walk an ordered index scan of the scope.
            row = conn.execute(
                "SELECT rowid FROM (SELECT m.rowid, m.tsv FROM memories AS m"
                " WHERE m.account_id = ? AND m.user_id = ?"
                " ORDER BY m.account_id DESC, m.user_id DESC, m.rowid DESC LIMIT ?) AS newest"
                " WHERE tsv @@ ?::tsquery ORDER BY rowid DESC LIMIT 1 OFFSET ?",
                [query.account_id, query.user_id, walk, text, size - 1],
            ).fetchone()
            if row is not None:
                return int(row[0])
            # Not within the walk (the word is rarer among the newest): ask the index.
        row = conn.execute(
            "SELECT rowid FROM memories AS m WHERE tsv @@ ?::tsquery"
            f" ORDER BY {_NEWEST_FIRST} LIMIT 1 OFFSET ?",
            (text, size - 1),
        ).fetchone()
        return 0 if row is None else int(row[0])

    @staticmethod
    def _walk_length(conn: Any, query: TextQuery, size: int) -> int | None:
        """How many of the scope's newest memories to walk to find ``size`` matches of the
        query's word, or ``None`` if asking the index is cheaper."""
        word = _single_token(query)
        if word is None:
            return None
        agent = "" if query.agent_id is None else " AND agent_id = ?"
        scope: list[Any] = [query.account_id, query.user_id]
        scope += [] if query.agent_id is None else [query.agent_id]
        holding, memories = conn.execute(
            "SELECT (SELECT coalesce(sum(memories), 0) FROM scope_words"
            f" WHERE account_id = ? AND user_id = ? AND word = ?{agent}),"
            " (SELECT coalesce(sum(memories), 0) FROM scope_sizes"
            f" WHERE account_id = ? AND user_id = ?{agent})",
            [*scope[:2], word, *scope[2:], *scope],
        ).fetchone()
        holding, memories = int(holding), int(memories)
        if holding == 0:
            return None
        expected = size * memories // holding
        # Measured at 100k memories: a row tested on the walk (the newest rows, side by
        # side on few pages) costs about a quarter of one the index hands over (a page
        # each). Walk while that is cheaper, with a margin; then up to twice the expected.
        return 2 * expected if expected < 3 * holding else None

    def holding(self, conn: Any, query: TextQuery) -> list[int]:
        text = tsquery(query)
        if text is None:
            return []
        sql = "SELECT rowid FROM memories WHERE tsv @@ ?::tsquery"
        return [int(r[0]) for r in conn.execute(sql, (text,))]

    def matching(self, conn: Any, terms: Sequence[str], rowids: Sequence[int]) -> set[int]:
        text = _any(terms) if terms else None
        if not rowids or text is None:
            return set()
        sql = "SELECT rowid FROM memories WHERE rowid = ANY(?::bigint[]) AND tsv @@ ?::tsquery"
        return {int(r[0]) for r in conn.execute(sql, [list(rowids), text])}
