"""Recall queries are plain text: nothing a user types reaches FTS5 syntax."""

from __future__ import annotations

import sqlite3

import pytest

from memlayer_integrations.server.search import MAX_QUERY_TERMS, build_match_query

from ._helpers import remember

HOSTILE = [
    '"',
    '""',
    "'",
    '"unbalanced',
    "AND",
    "OR",
    "NOT",
    "a AND",
    "OR b",
    "NOT NOT",
    "NEAR(a b, 2)",
    "NEAR",
    "*",
    "tea*",
    "^tea",
    "content:tea",
    "col:",
    ":",
    "(",
    ")",
    "((tea)",
    "a) OR (b",
    "{a b}",
    "-tea",
    "+tea",
    "😀",
    "🍵 tea 🍵",
    "\u200b",
    "\x00tea",
    "tea\\",
    "%",
    "_",
    "tea; DROP TABLE memories; --",
    "' OR 1=1 --",
    "\u0301",
    "ﬁ",
    "İstanbul",
    "日本語のお茶",
]


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_queries_never_fail(http, query):
    remember(http, "The user likes tea, AND coffee OR NOT: content* (NEAR) 🍵 日本語のお茶")
    r = http.post("/memories/search", json={"query": query, "user_id": "u1"})
    assert r.status_code == 200, r.text
    assert isinstance(r.json()["results"], list)


@pytest.mark.parametrize("query", HOSTILE)
def test_every_match_expression_is_valid_fts5(query):
    conn = sqlite3.connect(":memory:")
    conn.execute(
        "CREATE VIRTUAL TABLE t USING fts5(content, tokenize='porter unicode61 remove_diacritics 2')"
    )
    conn.execute("INSERT INTO t VALUES ('tea and coffee')")
    match = build_match_query(query)
    if match is not None:
        conn.execute("SELECT * FROM t WHERE t MATCH ?", (match,)).fetchall()


def test_operators_are_words_not_syntax(http):
    remember(http, "near the river")
    remember(http, "cats and dogs")
    hits = http.post("/memories/search", json={"query": "NEAR", "user_id": "u1"}).json()["results"]
    assert [h["memory"]["content"] for h in hits] == ["near the river"]
    hits = http.post("/memories/search", json={"query": "AND", "user_id": "u1"}).json()["results"]
    assert [h["memory"]["content"] for h in hits] == ["cats and dogs"]


def test_punctuation_only_query_has_no_results(http):
    remember(http, "anything")
    assert http.post("/memories/search", json={"query": "?!... 😀", "user_id": "u1"}).json() == {
        "results": []
    }


def test_build_match_query():
    assert build_match_query('what "plan" is NEAR(me)*?') == '"plan" OR "near"'
    assert build_match_query("Tea tea TEA") == '"tea"'
    assert build_match_query("  ") is None
    assert (
        build_match_query(" ".join(f"w{i}" for i in range(500))).count(" OR ")
        == MAX_QUERY_TERMS - 1
    )


def test_recall_filters(http):
    remember(http, "ticket one", metadata={"topic": "billing", "priority": 1, "open": True})
    remember(
        http,
        "ticket two",
        metadata={"topic": "billing", "priority": 3, "open": False, "status": "closed"},
    )
    remember(http, "ticket three", metadata={"topic": "travel", "priority": 4.5, "status": None})
    remember(http, "ticket four", metadata={"priority": "5"})
    remember(http, "ticket five", metadata={'we"ird.key$': 1})

    def contents(filters):
        r = http.post(
            "/memories/search",
            json={"query": "ticket", "user_id": "u1", "filters": filters, "limit": 100},
        )
        assert r.status_code == 200, r.text
        return sorted(h["memory"]["content"] for h in r.json()["results"])

    assert contents({"topic": "billing"}) == ["ticket one", "ticket two"]
    assert contents({"priority": {"$gte": 2, "$lt": 5}}) == ["ticket three", "ticket two"]
    assert contents({"priority": {"$gt": 4}}) == [
        "ticket three"
    ]  # "5" is a string: never matches a number
    assert contents({"priority": {"$eq": "5"}}) == ["ticket four"]
    assert (
        contents({"status": {"$ne": "closed"}}) == []
    )  # absent keys and null never match $ne "closed"
    assert contents({"status": None}) == ["ticket three"]
    assert contents({"status": {"$ne": None}}) == ["ticket two"]
    assert contents({"open": True}) == ["ticket one"]
    assert contents({"open": {"$ne": True}}) == ["ticket two"]
    assert contents({"priority": 1}) == ["ticket one"]
    assert contents({"priority": 1.0}) == ["ticket one"]
    assert contents({"topic": "billing", "priority": 3}) == ["ticket two"]
    assert contents({'we"ird.key$': 1}) == ["ticket five"]
    assert contents({"$.topic": "billing"}) == []
    assert contents({"topic') OR 1=1 --": "x"}) == []
