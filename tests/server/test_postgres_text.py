"""Recall's index on PostgreSQL (``server/postgres/text.py``): the per-scope word counts kept
by triggers agree with the index, both ways to a window of the newest matches find the
same memory, and matches scored from the tsvector's counts score as from their content."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from memlayer_integrations import MemLayerClient
from memlayer_integrations.server import LocalMemLayerServer
from memlayer_integrations.server.backend import TextIndex, TextQuery
from memlayer_integrations.server.filters import scope_condition
from memlayer_integrations.server.postgres import PostgresDatabase
from memlayer_integrations.server.postgres.schema import MIGRATIONS
from memlayer_integrations.server.postgres.text import TsvectorIndex, _counts, document, tsquery
from memlayer_integrations.server.scoring import ScopeStats, Scorer, scope_stats

from ._helpers import dump

RECOUNT = (
    "SELECT m.account_id, m.user_id, w.lexeme, m.agent_id, count(*) FROM memories AS m,"
    " unnest(m.tsv) AS w WHERE left(w.lexeme, 1) <> '#' GROUP BY 1, 2, 3, 4"
)
KEPT = "SELECT account_id, user_id, word, agent_id, memories FROM scope_words WHERE memories <> 0"


@pytest.fixture
def pg_url(postgres_cluster: Any) -> Iterator[str]:
    url: str = postgres_cluster.fresh()
    yield url
    postgres_cluster.cluster.drop_database(url)


def _rows(url: str, sql: str) -> set[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return set(conn.execute(sql).fetchall())


def test_scope_word_counts_follow_every_write(pg_url):
    with LocalMemLayerServer(pg_url) as server:
        key = server.create_key(plan="unlimited")
        with MemLayerClient(api_key=key, base_url=server.url) as client:
            client.remember_many(
                ["likes tea", "tea and plans", "plans, plans"], user_id="u", agent_id="default"
            )
            kept = client.remember("likes coffee", user_id="u", agent_id="other", key="drink")
            client.remember("likes green tea", user_id="u", agent_id="other", key="drink")
            client.remember("café-latte at noon", user_id="v", agent_id="a")
            gone = client.remember("forget me soon", user_id="v", agent_id="a")
            client.forget(gone.id)
            assert kept.id
    counted = _rows(pg_url, KEPT)
    assert counted == _rows(pg_url, RECOUNT)
    assert ("u", "tea", "default", 2) in {row[1:] for row in counted}


def test_the_migration_counts_the_words_of_memories_already_stored(empty_pg_url):
    with psycopg.connect(empty_pg_url) as conn:
        conn.execute(MIGRATIONS[0])
        conn.execute("CREATE TABLE memlayer_schema (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO memlayer_schema VALUES (1)")
        conn.execute("INSERT INTO accounts (id, plan, created_at) VALUES (1, 'free', 'x')")
        for i, text in enumerate(["likes tea", "tea, tea and plans"]):
            conn.execute(
                "INSERT INTO memories (id, account_id, user_id, agent_id, content, created_at,"
                " updated_at, tsv) VALUES (%s, 1, 'u', 'a', %s, 'x', 'x', %s::tsvector)",
                (f"m{i}", text, document(text, (1, "u", "a"))),
            )
    db = PostgresDatabase(empty_pg_url)
    try:
        assert db.migrate() == (1, len(MIGRATIONS))
    finally:
        db.close()
    assert _rows(empty_pg_url, KEPT) == _rows(empty_pg_url, RECOUNT)
    assert (1, "u", "tea", "a", 2) in _rows(empty_pg_url, KEPT)


@pytest.fixture
def empty_pg_url(postgres_cluster: Any) -> Iterator[str]:
    url: str = postgres_cluster.cluster.create_database()
    yield url
    postgres_cluster.cluster.drop_database(url)


def _scope_of_400(url: str) -> int:
    """400 memories of user ``u``: ``common`` in every other one, ``rare`` in 8 spread out,
    ``old`` in the oldest 100 only; the account's id."""
    texts = []
    for i in range(400):
        words = [f"memory number {i}"]
        words += ["common"] if i % 2 else []
        words += ["rare"] if i % 50 == 7 else []
        words += ["old"] if i < 100 else []
        texts.append(" ".join(words))
    with LocalMemLayerServer(url) as server:
        key = server.create_key(plan="unlimited")
        with MemLayerClient(api_key=key, base_url=server.url) as client:
            for i in range(0, 400, 100):
                client.remember_many(texts[i : i + 100], user_id="u", agent_id="a")
            client.remember_many(["common elsewhere"] * 5, user_id="w", agent_id="a")
    return int(next(iter(_rows(url, "SELECT account_id FROM memories LIMIT 1")))[0])


