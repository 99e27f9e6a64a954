"""Idempotency is for writes only, size-capped, and never replays forgotten content.

Keeping every answer for 24 hours let a handful of small read requests (a batch of thirty
lists) grow the database by hundreds of megabytes, and let a replay return a memory that
had been forgotten since. Now: only a write's answer is kept, up to 64 KiB; forgetting a
memory (``forget`` or ``forget_all``) drops every kept answer showing it; a replay of a
request whose answer is not kept runs nothing again and gets 409 ``idempotent_answer_gone``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from memlayer_integrations.server import LocalMemLayerServer
from tests.server._helpers import assert_error

SECRET = "the door code is 4711"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalMemLayerServer]:
    with LocalMemLayerServer(tmp_path / "idem.db") as s:
        yield s


@pytest.fixture
def http(server: LocalMemLayerServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.url + "/v1", headers={"X-API-Key": server.create_key()}
    ) as client:
        yield client


def kept(server: LocalMemLayerServer) -> list[tuple[str, int, int]]:
    """(key, kept, body size) of every idempotency record."""
    with sqlite3.connect(server.settings.db_path) as conn:
        return conn.execute(
            "SELECT key, kept, length(body) FROM idempotency ORDER BY key"
        ).fetchall()


def post(http: httpx.Client, path: str, body: dict, key: str) -> httpx.Response:
    return http.post(path, json=body, headers={"Idempotency-Key": key})


def test_reads_keep_nothing(server, http):
    post(http, "/memories", {"content": "tea", "user_id": "u", "agent_id": "a"}, "w")
    post(http, "/memories/search", {"query": "tea", "user_id": "u"}, "r1")
    lists = {"operations": [{"op": "list", "user_id": "u", "limit": 100}] * 30}
    assert post(http, "/batch", lists, "r2").status_code == 200
    assert [k for k, _, _ in kept(server)] == ["w"]


def test_a_forgotten_memory_is_never_replayed(server, http):
    body = {"content": SECRET, "user_id": "u", "agent_id": "a"}
    memory = post(http, "/memories", body, "k1").json()
    assert post(http, "/memories", body, "k1").headers["Idempotent-Replayed"] == "true"
    assert http.delete(f"/memories/{memory['id']}").status_code == 204
    replay = post(http, "/memories", body, "k1")
    assert_error(replay, 409, "idempotent_answer_gone", "Idempotency-Key")
    assert SECRET not in replay.text
    # Nothing ran again: the memory stays forgotten.
    assert http.get("/memories", params={"user_id": "u"}).json()["memories"] == []
    assert kept(server) == [("k1", 0, 0)]


def test_forget_all_drops_the_answers_showing_its_memories(server, http):
    items = {"user_id": "u", "agent_id": "a", "items": [{"content": SECRET}, {"content": "x"}]}
    post(http, "/memories/batch", items, "many")
    post(http, "/memories", {"content": "other user", "user_id": "v", "agent_id": "a"}, "v1")
    batch = {"operations": [{"op": "remember", "content": SECRET, "user_id": "u", "agent_id": "b"}]}
    post(http, "/batch", batch, "b1")
    assert http.delete("/memories", params={"user_id": "u"}).json() == {"deleted": 3}
    for key, replayed in (("many", items), ("b1", batch)):
        path = "/memories/batch" if key == "many" else "/batch"
        r = post(http, path, replayed, key)
        assert_error(r, 409, "idempotent_answer_gone", "Idempotency-Key")
    assert (
        post(
            http, "/memories", {"content": "other user", "user_id": "v", "agent_id": "a"}, "v1"
        ).json()["content"]
        == "other user"
    )
    assert {k: (on, size > 0) for k, on, size in kept(server)} == {
        "many": (0, False),
        "b1": (0, False),
        "v1": (1, True),
    }


def test_a_batch_that_remembers_and_forgets_keeps_no_answer(server, http):
    memory = post(http, "/memories", {"content": "t", "user_id": "u", "agent_id": "a"}, "a").json()
    ops = [
        {"op": "update", "memory_id": memory["id"], "content": SECRET},
        {"op": "forget", "memory_id": memory["id"]},
    ]
    assert post(http, "/batch", {"operations": ops}, "b").status_code == 200
    assert ("b", 0, 0) in kept(server)


def test_a_large_answer_is_not_kept_and_its_replay_runs_nothing(server, http):
    items = [{"content": f"{i} " + "x" * 30_000} for i in range(3)]  # an answer of ~90 KB
    body = {"user_id": "u", "agent_id": "a", "items": items}
    assert post(http, "/memories/batch", body, "big").status_code == 201
    assert_error(
        post(http, "/memories/batch", body, "big"), 409, "idempotent_answer_gone", "Idempotency-Key"
    )
    assert http.get("/usage").json()["memories_stored"] == 3
    assert kept(server) == [("big", 0, 0)]


def test_kept_answers_stay_small_whatever_is_asked(server, http):
    for i in range(20):
        post(http, "/memories", {"content": "y" * 30_000, "user_id": "u", "agent_id": "a"}, f"w{i}")
    lists = {"operations": [{"op": "list", "user_id": "u", "limit": 100}] * 10}
    for i in range(5):
        post(http, "/batch", lists, f"r{i}")
    total = sum(size for _, _, size in kept(server))
    assert total <= 20 * 64 * 1024


def test_an_answer_past_its_day_takes_its_links_and_its_id_never_inherits_them(server, http):
    """Answers are linked to memories by ids that SQLite may hand out again once the newest
    answer is deleted: the links must go with the answer, or forgetting an old memory would
    drop a newer answer that never showed it."""
    old = post(http, "/memories", {"content": "old", "user_id": "u", "agent_id": "a"}, "k1").json()
    with sqlite3.connect(server.settings.db_path) as conn:
        conn.execute("UPDATE idempotency SET created_at = 0 WHERE key = 'k1'")
    body = {"content": "new", "user_id": "u", "agent_id": "a"}
    post(http, "/memories", body, "k2")
    with sqlite3.connect(server.settings.db_path) as conn:
        [(answer,)] = conn.execute("SELECT id FROM idempotency").fetchall()
        links = conn.execute("SELECT answer FROM idempotency_links").fetchall()
    assert answer == 1 and links == [(1,)]  # k1's id, handed out again, with k2's link only
    assert http.delete(f"/memories/{old['id']}").status_code == 204
    replay = post(http, "/memories", body, "k2")
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["content"] == "new"
    assert kept(server) == [("k2", 1, len(replay.content))]
