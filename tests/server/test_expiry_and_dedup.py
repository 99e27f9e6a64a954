"""Remembering the same text again refreshes a memory; memories with a ttl expire and go."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from memlayer_integrations import AsyncMemLayerClient, MemLayerClient, Op
from memlayer_integrations.server import LocalMemLayerServer, Plan, ServerSettings

from ._helpers import assert_error, remember

START = datetime(2026, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server(tmp_path, clock) -> Iterator[LocalMemLayerServer]:
    plans = {"small": Plan(memories=3, requests_per_day=None)}
    settings = ServerSettings(db_path=tmp_path / "e.db", plans=plans, clock=clock)
    with LocalMemLayerServer(settings=settings) as running:
        yield running


@pytest.fixture
def api(server) -> Iterator[httpx.Client]:
    key = server.create_key(plan="small")
    with httpx.Client(base_url=server.url + "/v1", headers={"X-API-Key": key}) as http:
        yield http


def listed(http: httpx.Client, **params) -> list[dict]:
    r = http.get("/memories", params={"user_id": "u1", **params})
    assert r.status_code == 200, r.text
    return r.json()["memories"]


# -- same text, same scope ------------------------------------------------------------------


def test_remembering_the_same_text_refreshes_the_memory(api, clock):
    first = remember(api, "I'm on the Pro plan", metadata={"n": 1}, session_id="s1")
    clock.advance(5)
    r = api.post(
        "/memories",
        json={
            "content": "I'm on the Pro plan",
            "user_id": "u1",
            "agent_id": "bot",
            "metadata": {"n": 2},
            "session_id": "s2",
        },
    )
    assert r.status_code == 200
    again = r.json()
    assert again["id"] == first["id"] and again["created_at"] == first["created_at"]
    assert again["updated_at"] > first["updated_at"]
    assert (again["metadata"], again["session_id"]) == ({"n": 2}, "s2")
    assert [m["id"] for m in listed(api)] == [first["id"]]
    assert api.get("/usage").json()["memories_stored"] == 1


def test_same_text_in_another_scope_or_with_other_text_is_a_new_memory(api):
    remember(api, "likes tea")
    remember(api, "likes tea", agent_id="other")
    remember(api, "Likes tea")
    assert len(listed(api)) == 3


def test_deduplicate_false_always_adds(api):
    remember(api, "yes", deduplicate=False)
    remember(api, "yes", deduplicate=False)
    assert [m["content"] for m in listed(api)] == ["yes", "yes"]


def test_a_keyed_memory_is_not_refreshed_by_its_text(api):
    keyed = remember(api, "lives in Oslo", key="city")
    plain = remember(api, "lives in Oslo")
    assert plain["id"] != keyed["id"] and plain["key"] is None


def test_repeats_within_one_batch_are_one_memory_and_do_not_count_twice(api):
    items = [{"content": "a"}, {"content": "b"}, {"content": "a", "metadata": {"last": True}}]
    r = api.post("/memories/batch", json={"user_id": "u1", "agent_id": "bot", "items": items})
    assert r.status_code == 201, r.text
    ids = [m["id"] for m in r.json()["memories"]]
    assert ids[0] == ids[2] != ids[1]
    assert [(m["content"], m["metadata"]) for m in listed(api)] == [
        ("a", {"last": True}),
        ("b", {}),
    ]


def test_a_batch_of_100_stores_each_item_once_across_insert_statements(http):
    # New memories go in up to 64 rows a statement: a repeat of an item whose statement is
    # still being gathered refreshes that item's memory, and a stored key is replaced.
    remember(http, "kept", key="k-kept")
    items = [{"content": f"item {i}", "metadata": {"i": i}} for i in range(98)]
    items.append({"content": "item 70", "metadata": {"again": True}})  # repeats item 70
    items.append({"content": "replaced", "key": "k-kept"})
    r = http.post("/memories/batch", json={"user_id": "u1", "agent_id": "bot", "items": items})
    assert r.status_code == 201, r.text
    memories = r.json()["memories"]
    assert memories[98]["id"] == memories[70]["id"]
    assert len({m["id"] for m in memories}) == 99
    stored = {m["id"]: m for m in listed(http, limit=100)}
    assert len(stored) == 99
    assert stored[memories[70]["id"]]["metadata"] == {"again": True}
    assert stored[memories[99]["id"]]["content"] == "replaced"
    assert all(
        stored[m["id"]]["content"] == f"item {i}" for i, m in enumerate(memories[:98]) if i != 70
    )
    assert http.get("/usage").json()["memories_stored"] == 99


def test_refreshing_does_not_count_against_the_memory_limit(api):
    for text in ("a", "b", "c"):
        remember(api, text)
    remember(api, "b")  # the plan holds 3: a refresh is not a new memory
    body = assert_error(
        api.post("/memories", json={"content": "d", "user_id": "u1", "agent_id": "bot"}),
        403,
        "memory_limit_reached",
    )
    assert "Forget memories" in body["error"]["message"]


# -- expiry ---------------------------------------------------------------------------------


def test_ttl_sets_expires_at_and_the_memory_is_gone_after_it(api, clock):
    memory = remember(api, "temporary code 1234", ttl=60)
    assert memory["expires_at"] == "2026-05-01T12:01:00.000000Z" and memory["ttl"] == 60
    assert remember(api, "forever")["expires_at"] is None
    clock.advance(59)
    assert api.get(f"/memories/{memory['id']}").status_code == 200
    recalled = api.post("/memories/search", json={"query": "code", "user_id": "u1"}).json()
    assert [r["memory"]["id"] for r in recalled["results"]] == [memory["id"]]
    clock.advance(1)
    assert_error(api.get(f"/memories/{memory['id']}"), 404, "not_found")
    recalled = api.post("/memories/search", json={"query": "code", "user_id": "u1"}).json()
    assert recalled["results"] == []
    assert [m["content"] for m in listed(api)] == ["forever"]
    assert api.get("/usage").json()["memories_stored"] == 1


def test_expired_memories_are_swept_from_the_database(server, api, clock):
    remember(api, "soon gone", ttl=1)
    clock.advance(2)
    api.get("/usage")
    conn = sqlite3.connect(server.settings.db_path)
    try:
        assert conn.execute("SELECT count(*) FROM memories").fetchone()[0] == 0
    finally:
        conn.close()


def test_expires_at_is_taken_as_given_in_utc(api, clock):
    memory = remember(api, "until the meeting", expires_at="2026-05-01T14:30:00+02:00")
    assert memory["expires_at"] == "2026-05-01T12:30:00.000000Z" and memory["ttl"] is None
    clock.advance(30 * 60)
    assert listed(api) == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"ttl": 0}, "ttl"),
        ({"ttl": -5}, "ttl"),
        ({"ttl": "60"}, "ttl"),
        ({"ttl": 10**10}, "ttl"),
        ({"expires_at": "tomorrow"}, "expires_at"),
        ({"expires_at": "2026-05-02T00:00:00"}, "expires_at"),
        ({"ttl": 5, "expires_at": "2026-05-02T00:00:00Z"}, None),
        ({"deduplicate": "no"}, "deduplicate"),
    ],
)
def test_bad_expiry_is_a_422(api, fields, field):
    r = api.post("/memories", json={"content": "x", "user_id": "u1", "agent_id": "bot", **fields})
    assert_error(r, 422, "validation_error", field)


def test_a_refresh_replaces_the_expiry(api, clock):
    remember(api, "note", ttl=10)
    assert remember(api, "note")["expires_at"] is None
    clock.advance(20)
    assert [m["content"] for m in listed(api)] == ["note"]


def test_refresh_ttl_in_a_batch_restarts_the_clock(api, clock):
    memory = remember(api, "session token", ttl=100)
    clock.advance(60)
    ops = [
        {"op": "get", "memory_id": memory["id"], "refresh_ttl": True},
        {"op": "recall", "query": "token", "user_id": "u1", "refresh_ttl": True},
        {"op": "list", "user_id": "u1", "refresh_ttl": True},
    ]
    r = api.post("/batch", json={"operations": ops})
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["memory"]["expires_at"] == "2026-05-01T12:02:40.000000Z"
    clock.advance(60)  # 120 s after it was stored, 60 s after the refresh
    assert api.get(f"/memories/{memory['id']}").status_code == 200
    clock.advance(40)
    assert api.get(f"/memories/{memory['id']}").status_code == 404


def test_a_plain_read_does_not_refresh(api, clock):
    memory = remember(api, "session token", ttl=100)
    clock.advance(60)
    r = api.post("/batch", json={"operations": [{"op": "get", "memory_id": memory["id"]}]})
    assert r.json()["results"][0]["memory"]["expires_at"] == "2026-05-01T12:01:40.000000Z"
    clock.advance(40)
    assert api.get(f"/memories/{memory['id']}").status_code == 404


# -- through the clients --------------------------------------------------------------------


def test_clients_send_ttl_and_expires_at(server, clock):
    key = server.create_key(plan="small")
    with MemLayerClient(api_key=key, base_url=server.url) as client:
        short = client.remember("code 1234", user_id="u1", agent_id="bot", ttl=30)
        until = client.remember(
            "meeting room B",
            user_id="u1",
            agent_id="bot",
            expires_at=START + timedelta(minutes=1),
        )
        [item] = client.remember_many(
            [{"content": "door code", "ttl": 10}], user_id="u1", agent_id="bot"
        )
        assert (short.ttl, short.expires_at) == (30, START + timedelta(seconds=30))
        assert until.expires_at == START + timedelta(minutes=1) and until.ttl is None
        assert item.expires_at == START + timedelta(seconds=10)
        clock.advance(31)
        assert [m.content for m in client.list_memories(user_id="u1")] == ["meeting room B"]


async def test_async_client_sends_ttl(server, clock):
    key = server.create_key(plan="small")
    async with AsyncMemLayerClient(api_key=key, base_url=server.url) as client:
        memory = await client.remember("code 1234", user_id="u1", agent_id="bot", ttl=5)
        assert memory.expires_at == START + timedelta(seconds=5)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"ttl": 0}, ValueError),
        ({"ttl": "60"}, TypeError),
        ({"ttl": True}, TypeError),
        ({"expires_at": datetime(2026, 5, 2)}, ValueError),
        ({"ttl": 5, "expires_at": "2026-05-02T00:00:00Z"}, TypeError),
    ],
)
def test_bad_expiry_fails_before_any_request(kwargs, error):
    with pytest.raises(error):
        Op.remember("x", user_id="u1", agent_id="bot", **kwargs)
    with pytest.raises(error):
        Op.remember_many([{"content": "x", **kwargs}], user_id="u1", agent_id="bot")


def test_expires_at_far_from_now_keeps_its_four_digit_year(api):
    past = remember(api, "already over", expires_at="0658-02-23T03:00:00+01:00")
    assert past["expires_at"] == "0658-02-23T02:00:00.000000Z"
    assert listed(api) == []  # accepted, and never returned
    far = remember(api, "for ever and a day", expires_at="9999-12-31T23:59:59-05:00")
    assert far["expires_at"] == "9999-12-31T23:59:59.999999Z"
