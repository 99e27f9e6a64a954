"""What each operation sends and how it reads the answer; lazy listing; batches and ``Op``;
what cannot be sent as JSON."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import httpx
import pytest

from memlayer_integrations import (
    APIResponseValidationError,
    BadRequestError,
    Memory,
    Op,
    RecalledMemory,
    Scope,
    Usage,
)

from ._support import Script, call, collect, memory_json, usage_json


def query(request: httpx.Request) -> list[tuple[str, str]]:
    return parse_qsl(request.url.query.decode(), keep_blank_values=True)


async def test_remember_sends_the_contract_body(make_client):
    script = Script(
        httpx.Response(
            201, json=memory_json(metadata={"source": "chat"}, session_id="s1", key="plan")
        )
    )
    memory = await call(
        make_client(script),
        "remember",
        "User is on the Pro plan",
        user_id="u1",
        agent_id="bot",
        metadata={"source": "chat"},
        session_id="s1",
        key="plan",
    )
    request = script.requests[0]
    assert (request.method, request.url.path) == ("POST", "/v1/memories")
    assert json.loads(request.content) == {
        "content": "User is on the Pro plan",
        "user_id": "u1",
        "agent_id": "bot",
        "session_id": "s1",
        "metadata": {"source": "chat"},
        "key": "plan",
    }
    assert isinstance(memory, Memory)
    assert memory.metadata == {"source": "chat"} and memory.key == "plan"
    assert memory.created_at.tzinfo is not None


async def test_remember_leaves_out_what_was_not_given(make_client):
    script = Script(httpx.Response(201, json=memory_json()))
    await call(make_client(script), "remember", "hi", user_id="u1", agent_id="bot")
    assert script.bodies() == [{"content": "hi", "user_id": "u1", "agent_id": "bot"}]


async def test_non_ascii_content_is_sent_as_utf8_json(make_client):
    script = Script(httpx.Response(201, json=memory_json(content='Ærø 🐟 "quoted"')))
    memory = await call(
        make_client(script), "remember", 'Ærø 🐟 "quoted"', user_id="u1", agent_id="bot"
    )
    assert script.bodies()[0]["content"] == 'Ærø 🐟 "quoted"'
    assert "Ærø".encode() in script.requests[0].content
    assert memory.content == 'Ærø 🐟 "quoted"'


async def test_remember_many_normalizes_items(make_client):
    script = Script(httpx.Response(201, json={"memories": [memory_json(1), memory_json(2)]}))
    memories = await call(
        make_client(script),
        "remember_many",
        [
            "likes tea",
            {"content": "lives in Oslo", "metadata": {"k": 1}, "key": "city", "session_id": "s2"},
        ],
        user_id="u1",
        agent_id="bot",
        session_id="s1",
    )
    assert script.requests[0].url.path == "/v1/memories/batch"
    assert script.bodies()[0] == {
        "user_id": "u1",
        "agent_id": "bot",
        "session_id": "s1",
        "items": [
            {"content": "likes tea"},
            {"content": "lives in Oslo", "metadata": {"k": 1}, "key": "city", "session_id": "s2"},
        ],
    }
    assert [m.id for m in memories] == [memory_json(1)["id"], memory_json(2)["id"]]


@pytest.mark.parametrize(
    ("items", "match"),
    [
        ("just a string", "wrap"),
        ({"content": "x"}, "wrap"),
        ([{"text": "x"}], "unknown"),
        ([{"metadata": {}}], "content"),
        ([42], "str or a mapping"),
    ],
)
async def test_remember_many_refuses_malformed_items_before_sending(make_client, items, match):
    script = Script()
    with pytest.raises(TypeError, match=match):
        await call(make_client(script), "remember_many", items, user_id="u1", agent_id="bot")
    assert script.requests == []


async def test_recall_sends_the_query_and_reads_scores(make_client):
    answer = {
        "results": [
            {"memory": memory_json(1), "score": 7.41},
            {"memory": memory_json(2), "score": 1.5},
        ]
    }
    script = Script(httpx.Response(200, json=answer))
    results = await call(
        make_client(script),
        "recall",
        "what plan?",
        user_id="u1",
        limit=10,
        offset=20,
        filters={"priority": {"$gte": 2}},
    )
    request = script.requests[0]
    assert (request.method, request.url.path) == ("POST", "/v1/memories/search")
    assert script.bodies()[0] == {
        "query": "what plan?",
        "user_id": "u1",
        "filters": {"priority": {"$gte": 2}},
        "limit": 10,
        "offset": 20,
    }
    assert all(isinstance(r, RecalledMemory) for r in results)
    assert [r.score for r in results] == [7.41, 1.5]


async def test_recall_defaults(make_client):
    script = Script(httpx.Response(200, json={"results": []}))
    assert await call(make_client(script), "recall", "q", user_id="u1", agent_id="bot") == []
    assert script.bodies()[0] == {"query": "q", "user_id": "u1", "agent_id": "bot", "limit": 5}


async def test_get_update_forget(make_client):
    mid = memory_json()["id"]
    script = Script(
        httpx.Response(200, json=memory_json()),
        httpx.Response(200, json=memory_json(content="new", metadata={"a": 1})),
        httpx.Response(204),
    )
    client = make_client(script)
    assert (await call(client, "get", mid)).id == mid
    updated = await call(client, "update", mid, content="new", metadata={"a": 1})
    assert updated.content == "new" and updated.metadata == {"a": 1}
    assert await call(client, "forget", mid) is None
    assert [(r.method, r.url.path) for r in script.requests] == [
        ("GET", f"/v1/memories/{mid}"),
        ("PATCH", f"/v1/memories/{mid}"),
        ("DELETE", f"/v1/memories/{mid}"),
    ]
    assert script.bodies() == [None, {"content": "new", "metadata": {"a": 1}}, None]


async def test_update_needs_something_to_change(make_client):
    script = Script()
    with pytest.raises(TypeError, match="content, metadata"):
        await call(make_client(script), "update", "mem_1")
    assert script.requests == []


@pytest.mark.parametrize("memory_id", ["../usage", "mem_1/../../x", "a b?c#d"])
async def test_a_memory_id_stays_one_path_segment(make_client, memory_id):
    script = Script(httpx.Response(200, json=memory_json()))
    await call(make_client(script), "get", memory_id)
    raw = script.requests[0].url.raw_path.decode()
    assert (
        raw.startswith("/v1/memories/")
        and raw.count("/") == 3
        and "?" not in raw
        and "#" not in raw
    )


@pytest.mark.parametrize("memory_id", ["", None, 7])
async def test_a_memory_id_must_be_a_non_empty_string(make_client, memory_id):
    with pytest.raises(TypeError, match="memory_id"):
        await call(make_client(Script()), "get", memory_id)


async def test_forget_all_sends_its_scope_as_query_parameters(make_client):
    script = Script(httpx.Response(200, json={"deleted": 3}))
    deleted = await call(
        make_client(script), "forget_all", user_id="u1", agent_id="bot", keys=["a", "b"]
    )
    request = script.requests[0]
    assert (request.method, request.url.path) == ("DELETE", "/v1/memories")
    assert query(request) == [("user_id", "u1"), ("agent_id", "bot"), ("key", "a"), ("key", "b")]
    assert deleted == 3


async def test_keys_must_be_a_sequence_not_a_string(make_client):
    with pytest.raises(TypeError, match="keys"):
        await call(make_client(Script()), "forget_all", user_id="u1", keys="abc")


async def test_usage_and_scopes(make_client):
    script = Script(
        httpx.Response(200, json=usage_json()),
        httpx.Response(
            200, json={"scopes": [{"user_id": "u1", "agent_id": "bot", "memories": 12}]}
        ),
    )
    client = make_client(script)
    usage = await call(client, "usage")
    assert isinstance(usage, Usage) and (usage.memories_limit, usage.requests_limit) == (500, 100)
    scopes = await call(client, "list_scopes", user_id="u1")
    assert scopes == [Scope(user_id="u1", agent_id="bot", memories=12)]
    assert [r.url.path for r in script.requests] == ["/v1/usage", "/v1/scopes"]
    assert query(script.requests[1]) == [("user_id", "u1")]


async def test_unlimited_usage_reads_as_none(make_client):
    body = usage_json() | {"plan": "unlimited", "memories_limit": None, "requests_limit": None}
    usage = await call(make_client(Script(httpx.Response(200, json=body))), "usage")
    assert usage.memories_limit is None and usage.requests_limit is None


async def test_unknown_fields_from_a_newer_server_are_kept(make_client):
    body = memory_json(importance=0.9)
    memory = await call(make_client(Script(httpx.Response(200, json=body))), "get", body["id"])
    assert memory.model_extra == {"importance": 0.9}


# -- lazy listing --------------------------------------------------------------------------


def pages(total: int, size: int) -> Script:
    """A server holding ``total`` memories, answering pages of ``size`` with cursors."""

    def answer(request: httpx.Request) -> httpx.Response:
        params = dict(query(request))
        start = int(params.get("cursor", "c0")[1:])
        end = min(start + size, total)
        cursor = f"c{end}" if end < total else None
        memories = [memory_json(i) for i in range(start, end)]
        return httpx.Response(200, json={"memories": memories, "next_cursor": cursor})

    return Script(answer)


async def test_list_memories_fetches_pages_as_you_iterate(make_client, flavor):
    script = pages(total=7, size=3)
    iterator = make_client(script).list_memories(user_id="u1", page_size=3)
    assert script.requests == []  # nothing until iterated

    async def take(n: int) -> list[Memory]:
        out = []
        for _ in range(n):
            out.append(await anext(iterator) if flavor == "async" else next(iterator))
        return out

    assert [m.content for m in await take(1)] == ["memory 0"]
    assert len(script.requests) == 1
    await take(2)
    assert len(script.requests) == 1  # the first page still serves
    await take(1)
    assert len(script.requests) == 2
    rest = await collect(iterator)
    assert [m.content for m in rest] == ["memory 4", "memory 5", "memory 6"]
    assert len(script.requests) == 3
    cursors = [dict(query(r)).get("cursor") for r in script.requests]
    assert cursors == [None, "c3", "c6"]


async def test_list_memories_sends_its_filters(make_client):
    script = pages(total=0, size=50)
    out = await collect(
        make_client(script).list_memories(
            user_id="u1",
            agent_id="bot",
            session_id="s1",
            keys=["k1", "k2"],
            filters={"topic": "billing"},
        )
    )
    assert out == []
    request = script.requests[0]
    assert (request.method, request.url.path) == ("GET", "/v1/memories")
    assert query(request) == [
        ("user_id", "u1"),
        ("agent_id", "bot"),
        ("session_id", "s1"),
        ("key", "k1"),
        ("key", "k2"),
        ("filters", '{"topic":"billing"}'),
        ("limit", "50"),
    ]


async def test_stopping_early_fetches_no_more_pages(make_client):
    script = pages(total=1000, size=10)
    count = 0
    iterator = make_client(script).list_memories(user_id="u1", page_size=10)
    if hasattr(iterator, "__aiter__"):
        async for _ in iterator:
            count += 1
            if count == 15:
                break
    else:
        for _ in iterator:
            count += 1
            if count == 15:
                break
    assert len(script.requests) == 2


async def test_a_repeated_cursor_stops_the_listing_with_an_error(make_client):
    script = Script(
        httpx.Response(200, json={"memories": [memory_json(1)], "next_cursor": "c1"}),
        httpx.Response(200, json={"memories": [memory_json(2)], "next_cursor": "c1"}),
    )
    seen: list[Memory] = []
    with pytest.raises(APIResponseValidationError, match="cursor 'c1' a second time"):
        iterator = make_client(script).list_memories(user_id="u1")
        if hasattr(iterator, "__aiter__"):
            async for memory in iterator:
                seen.append(memory)
        else:
            seen.extend(iterator)
    assert [m.content for m in seen] == ["memory 1", "memory 2"]  # each page once, then the error
    assert len(script.requests) == 2


# -- what JSON cannot carry ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "args", "kwargs", "field"),
    [
        (
            "remember",
            ["hi"],
            {"agent_id": "bot", "metadata": {"score": float("nan")}},
            "metadata.score",
        ),
        (
            "remember_many",
            [[{"content": "a"}, {"content": "b", "metadata": {"w": [1.0, float("inf")]}}]],
            {"agent_id": "bot"},
            "items[1].metadata.w[1]",
        ),
        ("recall", ["tea"], {"filters": {"rank": float("-inf")}}, "filters.rank"),
        (
            "batch",
            [[Op.remember("hi", user_id="u1", agent_id="bot", metadata={"x": float("nan")})]],
            {},
            "operations[0].metadata.x",
        ),
    ],
)
async def test_nan_or_infinity_is_refused_before_sending(make_client, method, args, kwargs, field):
    script = Script()
    if method != "batch":
        kwargs = {"user_id": "u1", **kwargs}
    with pytest.raises(BadRequestError, match="NaN or infinite") as error:
        await call(make_client(script), method, *args, **kwargs)
    assert (error.value.code, error.value.field) == ("invalid_json", field)
    assert script.requests == []


async def test_nan_in_listing_filters_is_refused_before_sending(make_client):
    script = pages(total=1, size=50)
    with pytest.raises(BadRequestError, match=r"filters\.score is NaN"):
        await collect(
            make_client(script).list_memories(user_id="u1", filters={"score": float("nan")})
        )
    assert script.requests == []


# -- batch and Op ----------------------------------------------------------------------------


async def test_batch_parses_each_result_by_its_op(make_client):
    m1, m2 = memory_json(1), memory_json(2)
    results = [
        {"memory": m1},
        {"memories": [m1, m2]},
        {"results": [{"memory": m2, "score": 3.0}]},
        {"memory": m1},
        {"memory": m2},
        {"deleted": 1},
        {"deleted": 4},
        {"memories": [m1], "next_cursor": "c1"},
        {"usage": usage_json()},
    ]
    operations = [
        Op.remember("a", user_id="u1", agent_id="bot"),
        Op.remember_many(["a", "b"], user_id="u1", agent_id="bot"),
        Op.recall("a", user_id="u1"),
        Op.get(m1["id"]),
        Op.update(m2["id"], content="b2"),
        Op.forget(m1["id"]),
        Op.forget_all(user_id="u1"),
        Op.list(user_id="u1", limit=1),
        Op.usage(),
    ]
    script = Script(httpx.Response(200, json={"results": results}))
    out = await call(make_client(script), "batch", operations)
    request = script.requests[0]
    assert (request.method, request.url.path) == ("POST", "/v1/batch")
    assert script.bodies()[0] == {"operations": operations}
    remembered, many, recalled, got, updated, forgot, forgot_all, page, usage = out
    assert remembered.id == m1["id"]
    assert [m.id for m in many] == [m1["id"], m2["id"]]
    assert recalled[0].score == 3.0 and recalled[0].memory.id == m2["id"]
    assert got.id == m1["id"] and updated.id == m2["id"]
    assert (forgot, forgot_all) == (1, 4)
    assert page[0][0].id == m1["id"] and page[1] == "c1"
    assert isinstance(usage, Usage)


@pytest.mark.parametrize("operation", [{"op": "explode"}, {"memory_id": "mem_1"}])
async def test_batch_refuses_unknown_ops_before_sending(make_client, operation):
    script = Script()
    with pytest.raises(ValueError, match=r"operations\[1\]"):
        await call(make_client(script), "batch", [Op.usage(), operation])
    assert script.requests == []


def test_op_builders_give_the_contract_shapes():
    assert Op.remember("c", user_id="u", agent_id="a", metadata={"m": 1}, key="k") == {
        "op": "remember",
        "content": "c",
        "user_id": "u",
        "agent_id": "a",
        "metadata": {"m": 1},
        "key": "k",
    }
    assert Op.remember_many(
        ["x", {"content": "y", "key": "k"}], user_id="u", agent_id="a", session_id="s"
    ) == {
        "op": "remember_many",
        "user_id": "u",
        "agent_id": "a",
        "session_id": "s",
        "items": [{"content": "x"}, {"content": "y", "key": "k"}],
    }
    assert Op.recall("q", user_id="u") == {"op": "recall", "query": "q", "user_id": "u", "limit": 5}
    assert Op.recall(
        "q", user_id="u", agent_id="a", limit=2, offset=4, filters={"t": 1}, session_id="s"
    ) == {
        "op": "recall",
        "query": "q",
        "user_id": "u",
        "agent_id": "a",
        "session_id": "s",
        "filters": {"t": 1},
        "limit": 2,
        "offset": 4,
    }
    assert Op.get("mem_1") == {"op": "get", "memory_id": "mem_1"}
    assert Op.update("mem_1", metadata={}) == {"op": "update", "memory_id": "mem_1", "metadata": {}}
    assert Op.forget("mem_1") == {"op": "forget", "memory_id": "mem_1"}
    assert Op.forget_all(user_id="u", keys=("k1", "k2")) == {
        "op": "forget_all",
        "user_id": "u",
        "keys": ["k1", "k2"],
    }
    assert Op.list(user_id="u", keys=["k"], cursor="c", filters={"t": 1}) == {
        "op": "list",
        "user_id": "u",
        "filters": {"t": 1},
        "keys": ["k"],
        "limit": 50,
        "cursor": "c",
    }
    assert Op.usage() == {"op": "usage"}


def test_op_builders_refuse_what_the_server_would():
    with pytest.raises(TypeError):
        Op.update("mem_1")
    with pytest.raises(TypeError):
        Op.remember_many("not a list", user_id="u", agent_id="a")
    with pytest.raises(TypeError):
        Op.list(user_id="u", keys="k")


def test_op_results_are_plain_json():
    op = Op.remember("c", user_id="u", agent_id="a", metadata={"nested": {"x": [1, 2]}})
    assert json.loads(json.dumps(op)) == op


def test_provenance_gives_each_time_as_sent():
    from memlayer_integrations import Memory

    fields = {"id": "mem_1", "content": "c", "user_id": "u", "agent_id": "a"}
    same = Memory.model_validate(
        {**fields, "created_at": "2026-11-27T10:00:00Z", "updated_at": "2026-11-27T10:00:00Z"}
    )
    assert (
        same.provenance()["created_at"]
        == same.provenance()["updated_at"]
        == "2026-11-27T10:00:00+00:00"
    )
    later = Memory.model_validate(
        {**fields, "created_at": "2026-11-27T10:00:00Z", "updated_at": "2026-11-28T09:30:00Z"}
    )
    assert (later.provenance()["created_at"], later.provenance()["updated_at"]) == (
        "2026-11-27T10:00:00+00:00",
        "2026-11-28T09:30:00+00:00",
    )
    # The same instant in another offset keeps its own spelling.
    shifted = Memory.model_validate(
        {**fields, "created_at": "2026-11-27T10:00:00Z", "updated_at": "2026-11-27T11:00:00+01:00"}
    )
    assert shifted.provenance()["updated_at"] == "2026-11-27T11:00:00+01:00"


def test_recall_asks_for_reasons_only_when_told():
    assert "explain" not in Op.recall("q", user_id="u")
    assert Op.recall("q", user_id="u", explain=True)["explain"] is True
