"""Every endpoint of the contract, driven over raw HTTP."""

from __future__ import annotations

import re

from memlayer_integrations._models import Memory, RecalledMemory, Scope, Usage

from ._helpers import assert_error, remember

MEMORY_ID = re.compile(r"mem_[0-9a-f]{32}")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def test_health_needs_no_key(anon):
    response = anon.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": "0.1.0"}
    assert response.headers["x-request-id"].startswith("req_")
    assert "x-ratelimit-limit" not in response.headers


def test_remember_returns_the_memory(http):
    response = http.post(
        "/memories",
        json={
            "content": "User is on the Pro plan",
            "user_id": "user_123",
            "agent_id": "billing_bot",
            "session_id": None,
            "metadata": {"source": "chat"},
            "key": None,
        },
    )
    assert response.status_code == 201
    body = response.json()
    Memory.model_validate(body)
    assert MEMORY_ID.fullmatch(body["id"])
    assert TIMESTAMP.fullmatch(body["created_at"]) and body["created_at"] == body["updated_at"]
    assert {
        k: body[k] for k in ("content", "user_id", "agent_id", "session_id", "key", "metadata")
    } == {
        "content": "User is on the Pro plan",
        "user_id": "user_123",
        "agent_id": "billing_bot",
        "session_id": None,
        "key": None,
        "metadata": {"source": "chat"},
    }
    assert http.get(f"/memories/{body['id']}").json() == body


def test_metadata_defaults_to_an_empty_object(http):
    assert remember(http, "no metadata")["metadata"] == {}


def test_key_replaces_content_metadata_and_session_keeping_id_and_created_at(http):
    first = http.post(
        "/memories",
        json={
            "content": "lives in Oslo",
            "user_id": "u1",
            "agent_id": "bot",
            "key": "city",
            "metadata": {"v": 1},
            "session_id": "s1",
        },
    )
    assert first.status_code == 201
    second = http.post(
        "/memories",
        json={
            "content": "lives in Bergen",
            "user_id": "u1",
            "agent_id": "bot",
            "key": "city",
            "session_id": "s2",
        },
    )
    assert second.status_code == 200
    a, b = first.json(), second.json()
    assert b["id"] == a["id"] and b["created_at"] == a["created_at"]
    assert b["updated_at"] > a["updated_at"]
    assert (b["content"], b["metadata"], b["session_id"], b["key"]) == (
        "lives in Bergen",
        {},
        "s2",
        "city",
    )
    listed = http.get("/memories", params={"user_id": "u1"}).json()["memories"]
    assert [m["content"] for m in listed] == ["lives in Bergen"]
    hits = http.post("/memories/search", json={"query": "Oslo", "user_id": "u1"}).json()["results"]
    assert hits == []  # the replaced text is gone from the index too


def test_the_same_key_under_another_agent_is_another_memory(http):
    a = remember(http, "tea", key="drink")
    b = remember(http, "coffee", agent_id="other", key="drink")
    assert a["id"] != b["id"]


def test_remember_many_in_order_with_item_session_override(http):
    response = http.post(
        "/memories/batch",
        json={
            "user_id": "u1",
            "agent_id": "bot",
            "session_id": "s1",
            "items": [
                {"content": "likes tea"},
                {
                    "content": "lives in Oslo",
                    "metadata": {"k": 1},
                    "key": "city",
                    "session_id": "s2",
                },
            ],
        },
    )
    assert response.status_code == 201
    memories = response.json()["memories"]
    assert [(m["content"], m["session_id"], m["key"], m["metadata"]) for m in memories] == [
        ("likes tea", "s1", None, {}),
        ("lives in Oslo", "s2", "city", {"k": 1}),
    ]


def test_remember_many_replaces_by_key_and_refuses_duplicate_keys(http):
    old = remember(http, "lives in Oslo", key="city")
    response = http.post(
        "/memories/batch",
        json={
            "user_id": "u1",
            "agent_id": "bot",
            "items": [{"content": "lives in Rome", "key": "city"}],
        },
    )
    assert response.status_code == 201 and response.json()["memories"][0]["id"] == old["id"]
    response = http.post(
        "/memories/batch",
        json={
            "user_id": "u1",
            "agent_id": "bot",
            "items": [
                {"content": "new one"},
                {"content": "a", "key": "k"},
                {"content": "b", "key": "k"},
            ],
        },
    )
    assert_error(response, 422, "validation_error", "items[2].key")
    assert (
        len(http.get("/memories", params={"user_id": "u1"}).json()["memories"]) == 1
    )  # nothing stored