@pytest.mark.parametrize("agent_id", [None, "a"])
def test_counts_and_windows_agree_with_the_index_however_they_are_found(pg_url, agent_id):
    account = _scope_of_400(pg_url)
    index = TsvectorIndex()
    words = ["common", "rare", "old", "café-latte", "absent", "number"]
    db = PostgresDatabase(pg_url)
    try:
        with db.read() as conn:
            queries = [TextQuery(account, "u", agent_id, [word]) for word in words]
            truth = []
            for query in queries:
                text = tsquery(query)
                sql = "SELECT count(*) FROM memories WHERE tsv @@ %s::tsquery"
                truth.append(0 if text is None else conn.raw.execute(sql, (text,)).fetchone()[0])
            assert truth[:3] == [200, 8, 100]
            assert index.counts(conn, queries, 150) == [min(150, n) for n in truth]
            assert index.count(conn, queries[0], 1000) == 200
            for query in queries:
                for size in (1, 10, 50, 150):
                    text = tsquery(query)
                    expected = 0
                    if text is not None:
                        newest = conn.raw.execute(
                            "SELECT rowid FROM memories WHERE tsv @@ %s::tsquery"
                            " ORDER BY rowid DESC LIMIT 1 OFFSET %s",
                            (text, size - 1),
                        ).fetchone()
                        expected = 0 if newest is None else newest[0]
                    assert index.window_start(conn, query, size) == expected, (query, size)
    finally:
        db.close()


def test_the_walk_through_a_scope_is_chosen_only_where_it_is_cheaper(pg_url):
    account = _scope_of_400(pg_url)
    db = PostgresDatabase(pg_url)
    try:
        with db.read() as conn:

            def walk(word: str, size: int) -> int | None:
                return TsvectorIndex._walk_length(conn, TextQuery(account, "u", None, [word]), size)

            assert walk("common", 10) == 40  # 20 expected of 400, half of them hold it
            assert walk("rare", 10) is None  # 500 to walk for 8 the index hands over
            assert walk("absent", 10) is None
            assert walk("café-latte", 10) is None  # a phrase: only the index knows
    finally:
        db.close()


def _scored_both_ways(conn: Any, account: int, words: list[str]) -> tuple[list[Any], list[Any]]:
    """The matches of ``words`` in user ``u``'s memories, scored from the tsvector's counts
    and from the content: ``(counted, read)``, each sorted by rowid."""
    index = TsvectorIndex()
    query = TextQuery(account, "u", None, words)
    frequencies = index.counts(conn, [TextQuery(account, "u", None, [w]) for w in words], 1001)
    scorer = Scorer(words, frequencies, scope_stats(conn, account, "u", None))
    where = scope_condition(account, "u", None, None)
    counted = index.scored(conn, query, where, 0, 100, scorer)
    read = TextIndex.scored(index, conn, query, where, 0, 100, scorer)
    return sorted(counted), sorted(read)


def test_scores_counted_in_the_tsvector_equal_scores_of_the_content(pg_url):
    texts = [
        "tea and green tea",
        "green plans",
        "tea " * 300,  # past the 256 positions a lexeme keeps
        "1 " * 16382 + "tea",  # "tea" at the last position a tsvector keeps
        "café-latte with tea",
        "Plans, plans and more PLANS for tea",
    ]
    with LocalMemLayerServer(pg_url) as server:
        key = server.create_key(plan="unlimited")
        with MemLayerClient(api_key=key, base_url=server.url) as client:
            client.remember_many(texts, user_id="u", agent_id="a")
            client.remember_many(["tea elsewhere"] * 3, user_id="w", agent_id="a")
    account = int(next(iter(_rows(pg_url, "SELECT account_id FROM memories LIMIT 1")))[0])
    db = PostgresDatabase(pg_url)
    try:
        with db.read() as conn:
            for words in (["tea"], ["green", "tea"], ["plans", "tea", "absent"], ["café-latte"]):
                counted, read = _scored_both_ways(conn, account, words)
                assert counted == read, words
                assert counted and all(score > 0 for _, score, _ in counted)
            counted, _ = _scored_both_ways(conn, account, ["tea"])
            assert len(counted) == 5
    finally:
        db.close()


