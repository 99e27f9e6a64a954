"""Tenant-independent ranking and opaque cursors: nothing an account gets back depends on
what another account stores.

Recall's results *and scores* are the same with and without another account's memories
(a Hypothesis property over generated memories and questions; the other account stores
the same words, more of them, and longer texts). A word another account stores or forgets
does not move a score (the "word oracle"). Scores read as a relevance in (0, 1), and a good
match on a young account is not printed as 0.0. Page cursors say nothing of the server's
write count and are valid only for the listing that handed them out.
"""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memlayer_integrations.server.db import migrate
from memlayer_integrations.server.search import search
from tests.server._helpers import assert_error, remember

WORDS = ["tea", "teas", "coffee", "green", "plan", "plans", "oslo", "yoga", "pose", "the", "a"]
TEXTS = st.lists(st.sampled_from(WORDS), min_size=1, max_size=12).map(" ".join)


def fresh() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.row_factory = sqlite3.Row
    migrate(conn)
    return conn


def store(conn: sqlite3.Connection, account: int, user: str, texts: list[str], session=None):
    for text in texts:
        n = conn.execute("SELECT count(*) FROM memories").fetchone()[0]
        conn.execute(
            "INSERT INTO memories (id, account_id, user_id, agent_id, session_id, content,"
            " created_at, updated_at) VALUES (?, ?, ?, 'bot', ?, ?, 't', 't')",
            (f"mem_{account}_{n}", account, user, session, text),
        )


def recall(conn: sqlite3.Connection, account: int, user: str, query: str) -> list:
    hits = search(
        conn,
        account,
        query,
        user_id=user,
        agent_id=None,
        session_id=None,
        filters=None,
        limit=20,
        offset=0,
    )
    return [(row["content"], row["created_at"], score) for row, score in hits]


@settings(
    max_examples=80,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    mine=st.lists(TEXTS, min_size=1, max_size=15),
    theirs=st.lists(TEXTS, min_size=1, max_size=40),
    query=TEXTS,
    interleave=st.booleans(),
    session=st.sampled_from([None, "s1"]),
)
def test_recall_is_the_same_whatever_another_account_stores(
    mine, theirs, query, interleave, session
):
    alone = fresh()
    store(alone, 1, "u", mine, session)
    crowded = fresh()
    if interleave:  # the other account writes between (and so shifts the rowids of) ours
        for i, text in enumerate(mine):
            store(crowded, 2, "u", theirs[i :: len(mine)] if i < len(theirs) else [])
            store(crowded, 1, "u", [text], session)
    else:
        store(crowded, 2, "u", theirs)
        store(crowded, 1, "u", mine, session)
    store(crowded, 1, "other user", theirs)  # and so does another user of our account
    assert recall(crowded, 1, "u", query) == recall(alone, 1, "u", query)


@pytest.fixture
def two_accounts(base_url, local_server) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    clients = [
        httpx.Client(base_url=base_url + "/v1", headers={"X-API-Key": local_server.create_key()})
        for _ in range(2)
    ]
    yield clients[0], clients[1]
    for c in clients:
        c.close()


def scores(http: httpx.Client, query: str) -> list[float]:
    hits = http.post("/memories/search", json={"query": query, "user_id": "u"}).json()
    return [h["score"] for h in hits["results"]]


def test_another_accounts_words_move_no_score(two_accounts):
    d, b = two_accounts
    remember(d, "the zyzzyva probe word", user_id="u")
    remember(d, "an unrelated note", user_id="u")
    before = scores(d, "zyzzyva")
    stored = [remember(b, f"zyzzyva zyzzyva {i}", user_id="u") for i in range(20)]
    assert scores(d, "zyzzyva") == before
    for memory in stored:
        b.delete(f"/memories/{memory['id']}")
    assert scores(d, "zyzzyva") == before


