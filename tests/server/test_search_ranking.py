"""Recall ranking: stop words, the query length cap, the postings budget, scope and conversation neighbours."""

from __future__ import annotations

import random
import sqlite3

import pytest

from memlayer_integrations.server.backend import TextQuery
from memlayer_integrations.server.db import migrate
from memlayer_integrations.server.filters import compile_filters, scope_condition
from memlayer_integrations.server.search import (
    CANDIDATES,
    MAX_QUERY_TERMS,
    POSTINGS_BUDGET,
    build_match_query,
    query_terms,
    scope_word,
    search,
)
from memlayer_integrations.server.sqlite_text import FEW_MATCHES, FtsIndex, quote

from ._helpers import remember


@pytest.fixture
def conn() -> sqlite3.Connection:
    c = sqlite3.connect(":memory:", isolation_level=None)
    c.row_factory = sqlite3.Row
    migrate(c)
    return c


def _add(
    conn: sqlite3.Connection,
    contents: list[str],
    account_id: int = 1,
    user_id: str = "u1",
    session_id: str | None = None,
    agent_id: str = "bot",
    metadata: str = "{}",
) -> None:
    start = conn.execute("SELECT count(*) FROM memories").fetchone()[0]
    conn.executemany(
        "INSERT INTO memories (id, account_id, user_id, agent_id, session_id, content, metadata, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, 't', 't')",
        [
            (f"mem_{start + i}", account_id, user_id, agent_id, session_id, text, metadata)
            for i, text in enumerate(contents)
        ],
    )


def _search(
    conn: sqlite3.Connection, query: str, limit: int = 10, offset: int = 0, **scope
) -> list[str]:
    scope = {"user_id": "u1", "agent_id": None, "session_id": None, "filters": None} | scope
    hits = search(conn, 1, query, limit=limit, offset=offset, **scope)
    return [row["content"] for row, _ in hits]


def test_stop_words_and_single_letters_are_dropped_digits_kept():
    assert query_terms("When did Caroline go to the LGBTQ support group?") == [
        "caroline",
        "go",
        "lgbtq",
        "support",
        "group",
    ]
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
    # "likes" would take the rarer two past the budget: it only adds to their scores.
    assert build_match_query("likes green tea", counts.get, budget=2000) == '"green" OR "tea"'
    # Nothing over budget: the plain OR of every word.
    assert build_match_query("likes green tea", counts.get, budget=5000) == (
        '"likes" OR "green" OR "tea"'
    )
    # Even a word over budget on its own still chooses candidates when it is the rarest.
    assert build_match_query("likes", counts.get, budget=10) == '"likes"'


def test_stop_words_do_not_outrank_content(conn):
    _add(conn, ["what is it that you were there for", "Caroline went to the support group"])
    assert (
        _search(conn, "What is the support group Caroline went to?")[0]
        == "Caroline went to the support group"
    )


def test_search_with_budget_excludes_memories_with_only_common_words(conn):
    common = ["the user likes things"] * (POSTINGS_BUDGET + 5)
    _add(conn, [*common, "the user likes matcha", "matcha is green"])
    found = _search(conn, "likes matcha", limit=50)
    # "likes" alone matches over the budget: only memories with "matcha" are candidates.
    assert sorted(found) == ["matcha is green", "the user likes matcha"]


def test_common_words_are_still_found_below_the_budget(conn):
    _add(conn, ["the user likes things", "the user likes matcha"])
    assert sorted(_search(conn, "likes matcha")) == [
        "the user likes matcha",
        "the user likes things",
    ]


def test_budget_counts_never_cross_scopes_in_results(conn):
    _add(conn, ["matcha for someone else"], account_id=2)
    _add(conn, ["my matcha"])
    assert _search(conn, "matcha") == ["my matcha"]


def test_hostile_text_in_budgeted_query_is_valid(conn):
    _add(conn, ['"NEAR" AND (tea*) col:umn'] * 3)
    for text in ['"', "NEAR(a b)", "tea*", "col:umn", "a) OR (b", "NOT NOT"]:
        match = build_match_query(text, lambda term: POSTINGS_BUDGET + 1)
        if match is not None:
            conn.execute(
                "SELECT * FROM memories_fts WHERE memories_fts MATCH ?", (match,)
            ).fetchall()
        _search(conn, text)


