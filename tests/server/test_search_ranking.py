"""Recall ranking: stop words, the query length cap and the postings budget."""

from __future__ import annotations

import sqlite3

import pytest

from memlayer_integrations.server.db import migrate
from memlayer_integrations.server.search import (
    MAX_QUERY_TERMS,
    POSTINGS_BUDGET,
    build_match_query,
    query_terms,
    search,
)

from ._helpers import remember


@pytest.fixture
def conn() -> sqlite3.Connection:
    c = sqlite3.connect(":memory:", isolation_level=None)
    c.row_factory = sqlite3.Row
    migrate(c)
    return c


def _add(conn: sqlite3.Connection, contents: list[str], account_id: int = 1, user_id: str = "u1") -> None:
    start = conn.execute("SELECT count(*) FROM memories").fetchone()[0]
    conn.executemany(
        "INSERT INTO memories (id, account_id, user_id, agent_id, content, created_at, updated_at)"
        " VALUES (?, ?, ?, 'bot', ?, 't', 't')",
        [(f"mem_{start + i}", account_id, user_id, text) for i, text in enumerate(contents)],
    )


def _search(conn: sqlite3.Connection, query: str, limit: int = 10) -> list[str]:
    hits = search(conn, 1, query, user_id="u1", agent_id=None, session_id=None, filters=None, limit=limit, offset=0)
    return [row["content"] for row, _ in hits]


def test_stop_words_and_single_letters_are_dropped_digits_kept():
    assert query_terms("When did Caroline go to the LGBTQ support group?") == ["caroline", "go", "lgbtq", "support", "group"]
    assert query_terms("I have 3 kids, x") == ["3", "kids"]
    assert build_match_query("What's Tim's job?") == '"tim" OR "job"'


def test_only_stop_words_searches_them_all():
    assert build_match_query("Who is he?") == '"who" OR "is" OR "he"'
    assert build_match_query("a") == '"a"'


def test_no_searchable_word_is_none():
    assert build_match_query("?! ... 😀 _") is None


def test_at_most_max_query_terms_distinct_words():
    text = " ".join(f"w{i} w{i}" for i in range(100))
    terms = query_terms(text)
    assert terms == [f"w{i}" for i in range(MAX_QUERY_TERMS)]
    assert build_match_query(text).count(" OR ") == MAX_QUERY_TERMS - 1


def test_budget_keeps_rarest_words_as_candidates():
    counts = {"tea": 40, "green": 900, "likes": 3000}
    assert build_match_query("likes green tea", counts.get, budget=2000) == (
        '("green" OR "tea") AND ("likes" OR "green" OR "tea")'
    )
    # Nothing over budget: the plain OR.
    assert build_match_query("green tea", counts.get, budget=2000) == '"green" OR "tea"'
    # Even a word over budget on its own still chooses candidates when it is the rarest.
    assert build_match_query("likes", counts.get, budget=10) == '"likes"'


def test_stop_words_do_not_outrank_content(conn):
    _add(conn, ["what is it that you were there for", "Caroline went to the support group"])
    assert _search(conn, "What is the support group Caroline went to?")[0] == "Caroline went to the support group"


def test_search_with_budget_excludes_memories_with_only_common_words(conn):
    common = ["the user likes things"] * (POSTINGS_BUDGET + 5)
    _add(conn, common + ["the user likes matcha", "matcha is green"])
    found = _search(conn, "likes matcha", limit=50)
    # "likes" alone matches over the budget: only memories with "matcha" are candidates.
    assert sorted(found) == ["matcha is green", "the user likes matcha"]


def test_common_words_are_still_found_below_the_budget(conn):
    _add(conn, ["the user likes things", "the user likes matcha"])
    assert sorted(_search(conn, "likes matcha")) == ["the user likes matcha", "the user likes things"]


def test_budget_counts_never_cross_scopes_in_results(conn):
    _add(conn, ["matcha for someone else"], account_id=2)
    _add(conn, ["my matcha"])
    assert _search(conn, "matcha") == ["my matcha"]


def test_hostile_text_in_budgeted_query_is_valid(conn):
    _add(conn, ['"NEAR" AND (tea*) col:umn'] * 3)
    for text in ['"', "NEAR(a b)", "tea*", "col:umn", "a) OR (b", "NOT NOT"]:
        match = build_match_query(text, lambda term: POSTINGS_BUDGET + 1)
        if match is not None:
            conn.execute("SELECT * FROM memories_fts WHERE memories_fts MATCH ?", (match,)).fetchall()
        _search(conn, text)


def test_recall_over_http_ignores_stop_words(http):
    remember(http, "what do you want for dinner")
    remember(http, "Melanie painted a sunrise")
    hits = http.post("/memories/search", json={"query": "What did Melanie paint?", "user_id": "u1"}).json()["results"]
    assert [h["memory"]["content"] for h in hits] == ["Melanie painted a sunrise"]

