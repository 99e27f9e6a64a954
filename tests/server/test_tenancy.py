"""Accounts, users and agents never see each other's memories, whatever the operation."""

from __future__ import annotations

import httpx
import pytest

from ._helpers import assert_error, remember


@pytest.fixture
def other(base_url, local_server):
    with httpx.Client(base_url=base_url + "/v1", headers={"X-API-Key": local_server.create_key()}) as client:
        yield client


def test_another_account_cannot_reach_a_memory_by_any_route(http, other):
    mine = remember(http, "secret tea recipe", user_id="shared_user", agent_id="shared_bot")
    path = f"/memories/{mine['id']}"
    assert_error(other.get(path), 404, "not_found")
    assert_error(other.patch(path, json={"content": "hijacked"}), 404, "not_found")
    assert_error(other.delete(path), 404, "not_found")
    assert other.post("/memories/search", json={"query": "secret tea recipe", "user_id": "shared_user"}).json() == {"results": []}
    assert other.get("/memories", params={"user_id": "shared_user"}).json()["memories"] == []
    assert other.get("/scopes").json() == {"scopes": []}
    assert other.delete("/memories", params={"user_id": "shared_user"}).json() == {"deleted": 0}
    batch = other.post("/batch", json={"operations": [{"op": "get", "memory_id": mine["id"]}]})
    assert_error(batch, 404, "not_found", "operations[0]")
    assert other.get("/usage").json()["memories_stored"] == 0
    # ... and the owner still has it, unchanged.
    assert http.get(path).json() == mine


def test_users_are_isolated(http):
    remember(http, "alice likes tea", user_id="alice")
    remember(http, "bob likes tea", user_id="bob")
    hits = http.post("/memories/search", json={"query": "likes tea", "user_id": "alice"}).json()["results"]
    assert [h["memory"]["content"] for h in hits] == ["alice likes tea"]
    assert [m["content"] for m in http.get("/memories", params={"user_id": "bob"}).json()["memories"]] == ["bob likes tea"]
    assert http.delete("/memories", params={"user_id": "alice"}).json() == {"deleted": 1}
    assert len(http.get("/memories", params={"user_id": "bob"}).json()["memories"]) == 1
    assert http.get("/scopes", params={"user_id": "alice"}).json() == {"scopes": []}


def test_agents_are_isolated_when_named(http):
    remember(http, "agent one fact", agent_id="one")
    remember(http, "agent two fact", agent_id="two")
    hits = http.post("/memories/search", json={"query": "fact", "user_id": "u1", "agent_id": "one"}).json()["results"]
    assert [h["memory"]["content"] for h in hits] == ["agent one fact"]
    listed = http.get("/memories", params={"user_id": "u1", "agent_id": "two"}).json()["memories"]
    assert [m["content"] for m in listed] == ["agent two fact"]
    assert http.delete("/memories", params={"user_id": "u1", "agent_id": "one"}).json() == {"deleted": 1}
    assert [s["agent_id"] for s in http.get("/scopes").json()["scopes"]] == ["two"]


def test_same_key_name_in_two_accounts_is_two_memories(http, other):
    a = remember(http, "mine", key="k")
    b = remember(other, "theirs", key="k")
    assert a["id"] != b["id"]
    assert http.get(f"/memories/{a['id']}").json()["content"] == "mine"