def test_counts_are_read_from_the_query_lexemes_of_a_tsvector():
    places = {"'tea'": 0, "'plan'": 1}
    assert _counts("'plan':3A,7A 'tea':2A", places) == [(0, 1), (1, 2)]
    assert _counts("'plan':2A", places) == [(1, 1)]
    assert _counts("", places) == []
    # A count at a cap may be short: the caller reads the content instead.
    assert _counts("'tea':" + ",".join(f"{i}A" for i in range(1, 257)), places) is None
    assert _counts("'plan':1A,16383A", places) is None


def test_a_scorer_scores_counts_as_it_scores_the_content():
    stats = ScopeStats(size=50, avg_length=30.0)
    scorer = Scorer(["plans", "tea", "zebra"], [4, 9, 0], stats)
    assert scorer.counted == ("plan", "tea")
    texts = ["Plans, plans and tea", "tea", "nothing here", "PLAN " * 40]
    counts = [[(0, 2), (1, 1)], [(1, 1)], [], [(0, 40)]]
    assert scorer.raw_counts(
        [(c, len(t)) for c, t in zip(counts, texts, strict=True)]
    ) == scorer.raw_all([(t, len(t)) for t in texts])
    assert Scorer(["café-latte"], [3], stats).counted is None  # a phrase: scored from text


SIZES = "SELECT account_id, user_id, agent_id, memories, chars FROM scope_sizes WHERE memories <> 0"
RESIZE = (
    "SELECT account_id, user_id, agent_id, count(*), sum(length(content)) FROM memories"
    " GROUP BY 1, 2, 3"
)
ACCOUNTS = "SELECT id, memory_count FROM accounts WHERE memory_count <> 0"
RECOUNT_ACCOUNTS = "SELECT account_id, count(*) FROM memories GROUP BY 1"


def test_counts_follow_statements_of_many_rows(pg_url, tmp_path):
    """An import writes many memories a statement (more than one statement's worth here,
    over two accounts and three scopes); a batch writes up to 64 a statement. The counts,
    added up per statement by migration 3's trigger, equal a count of the rows, and the
    memories keep the dump's order."""
    import io

    from memlayer_integrations.server.backend import open_backend
    from memlayer_integrations.server.transfer import import_dump

    source = tmp_path / "source.db"
    words = ["tea", "plans", "coffee", "noon", "dog", "garden", "piano", "café"]
    with LocalMemLayerServer(source) as server:
        for name, scopes in (("alice", ("a", "b")), ("bob", ("a",))):
            key = server.create_key(plan="unlimited", name=name)
            with MemLayerClient(api_key=key, base_url=server.url) as client:
                for n, agent in enumerate(scopes):
                    client.remember_many(
                        [f"{words[i % 8]} {words[(i * 3 + n) % 8]} {i}" for i in range(100)],
                        user_id="u",
                        agent_id=agent,
                    )

    first = dump(source)
    db = open_backend(pg_url)
    try:
        assert import_dump(db, io.BytesIO(first)).added["memories"] == 300
    finally:
        db.close()
    assert dump(pg_url) == first
    with LocalMemLayerServer(pg_url) as server:
        key = server.create_key(plan="unlimited")
        with MemLayerClient(api_key=key, base_url=server.url) as client:
            client.remember_many([f"{w} later" for w in words * 10], user_id="u", agent_id="c")
    assert _rows(pg_url, KEPT) == _rows(pg_url, RECOUNT)
    assert _rows(pg_url, SIZES) == _rows(pg_url, RESIZE)
    assert _rows(pg_url, ACCOUNTS) == _rows(pg_url, RECOUNT_ACCOUNTS)
    assert len(_rows(pg_url, SIZES)) == 4
