"""Tenancy: accounts, users and agents never see or touch each other's memories.

The examples pin each operation by hand; the properties (Hypothesis, derandomized so a run
is repeatable) generate the ids, keys, filters and queries: unicode, 256 characters long,
SQL fragments, full-text operators, path traversal. Whatever they are, recall, list, scopes,
get, update and forget answer from the caller's own account and scope only, and what another
account holds stays exactly as it was.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.server._helpers import assert_error, remember


@pytest.fixture
def other(base_url, local_server):
    with httpx.Client(
        base_url=base_url + "/v1", headers={"X-API-Key": local_server.create_key()}
    ) as client:
        yield client


def test_another_account_cannot_reach_a_memory_by_any_route(http, other):
    mine = remember(http, "secret tea recipe", user_id="shared_user", agent_id="shared_bot")
    path = f"/memories/{mine['id']}"
    assert_error(other.get(path), 404, "not_found")
    assert_error(other.patch(path, json={"content": "hijacked"}), 404, "not_found")
    assert_error(other.delete(path), 404, "not_found")
    assert other.post(
        "/memories/search", json={"query": "secret tea recipe", "user_id": "shared_user"}
    ).json() == {"results": []}
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
    hits = http.post("/memories/search", json={"query": "likes tea", "user_id": "alice"}).json()[
        "results"
    ]
    assert [h["memory"]["content"] for h in hits] == ["alice likes tea"]
    assert [
        m["content"] for m in http.get("/memories", params={"user_id": "bob"}).json()["memories"]
    ] == ["bob likes tea"]
    assert http.delete("/memories", params={"user_id": "alice"}).json() == {"deleted": 1}
    assert len(http.get("/memories", params={"user_id": "bob"}).json()["memories"]) == 1
    assert http.get("/scopes", params={"user_id": "alice"}).json() == {"scopes": []}


def test_agents_are_isolated_when_named(http):
    remember(http, "agent one fact", agent_id="one")
    remember(http, "agent two fact", agent_id="two")
    hits = http.post(
        "/memories/search", json={"query": "fact", "user_id": "u1", "agent_id": "one"}
    ).json()["results"]
    assert [h["memory"]["content"] for h in hits] == ["agent one fact"]
    listed = http.get("/memories", params={"user_id": "u1", "agent_id": "two"}).json()["memories"]
    assert [m["content"] for m in listed] == ["agent two fact"]
    assert http.delete("/memories", params={"user_id": "u1", "agent_id": "one"}).json() == {
        "deleted": 1
    }
    assert [s["agent_id"] for s in http.get("/scopes").json()["scopes"]] == ["two"]


def test_same_key_name_in_two_accounts_is_two_memories(http, other):
    a = remember(http, "mine", key="k")
    b = remember(other, "theirs", key="k")
    assert a["id"] != b["id"]
    assert http.get(f"/memories/{a['id']}").json()["content"] == "mine"


# -- properties ----------------------------------------------------------------------------

HOSTILE = [
    "' OR '1'='1",
    "'; DROP TABLE memories; --",
    '" OR ""="',
    "%",
    "_",
    "*",
    "\\",
    "NULL",
    'NEAR("a" "b")',
    "a OR b",
    "NOT a",
    "a AND b",
    "^a",
    "content:a",
    "-a",
    '"',
    "(",
    ")",
    "{",
    "$eq",
    "../",
    "../../v1/usage",
    "..%2F..%2Fusage",
    "%2e%2e",
    "/",
    "?x=1",
    "#",
    "mem_" + "0" * 32,
    "\u202eevil",
    "\ufeff",
    "Ω≈ç√∫",
    "😀👍🏽",
    "user",
    "USER",
    " user",
    "user ",
    "a" * 256,
]
# Identifiers the contract accepts: 1 to 256 characters, no control characters.
IDS = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(st.characters(exclude_categories=["Cc", "Cs"]), min_size=1, max_size=256),
).filter(lambda s: 1 <= len(s) <= 256)
QUERIES = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(min_size=1, max_size=200),
    st.text(min_size=1, max_size=3).map(lambda s: (s * 4096)[:4096]),
).filter(lambda s: s.strip())

PROPERTY = settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class Account:
    """Raw HTTP as one fresh account of the session's server."""

    def __init__(self, http: httpx.Client, key: str) -> None:
        self.http, self.headers = http, {"X-API-Key": key}

    def __call__(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, path, headers=self.headers, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self(method, path, **kwargs)
        assert response.status_code in (200, 201), response.text
        return response.json()


@pytest.fixture(scope="module")
def accounts(local_server) -> Iterator[Any]:
    """``accounts()``: two fresh accounts on every call (one example, one pair)."""
    with httpx.Client(base_url=local_server.url + "/v1", timeout=30) as http:
        yield lambda: (
            Account(http, local_server.create_key()),
            Account(http, local_server.create_key()),
        )


def remember_op(content: str, user: str, agent: str, key: str, tag: str) -> dict[str, Any]:
    return {
        "op": "remember",
        "content": content,
        "user_id": user,
        "agent_id": agent,
        "key": key,
        "metadata": {key: tag},
    }


@PROPERTY
@given(user=IDS, other_user=IDS, agent=IDS, other_agent=IDS, query=QUERIES)
def test_no_operation_crosses_an_account_user_or_agent(
    accounts, user, other_user, agent, other_agent, query
):
    if user == other_user:
        other_user += "·"
    if agent == other_agent:
        other_agent += "·"
    a, b = accounts()
    content = f"{query} {user} {agent}"[:32768]
    key = user  # a memory name too, and a metadata key to filter on
    # A holds three scopes; B holds the first of them again, under the same ids and key.
    mine = [
        r["memory"]
        for r in a.ok(
            "POST",
            "/batch",
            json={
                "operations": [
                    remember_op(content, user, agent, key, "a"),
                    remember_op(content, user, other_agent, key, "a"),
                    remember_op(content, other_user, agent, key, "a"),
                ]
            },
        )["results"]
    ]
    [theirs] = [
        r["memory"]
        for r in b.ok(
            "POST", "/batch", json={"operations": [remember_op(content, user, agent, key, "b")]}
        )["results"]
    ]
    a_user = {m["id"] for m in mine[:2]}

    # recall: only the caller's account, user and (when named) agent, whatever the query or filter
    for caller, body, allowed in [
        (a, {"query": query, "user_id": user}, a_user),
        (a, {"query": query, "user_id": user, "agent_id": agent}, {mine[0]["id"]}),
        (a, {"query": query, "user_id": user, "filters": {key: "a"}}, a_user),
        (b, {"query": query, "user_id": user}, {theirs["id"]}),
        (b, {"query": query, "user_id": other_user}, set()),
        (b, {"query": query, "user_id": user, "filters": {key: "a"}}, set()),
    ]:
        hits = {
            h["memory"]["id"]
            for h in caller.ok("POST", "/memories/search", json={**body, "limit": 100})["results"]
        }
        assert hits <= allowed

    # list and scopes: exactly the caller's own, in its scope
    def listed(caller: Account, **params: Any) -> list[str]:
        return [m["id"] for m in caller.ok("GET", "/memories", params=params)["memories"]]

    assert listed(a, user_id=user) == [m["id"] for m in mine[:2]]
    assert listed(a, user_id=user, agent_id=agent) == [mine[0]["id"]]
    assert listed(a, user_id=user, key=key, filters=json.dumps({key: "a"})) == [
        m["id"] for m in mine[:2]
    ]
    assert listed(b, user_id=user) == [theirs["id"]]
    assert listed(b, user_id=other_user) == []
    assert a.ok("GET", "/scopes", params={"user_id": user})["scopes"] == sorted(
        [
            {"user_id": user, "agent_id": agent, "memories": 1},
            {"user_id": user, "agent_id": other_agent, "memories": 1},
        ],
        key=lambda s: s["agent_id"],
    )
    assert b.ok("GET", "/scopes")["scopes"] == [{"user_id": user, "agent_id": agent, "memories": 1}]

    # get, update, forget by id: another account's memory does not exist for B
    for memory in mine:
        path = f"/memories/{memory['id']}"
        assert_error(b("GET", path), 404, "not_found")
        assert_error(b("PATCH", path, json={"content": "overwritten"}), 404, "not_found")
        assert_error(b("DELETE", path), 404, "not_found")
        assert_error(
            b("POST", "/batch", json={"operations": [{"op": "forget", "memory_id": memory["id"]}]}),
            404,
            "not_found",
            "operations[0]",
        )
    # forget_all in B's scope deletes B's memory only
    assert b.ok("DELETE", "/memories", params={"user_id": user, "agent_id": agent, "key": key}) == {
        "deleted": 1
    }
    assert [a.ok("GET", f"/memories/{m['id']}") for m in mine] == mine  # A's memories, untouched
    assert (
        a.ok("GET", "/usage")["memories_stored"] == 3
        and b.ok("GET", "/usage")["memories_stored"] == 0
    )


@PROPERTY
@given(memory_id=IDS, method=st.sampled_from(["GET", "PATCH", "DELETE"]))
def test_a_hostile_memory_id_in_the_path_reaches_nothing(accounts, memory_id, method):
    a, b = accounts()
    mine = a.ok("POST", "/memories", json={"content": "kept", "user_id": "u", "agent_id": "a"})
    body = {"json": {"content": "overwritten"}} if method == "PATCH" else {}
    for raw in (quote(memory_id, safe=""), quote(memory_id, safe="/.%")):
        response = b(method, f"/memories/{raw}", **body)
        # 404 (no such memory, or no such route) or 422 (not an id); never a memory, never 5xx
        assert response.status_code in (404, 405, 422), (raw, response.status_code, response.text)
    assert a.ok("GET", f"/memories/{mine['id']}") == mine
    assert a.ok("GET", "/usage")["memories_stored"] == 1