def test_recall_over_http_ignores_stop_words(http):
    remember(http, "what do you want for dinner")
    remember(http, "Melanie painted a sunrise")
    hits = http.post(
        "/memories/search", json={"query": "What did Melanie paint?", "user_id": "u1"}
    ).json()["results"]
    assert [h["memory"]["content"] for h in hits] == ["Melanie painted a sunrise"]


def test_scope_word_matches_the_column_the_database_computes(conn):
    _add(conn, ["x"], user_id='ü/../"; DROP', agent_id="a b")
    stored = conn.execute("SELECT scope_terms FROM memories").fetchone()[0]
    assert stored.split() == [scope_word(1, 'ü/../"; DROP'), scope_word(1, 'ü/../"; DROP', "a b")]
    assert _search(conn, "x", user_id='ü/../"; DROP') == ["x"]
    assert _search(conn, "x", user_id='ü/../"; DROP', agent_id="a b") == ["x"]
    assert _search(conn, "x", user_id='ü/../"; DROP', agent_id="a") == []


def test_another_accounts_common_word_does_not_hide_a_users_memories(conn):
    # Counted over every account, "likes" would pass the budget and leave only the word
    # no one has ("zebra") to choose candidates: this user's memory would be missed.
    _add(conn, ["someone likes zebras"] * (POSTINGS_BUDGET + 5), account_id=2)
    _add(conn, ["the user likes coffee"])
    assert _search(conn, "likes zebra") == ["the user likes coffee"]


WEAK_MATCH = "an old note that mentions yoga and pose once among " + "unrelated words " * 100


def test_the_turn_after_a_matching_turn_is_lifted_within_its_conversation(conn):
    _add(
        conn,
        [
            "Melanie: How long do you hold that yoga pose?",
            "Caroline: About thirty to sixty seconds.",
        ],
        session_id="s1",
    )
    _add(conn, [WEAK_MATCH], session_id="s2")
    found = _search(conn, "How long to hold a yoga pose?")
    assert found == [
        "Melanie: How long do you hold that yoga pose?",
        "Caroline: About thirty to sixty seconds.",
        WEAK_MATCH,
    ]


def test_neighbours_never_pad_a_short_result(conn):
    _add(
        conn,
        [
            "Melanie: How long do you hold that yoga pose?",
            "Caroline: About thirty to sixty seconds.",
        ],
        session_id="s1",
    )
    assert _search(conn, "How long to hold a yoga pose?") == [
        "Melanie: How long do you hold that yoga pose?"
    ]


def test_no_neighbours_without_a_session(conn):
    _add(
        conn, ["How long do you hold that yoga pose?", "About thirty to sixty seconds.", WEAK_MATCH]
    )
    assert _search(conn, "hold the yoga pose") == [
        "How long do you hold that yoga pose?",
        WEAK_MATCH,
    ]


def test_neighbours_stay_in_their_session_agent_and_user(conn):
    _add(conn, ["we talked about the yoga pose"], session_id="s1")
    _add(conn, ["other session"], session_id="s2")
    _add(conn, ["other agent"], session_id="s1", agent_id="bot2")
    _add(conn, ["other user"], session_id="s1", user_id="u2")
    _add(conn, ["other account"], session_id="s1", account_id=2)
    _add(conn, [WEAK_MATCH], session_id="s3")
    assert _search(conn, "pose") == ["we talked about the yoga pose", WEAK_MATCH]


def test_a_neighbour_must_pass_the_request_filters(conn):
    _add(conn, ["tell me about the yoga pose"], session_id="s1", metadata='{"kind": "chat"}')
    _add(
        conn, ["secret follow-up", "secret again"], session_id="s1", metadata='{"kind": "private"}'
    )
    _add(conn, ["public, three turns on"], session_id="s1", metadata='{"kind": "chat"}')
    _add(conn, [WEAK_MATCH], session_id="s2", metadata='{"kind": "chat"}')
    chat = compile_filters({"kind": "chat"})
    assert _search(conn, "yoga pose", filters=chat) == ["tell me about the yoga pose", WEAK_MATCH]
    assert _search(conn, "yoga pose")[:2] == ["tell me about the yoga pose", "secret follow-up"]