def test_recall_ranks_best_first_with_positive_scores(http):
    remember(http, "The user likes green tea in the morning")
    remember(http, "The user lives in Oslo")
    remember(http, "Tea tea tea: the user drinks tea all day")
    response = http.post(
        "/memories/search", json={"query": "what tea does the user drink?", "user_id": "u1"}
    )
    assert response.status_code == 200
    results = [RecalledMemory.model_validate(r) for r in response.json()["results"]]
    assert results[0].memory.content.startswith("Tea tea tea")
    assert all(r.score > 0 for r in results)
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)


def test_recall_limit_offset_and_stemming(http):
    for i in range(8):
        remember(http, f"plan number {i}")
    first = http.post(
        "/memories/search", json={"query": "plans", "user_id": "u1", "limit": 3}
    ).json()["results"]
    rest = http.post(
        "/memories/search", json={"query": "plans", "user_id": "u1", "limit": 100, "offset": 3}
    ).json()["results"]
    assert len(first) == 3 and len(rest) == 5
    assert not {r["memory"]["id"] for r in first} & {r["memory"]["id"] for r in rest}
    default = http.post("/memories/search", json={"query": "plan", "user_id": "u1"}).json()[
        "results"
    ]
    assert len(default) == 5


def test_recall_scoping_by_agent_and_session(http):
    remember(http, "tea at home", agent_id="a1", session_id="s1")
    remember(http, "tea at work", agent_id="a2", session_id="s2")

    def contents(**body):
        r = http.post("/memories/search", json={"query": "tea", "user_id": "u1", **body})
        return sorted(x["memory"]["content"] for x in r.json()["results"])

    assert contents() == ["tea at home", "tea at work"]
    assert contents(agent_id=None) == ["tea at home", "tea at work"]
    assert contents(agent_id="a1") == ["tea at home"]
    assert contents(session_id="s2") == ["tea at work"]


def test_update_content_metadata_or_both(http):
    memory = remember(http, "old text", metadata={"a": 1})
    path = f"/memories/{memory['id']}"
    r = http.patch(path, json={"metadata": {"b": 2}})
    assert (
        r.status_code == 200
        and r.json()["content"] == "old text"
        and r.json()["metadata"] == {"b": 2}
    )
    r = http.patch(path, json={"content": "new text"})
    assert r.json()["content"] == "new text" and r.json()["metadata"] == {"b": 2}
    assert (
        r.json()["updated_at"] > memory["updated_at"]
        and r.json()["created_at"] == memory["created_at"]
    )
    hits = http.post("/memories/search", json={"query": "new", "user_id": "u1"}).json()["results"]
    assert [h["memory"]["id"] for h in hits] == [memory["id"]]
    assert (
        http.post("/memories/search", json={"query": "old", "user_id": "u1"}).json()["results"]
        == []
    )
    assert_error(http.patch(path, json={}), 422, "validation_error")


def test_forget_then_404(http):
    memory = remember(http, "to forget")
    r = http.delete(f"/memories/{memory['id']}")
    assert r.status_code == 204 and r.content == b""
    assert_error(http.delete(f"/memories/{memory['id']}"), 404, "not_found")
    assert_error(http.get(f"/memories/{memory['id']}"), 404, "not_found")
    assert_error(http.patch(f"/memories/{memory['id']}", json={"content": "x"}), 404, "not_found")


