"""Recall by meaning: a server with an embedder (a deterministic stand-in here; the real
model is exercised in test_semantic_model.py)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from memlayer_integrations.server import LocalMemLayerServer
from memlayer_integrations.server import vectors as vectors_module
from memlayer_integrations.server.backend import open_backend

from ._embedding import ConceptEmbedder
from ._helpers import assert_error, remember


@pytest.fixture
def embedder() -> ConceptEmbedder:
    return ConceptEmbedder()


@pytest.fixture
def server(db_location: Any, embedder: ConceptEmbedder) -> Iterator[LocalMemLayerServer]:
    """A server with an embedder, on each backend (vectors are stored by both)."""
    with LocalMemLayerServer(db_location, embedder=embedder) as srv:
        yield srv


@pytest.fixture
def http(server: LocalMemLayerServer) -> Iterator[httpx.Client]:
    key = server.create_key(plan="unlimited")
    with httpx.Client(base_url=server.url + "/v1", headers={"X-API-Key": key}) as client:
        yield client


def recall(http: httpx.Client, query: str, **fields: Any) -> list[dict[str, Any]]:
    body = {"query": query, "user_id": "u1", **fields}
    response = http.post("/memories/search", json=body)
    assert response.status_code == 200, response.text
    return response.json()["results"]


def contents(results: list[dict[str, Any]]) -> list[str]:
    return [r["memory"]["content"] for r in results]


def vector_rows(server: LocalMemLayerServer) -> list[tuple[int, int]]:
    db = open_backend(server.settings.db_path)
    try:
        with db.read() as conn:
            rows = conn.execute("SELECT seq, memory_rowid FROM memory_vectors ORDER BY seq")
            return [tuple(row) for row in rows]
    finally:
        db.close()


FACTS = [
    "I start every day with green tea",
    "I traded the sedan for an electric SUV",
    "My dog Rex hates the vacuum cleaner",
    "Meeting with Petra about the quarterly budget",
]


def load(http: httpx.Client, texts: list[str] = FACTS, **fields: Any) -> list[dict[str, Any]]:
    items = [{"content": t} for t in texts]
    body = {"items": items, "user_id": "u1", "agent_id": "bot", **fields}
    response = http.post("/memories/batch", json=body)
    assert response.status_code == 201, response.text
    return response.json()["memories"]


def test_a_question_sharing_no_word_finds_the_memory_it_means(http: httpx.Client) -> None:
    load(http)
    assert contents(recall(http, "what does she drink?"))[0] == FACTS[0]
    assert contents(recall(http, "which vehicle do I own?"))[0] == FACTS[1]


def test_recall_returns_the_top_limit_of_the_scope_even_when_no_word_matches(
    http: httpx.Client,
) -> None:
    load(http)
    results = recall(http, "zzz qqq", limit=3)
    assert len(results) == 3
    assert len(recall(http, "zzz qqq", limit=10)) == len(FACTS)
    assert recall(http, "zzz qqq", user_id="nobody") == []


def test_scores_are_between_0_and_1_best_first(http: httpx.Client) -> None:
    load(http)
    for query in ("what does she drink?", "Petra", "zzz"):
        scores = [r["score"] for r in recall(http, query, limit=10)]
        assert all(0 < s <= 1 for s in scores)
        assert scores == sorted(scores, reverse=True)


def test_a_rare_word_or_number_ranks_its_memory_first_over_a_closer_meaning(
    http: httpx.Client,
) -> None:
    """The stand-in cannot see digits and puts the drink memories closest to the question;
    the memory naming the order number must still come first."""
    load(http, [*FACTS, "Espresso or tea, any drink is fine", "Order 4471 shipped on Monday"])
    assert contents(recall(http, "which drink came in order 4471?"))[0] == (
        "Order 4471 shipped on Monday"
    )


def test_a_name_ranks_its_memory_first_in_a_scope_full_of_the_meaning(http: httpx.Client) -> None:
    load(http, [f"Day {i}: I drink tea with lunch" for i in range(60)] + FACTS)
    assert contents(recall(http, "what does Petra drink?"))[0] == FACTS[3]


def test_memories_are_embedded_once_at_write_time_in_batches(
    http: httpx.Client, embedder: ConceptEmbedder, server: LocalMemLayerServer
) -> None:
    load(http)
    assert embedder.calls == {"documents": len(FACTS), "queries": 0}
    assert len(vector_rows(server)) == len(FACTS)
    recall(http, "tea")
    assert embedder.calls == {"documents": len(FACTS), "queries": 1}


def test_a_key_replaced_with_the_same_text_keeps_its_vector(
    http: httpx.Client, embedder: ConceptEmbedder, server: LocalMemLayerServer
) -> None:
    remember(http, "I drink green tea", key="drink")
    before = vector_rows(server)
    remember(http, "I drink green tea", key="drink", metadata={"v": 2})
    assert vector_rows(server) == before
    assert embedder.calls["documents"] == 2  # embedded before the transaction, then kept
    remember(http, "I drive an SUV", key="drink")
    assert vector_rows(server) != before
    assert contents(recall(http, "what vehicle?"))[0] == "I drive an SUV"


def test_forget_update_and_forget_all_keep_meaning_search_in_step(http: httpx.Client) -> None:
    memories = load(http)
    assert contents(recall(http, "beverage", limit=1)) == [FACTS[0]]
    assert http.delete(f"/memories/{memories[0]['id']}").status_code == 204
    assert FACTS[0] not in contents(recall(http, "beverage", limit=10))
    dog = memories[2]["id"]
    assert http.patch(f"/memories/{dog}", json={"content": "I drink espresso"}).status_code == 200
    assert contents(recall(http, "beverage", limit=1)) == ["I drink espresso"]
    assert "I drink espresso" not in contents(recall(http, "puppy", limit=1))
    response = http.delete("/memories", params={"user_id": "u1"})
    assert response.json()["deleted"] == 3
    assert recall(http, "beverage") == []
    load(http, ["coffee please"])
    assert contents(recall(http, "beverage")) == ["coffee please"]


def test_session_filters_and_agents_bound_what_meaning_returns(http: httpx.Client) -> None:
    load(http, ["I drink green tea"], session_id="s1")
    load(http, ["I drink black coffee"], session_id="s2")
    body = {"items": [{"content": "water only", "metadata": {"kind": "x"}}], "user_id": "u1"}
    assert http.post("/memories/batch", json={**body, "agent_id": "other"}).status_code == 201
    assert contents(recall(http, "beverage", session_id="s2")) == ["I drink black coffee"]
    assert contents(recall(http, "beverage", filters={"kind": "x"})) == ["water only"]
    assert contents(recall(http, "beverage", agent_id="other")) == ["water only"]
    assert len(recall(http, "beverage", limit=10)) == 3  # every agent of the user
    assert recall(http, "beverage", user_id="u2") == []


def test_pages_of_a_recall_never_overlap(http: httpx.Client) -> None:
    load(http, [f"note {i} about tea and the car" for i in range(30)] + FACTS)
    seen: list[str] = []
    for offset in range(0, 34, 7):
        seen += [r["memory"]["id"] for r in recall(http, "drink", limit=7, offset=offset)]
    assert len(seen) == len(set(seen)) == 34


def test_a_text_without_words_is_stored_but_not_embedded(
    http: httpx.Client, server: LocalMemLayerServer
) -> None:
    remember(http, "\u2060")
    remember(http, "tea")
    assert len(vector_rows(server)) == 1
    assert contents(recall(http, "beverage", limit=10)) == ["tea"]


def test_a_failing_embedder_answers_503_and_stores_nothing(
    http: httpx.Client, embedder: ConceptEmbedder
) -> None:
    embedder.fail = True
    body = {"content": "I drink tea", "user_id": "u1", "agent_id": "bot"}
    assert_error(http.post("/memories", json=body), 503, "embedder_unavailable")
    assert_error(
        http.post("/memories/search", json={"query": "tea", "user_id": "u1"}),
        503,
        "embedder_unavailable",
    )
    embedder.fail = False
    assert http.get("/memories", params={"user_id": "u1"}).json()["memories"] == []
    # Counted: the list above and this usage request; not the two refused.
    assert http.get("/usage").json()["requests_today"] == 2


class LocalConceptEmbedder(ConceptEmbedder):
    """The stand-in, declared an in-process model; records the threads that embed questions."""

    local = True

    def __init__(self) -> None:
        super().__init__()
        self.query_threads: list[str] = []

    def _embed(self, texts: list[str], *, query: bool) -> Any:
        if query:
            self.query_threads.append(threading.current_thread().name)
        return super()._embed(texts, query=query)


def test_a_local_models_question_is_embedded_on_the_worker_while_the_words_are_searched(
    tmp_path: Any,
) -> None:
    embedder = LocalConceptEmbedder()
    with LocalMemLayerServer(tmp_path / "m.db", embedder=embedder) as srv:
        key = srv.create_key(plan="unlimited")
        with httpx.Client(base_url=srv.url + "/v1", headers={"X-API-Key": key}) as http:
            load(http)
            assert contents(recall(http, "what does she drink?"))[0] == FACTS[0]
            assert embedder.query_threads and all(
                name.startswith("memlayer-embed") for name in embedder.query_threads
            )
            embedder.fail = True
            body = {"query": "which vehicle?", "user_id": "u1"}
            assert_error(http.post("/memories/search", json=body), 503, "embedder_unavailable")
            embedder.fail = False
            # Counted (see Embedder.local): the batch, the recall, the refused recall, this.
            assert http.get("/usage").json()["requests_today"] == 4
            assert contents(recall(http, "which vehicle?"))[0] == FACTS[1]


def test_the_vectors_are_scanned_on_the_worker_after_the_question_as_nearest_scans_them(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = LocalConceptEmbedder()
    with LocalMemLayerServer(tmp_path / "m.db", embedder=embedder) as srv:
        key = srv.create_key(plan="unlimited")
        with httpx.Client(base_url=srv.url + "/v1", headers={"X-API-Key": key}) as http:
            load(http)
    scans: list[str] = []
    scan = vectors_module._scan

    def recording_scan(*args: Any) -> Any:
        scans.append(threading.current_thread().name)
        return scan(*args)

    monkeypatch.setattr(vectors_module, "_scan", recording_scan)
    index = vectors_module.SemanticIndex(embedder)
    db = open_backend(tmp_path / "m.db")
    try:
        with db.read() as conn:
            account = conn.execute("SELECT account_id FROM memory_vectors").fetchone()[0]
            question = index.start_query("what does she drink?")
            later = index.start_nearest(conn, account, "u1", None, question, 3)
            expected = index.nearest(conn, account, "u1", "bot", question.result(), 3)
            assert later.result() == expected and len(expected) == 3
    finally:
        db.close()
        index.close()
    # One scan on the worker (start_nearest), one on this thread (nearest), in either order.
    assert sorted(name.startswith("memlayer-embed") for name in scans) == [False, True]
    assert threading.current_thread().name in scans


def test_a_scopes_snapshot_keeps_its_rows_while_the_scope_grows() -> None:
    rng = np.random.default_rng(3)
    rows = rng.standard_normal((70, 8)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    blobs = [r.tobytes() for r in rows]
    index = vectors_module.SemanticIndex(ConceptEmbedder())
    scope = index._append(None, (64, 0), list(range(1, 65)), list(range(1, 65)), blobs[:64])
    snapshot = index._snapshot(scope)
    before = vectors_module._top(snapshot, rows[66], 5, None)
    index._append(scope, (70, 0), list(range(65, 71)), list(range(65, 71)), blobs[64:])
    assert scope.size == 70 and snapshot.size == 64
    assert vectors_module._top(snapshot, rows[66], 5, None) == before
    assert vectors_module._top(scope, rows[66], 1, None)[0][0] == 67


def test_a_repeated_question_is_embedded_once(
    http: httpx.Client, embedder: ConceptEmbedder
) -> None:
    load(http)
    first = recall(http, "what does she drink?")
    assert recall(http, "what does she drink?") == first
    recall(http, "which vehicle do I own?")
    assert embedder.calls["queries"] == 2


def test_the_recent_questions_kept_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vectors_module, "QUERIES_KEPT", 2)
    embedder = ConceptEmbedder()
    index = vectors_module.SemanticIndex(embedder)
    for text in ("tea", "car", "dog", "tea"):
        index.start_query(text).result()
    assert embedder.calls["queries"] == 4  # "tea" was pushed out by "car" and "dog"
    index.start_query("dog").result()
    assert embedder.calls["queries"] == 4
    index.close()


def test_a_closed_index_embeds_questions_on_the_callers_thread() -> None:
    embedder = LocalConceptEmbedder()
    index = vectors_module.SemanticIndex(embedder)
    index.start_query("tea").result()
    index.close()
    index.start_query("car").result()
    assert embedder.query_threads[0].startswith("memlayer-embed")
    assert embedder.query_threads[1] == threading.current_thread().name


def test_batch_operations_use_meaning_too(http: httpx.Client) -> None:
    ops = [
        {"op": "remember", "content": "I drink green tea", "user_id": "u1", "agent_id": "bot"},
        {"op": "recall", "query": "beverage", "user_id": "u1"},
    ]
    response = http.post("/batch", json={"operations": ops})
    assert response.status_code == 200, response.text
    # Reads in a batch see its earlier writes.
    [_, found] = response.json()["results"]
    assert [r["memory"]["content"] for r in found["results"]] == ["I drink green tea"]


def test_the_page_and_the_anchors_are_read_by_rowid_not_by_walking_the_scope(
    tmp_path: Any, embedder: ConceptEmbedder
) -> None:
    """A page of 10: SQLite's planner, left to itself, walks the scope's index and tests
    every memory of the scope against the list (70 ms at 50k memories)."""
    from memlayer_integrations.server.filters import scope_condition
    from memlayer_integrations.server.sqlite_text import SQLITE

    with LocalMemLayerServer(tmp_path / "m.db", embedder=embedder) as server:
        path = server.settings.db_path

    where = scope_condition(1, "u1", None, None, filters=None, live_at="2030-01-01T00:00:00Z")
    ids = list(range(1, 11))
    sql = f"SELECT m.rowid FROM {SQLITE.by_rowid} WHERE m.rowid IN ({','.join('?' * len(ids))})"
    with sqlite3.connect(path) as conn:
        rows = conn.execute(f"EXPLAIN QUERY PLAN {sql} AND {where.sql}", [*ids, *where.params])
        plan = " ".join(r[-1] for r in rows)
    assert "INTEGER PRIMARY KEY" in plan, plan


def test_a_large_scope_is_prefiltered_by_sign_bits_and_still_finds_the_nearest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(7)
    matrix = rng.standard_normal((500, 48)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    scope = vectors_module.SemanticIndex._append(
        None, (500, 0), list(range(1, 501)), list(range(1000, 1500)), [r.tobytes() for r in matrix]
    )
    query = matrix[123] + 0.05 * rng.standard_normal(48).astype(np.float32)
    exact = vectors_module._top(scope, query, 5, None)
    monkeypatch.setattr(vectors_module, "EXACT_LIMIT", 100)
    monkeypatch.setattr(vectors_module, "PREFILTER", 60)
    approx = vectors_module._top(scope, query, 5, None)
    assert approx[0] == exact[0] and exact[0][0] == 1123
    assert {r for r, _ in approx} <= {r for r, _ in vectors_module._top(scope, query, 60, None)}


def test_a_server_without_embedder_imports_no_numpy(tmp_path: Any) -> None:
    code = (
        "import sys\n"
        "from memlayer_integrations.server import LocalMemLayerServer\n"
        "from memlayer_integrations import MemLayerClient\n"
        f"with LocalMemLayerServer({str(tmp_path / 'x.db')!r}) as s:\n"
        "    with MemLayerClient(api_key=s.create_key(), base_url=s.url) as c:\n"
        "        c.remember('tea', user_id='u', agent_id='a')\n"
        "        assert c.recall('tea', user_id='u')\n"
        "assert 'numpy' not in sys.modules, 'numpy was imported'\n"
    )
    env = {"PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr


def test_a_cache_warmed_during_concurrent_writes_by_two_servers_misses_no_vector(
    db_location: Any,
) -> None:
    """Two servers on one database (as two processes: each its own cache of the scope's
    vectors) take writes at once while one of them recalls; its cache must then hold every
    vector, exactly as a cache built afresh does. The cache reads rows past the last
    sequence number it holds, so a vector committed after a higher-numbered one would be
    missed for good: a scope's sequence numbers must grow in commit order, which the
    account lock every write takes first makes so (on PostgreSQL the scope's counter row,
    updated by the same transaction, orders them too)."""
    words = ["tea", "coffee", "sedan", "dog", "cat", "job", "water", "car"]
    with (
        LocalMemLayerServer(db_location, embedder=ConceptEmbedder()) as first,
        LocalMemLayerServer(db_location, embedder=ConceptEmbedder()) as second,
    ):
        key = first.create_key(plan="unlimited")
        clients = [
            httpx.Client(base_url=s.url + "/v1", headers={"X-API-Key": key}, timeout=60)
            for s in (first, second)
        ]
        stop = threading.Event()
        write_errors: list[str] = []

        def write(n: int) -> None:
            for i in range(12):
                text = f"{words[(n + i) % len(words)]} note {n} {i}"
                body = {"content": text, "user_id": "u1", "agent_id": "bot"}
                response = clients[(n + i) % 2].post("/memories", json=body)
                if response.status_code != 201:
                    write_errors.append(response.text)

        def read() -> None:
            while not stop.is_set():
                recall(clients[0], "a drink", limit=100)

        reader = threading.Thread(target=read)
        reader.start()
        writers = [threading.Thread(target=write, args=(n,)) for n in range(6)]
        for thread in writers:
            thread.start()
        for thread in writers:
            thread.join()
        stop.set()
        reader.join()
        assert write_errors == []
        questions = ["a drink", "my vehicle", "an animal", "work"]
        warmed = [recall(clients[0], q, limit=100) for q in questions]
        for client in clients:
            client.close()
    with (
        LocalMemLayerServer(db_location, embedder=ConceptEmbedder()) as fresh,
        httpx.Client(base_url=fresh.url + "/v1", headers={"X-API-Key": key}) as client,
    ):
        built = [recall(client, q, limit=100) for q in questions]
    assert [len(r) for r in warmed] == [72] * len(questions)
    for a, b in zip(warmed, built, strict=True):
        assert [(r["memory"]["id"], r["score"]) for r in a] == [
            (r["memory"]["id"], r["score"]) for r in b
        ]