def test_lent_score_halves_with_each_turn_and_stops_after_two(conn):
    _add(
        conn,
        ["before before", "before", "the question about yoga", "after", "after after", "too far"],
        session_id="s1",
    )
    _add(conn, [WEAK_MATCH], session_id="s2")
    hits = search(
        conn,
        1,
        "yoga",
        user_id="u1",
        agent_id=None,
        session_id=None,
        filters=None,
        limit=10,
        offset=0,
    )
    score = {row["content"]: s for row, s in hits}
    top, weak = score.pop("the question about yoga"), score.pop(WEAK_MATCH)
    assert top / 4 > weak
    assert score == pytest.approx(
        {"before": top / 2, "after": top / 2, "before before": top / 4, "after after": top / 4}
    )


def test_pages_past_the_candidates_neither_overlap_nor_skip(conn):
    # Turns alternate: a question with a shared word and a reply without it, so the
    # ranking mixes BM25 matches, lifted neighbours and (past CANDIDATES) plain matches.
    turns = []
    for i in range(CANDIDATES + 60):
        turns += [f"question {i} about yoga" + " filler" * (i % 7) * 10, f"reply {i}"]
    _add(conn, turns, session_id="s1")
    everything = [
        c for offset in range(0, 600, 100) for c in _search(conn, "yoga", limit=100, offset=offset)
    ]
    paged = [
        c for offset in range(0, 600, 30) for c in _search(conn, "yoga", limit=30, offset=offset)
    ]
    assert paged == everything
    assert len(set(everything)) == len(everything)
    # Every match is reachable; replies come back only when lifted above weaker questions.
    assert {c for c in everything if c.startswith("question")} == {
        t for t in turns if t.startswith("question")
    }
    assert 0 < sum(c.startswith("reply") for c in everything) <= 2 * CANDIDATES
    hits = search(
        conn,
        1,
        "yoga",
        user_id="u1",
        agent_id=None,
        session_id=None,
        filters=None,
        limit=100,
        offset=0,
    )
    scores = [score for _, score in hits]
    assert scores == sorted(scores, reverse=True)


def test_rare_words_that_miss_the_request_fall_back_to_every_match(conn):
    # "likes" is over the budget in this scope, "matcha" is rare but only in another
    # session: the candidates chosen by "matcha" all fail the request's session condition.
    _add(conn, ["the user likes things"] * (POSTINGS_BUDGET + 5), session_id="s1")
    _add(conn, ["matcha"], session_id="s2")
    assert _search(conn, "likes matcha", session_id="s1", limit=3) == ["the user likes things"] * 3


def test_a_word_that_matches_nothing_does_not_choose_the_candidates(conn):
    _add(conn, ["the user likes things"] * (POSTINGS_BUDGET + 5))
    assert _search(conn, "likes zebras", limit=2) == ["the user likes things"] * 2
    assert _search(conn, "zebras unicorns") == []


def test_a_question_of_only_common_words_ranks_the_newest_memories_holding_the_rarest(conn):
    _add(conn, ["an old tea note"])
    _add(conn, ["tea again and again, every tea time"] * (POSTINGS_BUDGET + 5))
    found = _search(conn, "tea", limit=100)
    assert len(found) == 100 and "an old tea note" not in found
    assert _search(conn, "old tea")[0] == "an old tea note"  # "old" is rare: plain candidates
    rows = search(
        conn,
        1,
        "tea",
        user_id="u1",
        agent_id=None,
        session_id=None,
        filters=None,
        limit=100,
        offset=0,
    )
    newest = conn.execute("SELECT max(rowid) FROM memories").fetchone()[0]
    assert min(row["rowid"] for row, _ in rows) > newest - POSTINGS_BUDGET


