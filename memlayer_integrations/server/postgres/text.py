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

Limits of ``tsvector``: positions stop at 16383 and at 256 per lexeme (phrases are matched
within them), and a token over 2046 bytes is not indexed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..backend import TextIndex, TextQuery
from ..filters import Filter
from ..scoring import stems, tokens
from ..sqlite_text import scope_word

__all__ = ["TsvectorIndex", "document", "scope_lexemes", "tsquery"]

_MAX_POSITION = 16383
_MAX_POSITIONS = 256
_MAX_LEXEME_BYTES = 2046


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
        text = tsquery(query)
        if text is None:
            return 0
        sql = (
            "SELECT count(*) FROM (SELECT 1 FROM memories WHERE tsv @@ ?::tsquery LIMIT ?) AS hits"
        )
        return int(conn.execute(sql, (text, cap)).fetchone()[0])

    def counts(self, conn: Any, queries: Sequence[TextQuery], cap: int) -> list[int]:
        # One statement for all the words of a question: one round trip, not one a word.
        texts = [tsquery(query) for query in queries]
        asked = [text for text in texts if text is not None]
        if not asked:
            return [0] * len(texts)
        sql = (
            "SELECT (SELECT count(*) FROM (SELECT 1 FROM memories WHERE tsv @@ q.text::tsquery"
            " LIMIT ?) AS hits) FROM unnest(?::text[]) WITH ORDINALITY AS q(text, i) ORDER BY q.i"
        )
        found = iter([int(r[0]) for r in conn.execute(sql, [cap, asked])])
        return [0 if text is None else next(found) for text in texts]

    def matches(
        self, conn: Any, query: TextQuery, where: Filter, since: int, limit: int
    ) -> list[Any]:
        text = tsquery(query)
        if text is None:
            return []
        sql = (
            "SELECT m.rowid, m.content, length(m.content), m.session_id IS NOT NULL"
            f" FROM memories AS m WHERE m.tsv @@ ?::tsquery AND m.rowid >= ? AND {where.sql}"
            " ORDER BY m.rowid DESC LIMIT ?"
        )
        return list(conn.execute(sql, [text, since, *where.params, limit]).fetchall())

    def window_start(self, conn: Any, query: TextQuery, size: int) -> int:
        text = tsquery(query)
        if text is None:
            return 0
        row = conn.execute(
            "SELECT rowid FROM memories WHERE tsv @@ ?::tsquery ORDER BY rowid DESC LIMIT 1 OFFSET ?",
            (text, size - 1),
        ).fetchone()
        return 0 if row is None else int(row[0])

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