def test_scores_read_as_a_relevance_between_0_and_1(two_accounts):
    d, _ = two_accounts
    remember(d, "User is on the Pro plan", user_id="u")  # a fresh account's only memory
    [good] = scores(d, "which plan is the user on?")
    assert 0.1 < good < 1 and f"{good:.1f}" != "0.0"
    remember(d, "the plan: a Pro plan, plan details", user_id="u")
    remember(d, "lives in Oslo", user_id="u")
    ranked = scores(d, "pro plan")
    assert ranked == sorted(ranked, reverse=True) and all(0 < s < 1 for s in ranked)


def test_cursors_are_opaque_and_bound_to_their_listing(two_accounts):
    d, b = two_accounts
    for i in range(3):
        remember(d, f"note {i}", user_id="u", agent_id="a")
        remember(d, f"other {i}", user_id="v", agent_id="a")
    page = d.get("/memories", params={"user_id": "u", "limit": 1}).json()
    cursor = page["next_cursor"]
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    # No rowid in it: not as text, and not as a number (the server holds a few memories, so
    # a rowid is small; an enciphered one is a random 64-bit block, below 10**9 once in 10**10)
    assert len(raw) == 18  # an enciphered 8-byte block and a 10-byte tag
    assert int.from_bytes(raw[:8], "big") > 10**9
    # The same listing follows it ...
    follow = d.get("/memories", params={"user_id": "u", "limit": 1, "cursor": cursor})
    assert follow.json()["memories"][0]["content"] == "note 1"
    # ... no other listing, and no other account, accepts it.
    for params, client in [
        ({"user_id": "v"}, d),
        ({"user_id": "u", "agent_id": "a"}, d),
        ({"user_id": "u", "filters": '{"x": 1}'}, d),
        ({"user_id": "u"}, b),
    ]:
        r = client.get("/memories", params={**params, "cursor": cursor})
        assert_error(r, 422, "validation_error", "cursor")
    # Two cursors of one listing do not reveal how far apart their memories are.
    second = d.get("/memories", params={"user_id": "u", "limit": 2}).json()["next_cursor"]
    assert second != cursor and len(second) == len(cursor)


def test_within_one_scope_the_ranking_is_fts5s_bm25():
    """On an index holding one scope only, the per-scope BM25 picks the same best match as
    FTS5's own bm25() for every question (lengths are counted in characters rather than
    words, and common words keep a little weight, so lower ranks may differ)."""
    conn = fresh()
    texts = [
        "Melanie took the kids to the museum yesterday",
        "Melanie: I'm off to go swimming with the kids",
        "Caroline: Totally agree, I'm off to go do some research",
        "Caroline is researching adoption agencies for her family",
        "the kids loved the dinosaur museum and the science museum",
        "Melanie and Caroline talked about painting and pottery",
        "a long note " + "about nothing in particular " * 8 + "and one museum",
    ]
    store(conn, 1, "u", texts)
    for query in ["museum", "melanie museum", "research agencies", "go swimming", "pottery"]:
        ours = recall(conn, 1, "u", query)
        fts5 = conn.execute(
            "SELECT m.content FROM memories_fts JOIN memories AS m ON m.rowid = memories_fts.rowid"
            " WHERE memories_fts MATCH ? ORDER BY bm25(memories_fts, 1.0, 0.0), m.rowid",
            (" OR ".join(f'content:"{w}"' for w in query.split()),),
        ).fetchall()
        assert ours[0][0] == fts5[0][0], query
        assert {c for c, _, _ in ours} == {r[0] for r in fts5}


def test_each_matched_word_is_weighed_as_itself():
    """The score of a memory counts each word the index matched under that word's own
    weight, however many different words one recall stems at once."""
    import math

    from memlayer_integrations.server.scoring import K1, ScopeStats, Scorer

    words = ["zebras", "apples", "mangoes", "running", "quietly", "museums", "oslo", "tea"]
    frequencies = [1, 2, 3, 5, 8, 13, 21, 34]
    scorer = Scorer(words, frequencies, ScopeStats(size=100, avg_length=20.0))
    texts = [f"{w.capitalize()} and more" for w in words]
    for text, df in zip(texts, frequencies, strict=True):
        idf = math.log(1 + (100 - df + 0.5) / (df + 0.5))
        assert scorer.raw(text, 20) == pytest.approx(idf * (K1 + 1) / (1 + K1))