def test_a_scope_within_the_budget_is_plain_bm25_over_every_word(conn, monkeypatch):
    import memlayer_integrations.server.search as search_module

    monkeypatch.setattr(search_module, "POSTINGS_BUDGET", 10)
    # 10 memories: "alpha" in 8 and "beta" in 6 add up to more than the budget of 10, but
    # no more than 10 memories can match here, so nothing is left out of the candidates.
    _add(conn, ["alpha beta"] * 4 + ["alpha only"] * 4 + ["beta only"] * 2)
    found = _search(conn, "alpha beta")
    assert found[:4] == ["alpha beta"] * 4
    assert sorted(found[4:]) == ["alpha only"] * 4 + ["beta only"] * 2
    # One more memory and the scope is over the budget: the rarer word chooses the candidates.
    _add(conn, ["gamma"])
    assert "alpha only" not in _search(conn, "alpha beta")


def test_candidates_of_the_rare_words_alone_are_those_of_rare_and_any_word_and_counts(conn):
    # The candidate statement matches the rare words alone: the same rows, in the same
    # order, as matching them AND any word of the question (a rare word is one of them).
    rng = random.Random(3)
    words = ["tea", "cake", "plans", "cafe", "green", "likes", "rex", "zebra"]
    weights = [40, 30, 20, 10, 5, 3, 2, 1]
    _add(conn, [" ".join(rng.choices(words, weights, k=4)) for _ in range(POSTINGS_BUDGET + 300)])
    _add(conn, ["tea cake zebra"] * 30, account_id=2)
    text = FtsIndex()
    where = scope_condition(1, "u1", None, None)
    for terms, choose in [
        (["tea", "zebra"], ["zebra"]),
        (["cake", "rex", "zebra"], ["rex", "zebra"]),
        (["likes", "tea", "plans"], ["likes"]),
        (["green", "cafe"], ["cafe"]),
    ]:
        query = TextQuery(1, "u1", None, terms, choose)
        scope = quote(scope_word(1, "u1"))
        both = f"({' OR '.join(map(quote, choose))}) AND ({' OR '.join(map(quote, terms))})"
        expected = conn.execute(
            "SELECT m.rowid, m.content, length(m.content), m.session_id IS NOT NULL"
            " FROM memories_fts CROSS JOIN memories AS m ON m.rowid = memories_fts.rowid"
            " WHERE memories_fts MATCH ? AND memories_fts.rowid >= ? AND"
            f" {where.sql} ORDER BY memories_fts.rowid DESC LIMIT ?",
            [f"scope_terms : {scope} AND content : ({both})", 5, *where.params, 4000],
        ).fetchall()
        found = text.matches(conn, query, where, 5, 4000)
        assert sorted(map(tuple, found)) == sorted(map(tuple, expected))  # in any order
        assert 0 < len(found) < POSTINGS_BUDGET
    # More matches than the limit: the newest of them (read again newest first).
    newest = "SELECT rowid FROM memories_fts WHERE memories_fts MATCH ? ORDER BY rowid DESC"
    everything = [r[0] for r in conn.execute(newest, [f"scope_terms : {scope} AND content : tea"])]
    assert len(everything) > FEW_MATCHES >= POSTINGS_BUDGET  # recall's candidates: one read
    for limit in (100, FEW_MATCHES, len(everything) - 1, len(everything), len(everything) + 1):
        found = text.matches(conn, TextQuery(1, "u1", None, ["tea"]), where, 0, limit)
        assert sorted(r[0] for r in found) == sorted(everything[:limit])
    # Every word counted in one statement: each count as on its own, capped.
    for cap in (50, POSTINGS_BUDGET + 1):
        alone = [
            min(cap, len(text.holding(conn, TextQuery(1, "u1", None, [word])))) for word in words
        ]
        assert text.counts(conn, [TextQuery(1, "u1", None, [w]) for w in words], cap) == alone
        assert text.count(conn, TextQuery(1, "u1", None, ["rex"]), cap) == alone[6] > 0
    assert alone[0] == cap > alone[-1] > 0  # "tea" is in more than the cap, "zebra" fewer
