"""The FTS5 text index: a scope's word is left out of a MATCH only when the index holds
nothing but that scope, and the counts and matches are the scope's either way."""

from __future__ import annotations

import sqlite3

import pytest

from memlayer_integrations.server.backend import TextQuery
from memlayer_integrations.server.db import migrate
from memlayer_integrations.server.filters import Filter
from memlayer_integrations.server.sqlite_text import FtsIndex, _holds_only, _varint

INDEX = FtsIndex()
EVERYWHERE = Filter("1", [])


@pytest.fixture
def conn() -> sqlite3.Connection:
    c = sqlite3.connect(":memory:", isolation_level=None)
    migrate(c)
    return c


def _add(conn: sqlite3.Connection, texts: list[str], user_id: str = "u1", agent_id: str = "bot"):
    start = conn.execute("SELECT count(*) FROM memories").fetchone()[0]
    conn.executemany(
        "INSERT INTO memories (id, account_id, user_id, agent_id, content, created_at, updated_at)"
        " VALUES (?, 1, ?, ?, ?, 't', 't')",
        [(f"mem_{start + i}", user_id, agent_id, text) for i, text in enumerate(texts)],
    )


def _query(words: list[str], user_id: str = "u1", agent_id: str | None = None) -> TextQuery:
    return TextQuery(1, user_id, agent_id, words)


def test_varints_decode_as_sqlite_writes_them():
    assert _varint(bytes([0x05])) == 5
    assert _varint(bytes([0x86, 0x8D, 0x20, 0xFF])) == 100_000
    assert _varint(bytes([0xFF] * 8 + [0x01])) == (2**56 - 1) << 8 | 1
    assert _varint(bytes([0x81])) is None


def test_a_scope_that_is_the_whole_index_is_matched_without_its_word(conn):
    _add(conn, ["tea and cake", "more tea", "coffee"])
    _add(conn, ["tea for the other agent"], agent_id="helper")
    assert _holds_only(conn, _query(["tea"]))
    assert not _holds_only(conn, _query(["tea"], agent_id="bot"))
    assert INDEX.counts(conn, [_query(["tea"]), _query(["cake"])], 100) == [3, 1]
    assert INDEX.counts(conn, [_query(["tea"], agent_id="bot")], 100) == [2]
    assert len(INDEX.matches(conn, _query(["tea"]), EVERYWHERE, 0, 100)) == 3


def test_another_scopes_memories_keep_the_scope_word_and_never_count(conn):
    _add(conn, ["tea and cake", "more tea"])
    _add(conn, ["tea", "tea again", "cake"], user_id="u2")
    assert not _holds_only(conn, _query(["tea"]))
    assert not _holds_only(conn, _query(["tea"], user_id="u2"))
    assert INDEX.counts(conn, [_query(["tea"]), _query(["cake"], user_id="u2")], 100) == [2, 1]
    assert INDEX.window_start(conn, _query(["tea"]), 1) == 2
    assert sorted(INDEX.holding(conn, _query(["tea"], user_id="u2"))) == [3, 4]
    assert INDEX.matches(conn, _query(["tea"]), EVERYWHERE, 0, 100)[0][0] == 2

    conn.execute("DELETE FROM memories WHERE user_id = 'u2'")
    assert _holds_only(conn, _query(["tea"]))
    assert INDEX.counts(conn, [_query(["tea"]), _query(["cake"], user_id="u2")], 100) == [2, 0]


def test_an_empty_index_holds_no_scope(conn):
    assert not _holds_only(conn, _query(["tea"]))
    assert INDEX.counts(conn, [_query(["tea"])], 100) == [0]