def test_forget_all_narrowed_by_agent_session_and_keys(http):
    remember(http, "a", agent_id="a1", key="k1")
    remember(http, "b", agent_id="a1", key="k2")
    remember(http, "c", agent_id="a2", session_id="s")
    remember(http, "d", agent_id="a2")
    remember(http, "other user", user_id="u2")
    assert http.delete(
        "/memories", params=[("user_id", "u1"), ("key", "k1"), ("key", "nope")]
    ).json() == {"deleted": 1}
    assert http.delete("/memories", params={"user_id": "u1", "session_id": "s"}).json() == {
        "deleted": 1
    }
    assert http.delete("/memories", params={"user_id": "u1", "agent_id": "a1"}).json() == {
        "deleted": 1
    }
    assert http.delete("/memories", params={"user_id": "u1"}).json() == {"deleted": 1}
    assert http.delete("/memories", params={"user_id": "u1"}).json() == {"deleted": 0}
    assert len(http.get("/memories", params={"user_id": "u2"}).json()["memories"]) == 1
    assert_error(http.delete("/memories"), 422, "validation_error", "user_id")


def test_list_pages_in_creation_order(http):
    ids = [remember(http, f"memory {i}")["id"] for i in range(7)]
    seen, cursor, pages = [], None, 0
    while True:
        params = {"user_id": "u1", "limit": 3, **({"cursor": cursor} if cursor else {})}
        body = http.get("/memories", params=params).json()
        seen += [m["id"] for m in body["memories"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ids and pages == 3
    # Deleting the newest memory does not make a later one reuse its place in the order.
    http.delete(f"/memories/{ids[-1]}")
    newer = remember(http, "newer")
    listed = [m["id"] for m in http.get("/memories", params={"user_id": "u1"}).json()["memories"]]
    assert listed == [*ids[:-1], newer["id"]]


def test_list_filters_by_keys_and_metadata(http):
    remember(http, "a", key="k1", metadata={"topic": "billing", "priority": 1})
    remember(http, "b", key="k2", metadata={"topic": "billing", "priority": 3})
    remember(http, "c", metadata={"topic": "travel", "priority": 4})
    by_keys = http.get(
        "/memories", params=[("user_id", "u1"), ("key", "k1"), ("key", "k2")]
    ).json()["memories"]
    assert [m["content"] for m in by_keys] == ["a", "b"]
    filters = '{"topic": "billing", "priority": {"$gte": 2}}'
    filtered = http.get("/memories", params={"user_id": "u1", "filters": filters}).json()[
        "memories"
    ]
    assert [m["content"] for m in filtered] == ["b"]
    assert_error(
        http.get("/memories", params={"user_id": "u1", "filters": "{not json"}),
        422,
        "validation_error",
        "filters",
    )
    assert_error(
        http.get("/memories", params={"user_id": "u1", "cursor": "garbage"}),
        422,
        "validation_error",
        "cursor",
    )
    assert_error(
        http.get("/memories", params={"user_id": "u1", "limit": "101"}),
        422,
        "validation_error",
        "limit",
    )
    assert_error(
        http.get("/memories", params={"user_id": "u1", "limit": "ten"}),
        422,
        "validation_error",
        "limit",
    )


def test_scopes_sorted_with_counts(http):
    remember(http, "x", user_id="b", agent_id="z")
    remember(http, "x", user_id="a", agent_id="y")
    remember(http, "another x", user_id="a", agent_id="y")
    remember(http, "x", user_id="a", agent_id="x")
    body = http.get("/scopes").json()
    scopes = [Scope.model_validate(s) for s in body["scopes"]]
    assert [(s.user_id, s.agent_id, s.memories) for s in scopes] == [
        ("a", "x", 1),
        ("a", "y", 2),
        ("b", "z", 1),
    ]
    assert http.get("/scopes", params={"user_id": "b"}).json() == {
        "scopes": [{"user_id": "b", "agent_id": "z", "memories": 1}]
    }


def test_scopes_follow_forgets(http):
    remember(http, "x", user_id="a", agent_id="y")
    gone = remember(http, "x", user_id="a", agent_id="x")
    remember(http, "x", user_id="b", agent_id="z")
    remember(http, "y", user_id="b", agent_id="z")
    assert http.delete(f"/memories/{gone['id']}").status_code == 204
    assert http.delete("/memories", params={"user_id": "b"}).json() == {"deleted": 2}
    assert http.get("/scopes").json() == {
        "scopes": [{"user_id": "a", "agent_id": "y", "memories": 1}]
    }
    remember(http, "z", user_id="b", agent_id="z")
    assert http.get("/scopes", params={"user_id": "b"}).json() == {
        "scopes": [{"user_id": "b", "agent_id": "z", "memories": 1}]
    }


def test_usage(http):
    remember(http, "x")
    usage = Usage.model_validate(http.get("/usage").json())
    assert (usage.plan, usage.memories_stored, usage.memories_limit, usage.requests_limit) == (
        "unlimited",
        1,
        None,
        None,
    )
    assert usage.requests_today == 2
    assert usage.resets_at.hour == 0 and usage.resets_at.minute == 0


def test_batch_runs_in_order_and_returns_one_result_per_op(http):
    existing = remember(http, "old", key="k")
    response = http.post(
        "/batch",
        json={
            "operations": [
                {
                    "op": "remember_many",
                    "user_id": "u1",
                    "agent_id": "bot",
                    "items": [{"content": "likes tea"}],
                },
                {
                    "op": "remember",
                    "content": "drinks tea daily",
                    "user_id": "u1",
                    "agent_id": "bot",
                },
                {"op": "recall", "query": "tea", "user_id": "u1", "limit": 5},
                {"op": "get", "memory_id": existing["id"]},
                {"op": "update", "memory_id": existing["id"], "content": "new"},
                {"op": "list", "user_id": "u1", "keys": ["k"], "limit": 10},
                {"op": "forget", "memory_id": existing["id"]},
                {"op": "forget_all", "user_id": "u1", "agent_id": "nobody"},
                {"op": "usage"},
            ]
        },
    )
    assert response.status_code == 200, response.text
    r = response.json()["results"]
    assert len(r) == 9
    assert r[0]["memories"][0]["content"] == "likes tea"
    assert r[1]["memory"]["content"] == "drinks tea daily"
    assert {h["memory"]["content"] for h in r[2]["results"]} == {"likes tea", "drinks tea daily"}
    assert r[3] == {"memory": existing}
    assert r[4]["memory"]["content"] == "new"
    assert [m["content"] for m in r[5]["memories"]] == ["new"] and r[5]["next_cursor"] is None
    assert r[6] == {"deleted": 1} and r[7] == {"deleted": 0}
    assert r[8]["usage"]["memories_stored"] == 2 and r[8]["usage"]["requests_today"] == 2


def test_batch_is_all_or_nothing_and_names_the_failing_operation(http):
    response = http.post(
        "/batch",
        json={
            "operations": [
                {"op": "remember", "content": "stored?", "user_id": "u1", "agent_id": "bot"},
                {"op": "get", "memory_id": "mem_" + "0" * 32},
            ]
        },
    )
    assert_error(response, 404, "not_found", "operations[1]")
    response = http.post(
        "/batch",
        json={
            "operations": [
                {"op": "remember", "content": "stored?", "user_id": "u1", "agent_id": "bot"},
                {"op": "remember", "content": "  ", "user_id": "u1", "agent_id": "bot"},
            ]
        },
    )
    assert_error(response, 422, "validation_error", "operations[1].content")
    assert_error(
        http.post("/batch", json={"operations": [{"op": "explode"}]}),
        422,
        "validation_error",
        "operations[0].op",
    )
    assert_error(
        http.post("/batch", json={"operations": []}), 422, "validation_error", "operations"
    )
    assert http.get("/memories", params={"user_id": "u1"}).json()["memories"] == []


def test_unknown_path_and_method_have_the_error_shape(http):
    assert_error(http.get("/nowhere"), 404, "not_found")
    assert_error(http.get("/memories/"), 404, "not_found")  # no redirect to /memories
    assert_error(http.put("/memories"), 405, "method_not_allowed")


def test_agent_prefix_covers_an_agent_and_those_below_it(http):
    for agent in ("store", "store.notes", "store.notes.work", "store.notesx", "storex", "other"):
        remember(http, f"tea for {agent}", agent_id=agent)
    below = ["store.notes", "store.notes.work"]
    listed = http.get("/memories", params={"user_id": "u1", "agent_prefix": "store.notes"})
    assert [m["agent_id"] for m in listed.json()["memories"]] == below
    recalled = http.post(
        "/memories/search", json={"query": "tea", "user_id": "u1", "agent_prefix": "store.notes"}
    )
    assert sorted(r["memory"]["agent_id"] for r in recalled.json()["results"]) == below
    scopes = http.get("/scopes", params={"agent_prefix": "store"}).json()["scopes"]
    assert [s["agent_id"] for s in scopes] == ["store", *below, "store.notesx"]
    batch = http.post(
        "/batch",
        json={
            "operations": [
                {"op": "scopes", "user_id": "u1", "agent_prefix": "store.notes"},
                {"op": "list", "user_id": "u1", "agent_prefix": "store", "limit": 2},
                {"op": "recall", "query": "tea", "user_id": "u1", "agent_prefix": "storex"},
            ]
        },
    ).json()["results"]
    assert [s["agent_id"] for s in batch[0]["scopes"]] == below
    page = batch[1]
    assert [m["agent_id"] for m in page["memories"]] == ["store", "store.notes"]
    rest = http.get(
        "/memories",
        params={"user_id": "u1", "agent_prefix": "store", "cursor": page["next_cursor"]},
    )
    assert [m["agent_id"] for m in rest.json()["memories"]] == ["store.notes.work", "store.notesx"]
    assert [r["memory"]["agent_id"] for r in batch[2]["results"]] == ["storex"]


def test_a_batch_read_after_a_write_sees_the_agents_the_write_added_under_a_prefix(http):
    # The reads of a batch share what they learn of a prefix's agents until the batch writes.
    remember(http, "tea for store.a", agent_id="store.a")
    read = [
        {"op": "recall", "query": "tea", "user_id": "u1", "agent_prefix": "store"},
        {"op": "list", "user_id": "u1", "agent_prefix": "store"},
    ]
    write = {"op": "remember", "content": "tea for store.b", "user_id": "u1", "agent_id": "store.b"}
    results = http.post("/batch", json={"operations": [*read, write, *read]}).json()["results"]
    both = ["store.a", "store.b"]
    assert [r["memory"]["agent_id"] for r in results[0]["results"]] == ["store.a"]
    assert [m["agent_id"] for m in results[1]["memories"]] == ["store.a"]
    assert sorted(r["memory"]["agent_id"] for r in results[3]["results"]) == both
    assert [m["agent_id"] for m in results[4]["memories"]] == both


def test_agent_prefix_and_agent_id_together_must_both_hold(http):
    remember(http, "tea for a.b", agent_id="a.b")
    remember(http, "tea for c", agent_id="c")
    for agent_id, prefix, found in (("a.b", "a", ["a.b"]), ("c", "a", []), ("c", "c", ["c"])):
        both = {"user_id": "u1", "agent_id": agent_id, "agent_prefix": prefix}
        listed = http.get("/memories", params=both).json()["memories"]
        assert [m["agent_id"] for m in listed] == found
        recalled = http.post("/memories/search", json={"query": "tea", **both}).json()["results"]
        assert [r["memory"]["agent_id"] for r in recalled] == found


def test_a_cursor_is_bound_to_its_agent_prefix(http):
    # A cursor is bound to its listing: the same cursor with another prefix is refused.
    for n in range(3):
        remember(http, f"m{n}", agent_id="a")
    page = http.get("/memories", params={"user_id": "u1", "agent_prefix": "a", "limit": 1})
    cursor = page.json()["next_cursor"]
    other = http.get("/memories", params={"user_id": "u1", "agent_prefix": "b", "cursor": cursor})
    assert other.status_code == 422


def test_memory_ids_keep_their_format_and_grow_with_time(http, monkeypatch):
    from memlayer_integrations.server import store

    ids = {store.new_memory_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(MEMORY_ID.fullmatch(i) for i in ids)
    monkeypatch.setattr(store.time, "time_ns", lambda: 1_700_000_000_000 * 1_000_000)
    earlier = store.new_memory_id()
    monkeypatch.setattr(store.time, "time_ns", lambda: 1_700_000_000_001 * 1_000_000)
    assert store.new_memory_id() > earlier
    assert earlier.startswith("mem_018bcfe56800")  # 1_700_000_000_000 ms in 12 hex digits
    monkeypatch.undo()
    items = [{"content": f"fact {i}"} for i in range(3)]
    stored = http.post(
        "/memories/batch", json={"user_id": "u", "agent_id": "a", "items": items}
    ).json()["memories"]
    assert all(MEMORY_ID.fullmatch(m["id"]) for m in stored)
