"""MemLayerMCPTools in-process, against a scripted transport: what the model is told for
each failure, which failures are remembered, and that no call outlives its deadline."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest
from mcp.shared.memory import create_connected_server_and_client_session

from memlayer_integrations import AsyncMemLayerClient, MemLayerScopeError
from memlayer_integrations.mcp import MemLayerMCPTools, create_server

from ._support import text

KEY = "ml_live_" + "a" * 32
MEM_ID = "mem_" + "1" * 32


def _error(status: int, code: str, message: str = "nope", **headers: str) -> httpx.Response:
    return httpx.Response(
        status,
        json={"error": {"code": code, "message": message, "field": None}},
        headers=headers,
    )


def _memory(user_id: str = "alice", agent_id: str = "desk") -> dict[str, Any]:
    return {
        "id": MEM_ID,
        "content": "likes tea",
        "user_id": user_id,
        "agent_id": agent_id,
        "metadata": {},
        "created_at": "2026-11-30T10:00:00Z",
        "updated_at": "2026-11-30T10:00:00Z",
    }


class Scripted:
    """A transport that answers with ``handler`` and logs ``METHOD /path`` of each request."""

    def __init__(self, handler: Callable[[httpx.Request], Any]) -> None:
        self.handler = handler
        self.requests: list[str] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        response = self.handler(request)
        if isinstance(response, httpx.Response):
            return response
        answered: httpx.Response = await response
        return answered

    def tools(self, call_timeout: float = 5.0, **kwargs: Any) -> MemLayerMCPTools:
        client = AsyncMemLayerClient(
            api_key=KEY,
            base_url="http://memlayer.test",
            max_retries=0,
            http_client=httpx.AsyncClient(transport=httpx.MockTransport(self)),
            **kwargs,
        )
        return MemLayerMCPTools(client, user_id="alice", agent_id="desk", call_timeout=call_timeout)


async def test_an_authentication_failure_is_remembered_and_not_sent_again() -> None:
    scripted = Scripted(lambda r: _error(401, "invalid_api_key", "invalid or missing API key"))
    tools = scripted.tools()
    first = await tools.recall("tea")
    second = await tools.remember("likes tea")
    third = await tools.forget(MEM_ID)
    assert first.isError and second.isError and third.isError
    assert text(first) == text(second) == text(third)
    assert "authentication failed: invalid or missing API key" in text(first)
    assert "MEMLAYER_API_KEY" in text(first) and "do not retry" in text(first)
    assert scripted.requests == ["POST /v1/memories/search"]


async def test_a_suspended_account_is_named_and_asked_again_next_time() -> None:
    scripted = Scripted(lambda r: _error(403, "account_suspended", "account suspended"))
    tools = scripted.tools()
    for _ in range(2):
        result = await tools.recall("tea")
        assert result.isError and "permission denied" in text(result)
    assert len(scripted.requests) == 2


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (_error(404, "not_found"), "Not found"),
        (_error(422, "validation_error", "content too long"), "rejected the input"),
        (_error(403, "memory_limit_reached"), "memory is full"),
        (_error(429, "daily_quota_exceeded"), "daily request quota is used up"),
        (_error(429, "rate_limited", **{"Retry-After": "3"}), "try again in about 3 seconds"),
        (_error(503, "unavailable"), "unavailable right now"),
        (httpx.Response(200, json={"unexpected": True}), "could not read"),
    ],
)
async def test_recoverable_failures_come_back_as_error_results(
    response: httpx.Response, expected: str
) -> None:
    result = await Scripted(lambda r: response).tools().remember("likes tea")
    assert result.isError
    assert expected in text(result).replace("Long-term memory", "memory")


async def test_an_outage_is_an_error_result() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    result = await Scripted(refuse).tools().recall("tea")
    assert result.isError and "unavailable right now" in text(result)


async def test_no_call_outlives_its_deadline() -> None:
    async def stall(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(30)
        return httpx.Response(200, json={"results": []})

    tools = Scripted(stall).tools(call_timeout=0.2)
    with anyio.fail_after(10):
        result = await tools.recall("tea")
    assert result.isError and "did not answer within 0.2 seconds" in text(result)


async def test_forget_leaves_a_memory_of_another_scope_alone() -> None:
    for owner in (_memory(user_id="bob"), _memory(agent_id="other")):

        def answer(request: httpx.Request, owner: dict[str, Any] = owner) -> httpx.Response:
            return httpx.Response(200, json=owner)

        scripted = Scripted(answer)
        result = await scripted.tools().forget(MEM_ID)
        assert result.isError and "No memory with id" in text(result)
        assert scripted.requests == [f"GET /v1/memories/{MEM_ID}"]  # no DELETE sent


async def test_recall_cuts_a_long_query_to_the_contracts_limit() -> None:
    queries: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        queries.append(json.loads(request.content)["query"])
        return httpx.Response(200, json={"results": []})

    result = await Scripted(answer).tools().recall("tea " * 2000)
    assert text(result) == "No relevant memories."
    assert len(queries[0]) == 4096


def test_a_scope_is_required_and_the_client_must_be_async() -> None:
    client = AsyncMemLayerClient(api_key=KEY)
    with pytest.raises(MemLayerScopeError):
        MemLayerMCPTools(client, user_id=" ", agent_id="desk")
    with pytest.raises(MemLayerScopeError):
        create_server(client, user_id="alice", agent_id="")
    with pytest.raises(ValueError, match="call_timeout"):
        MemLayerMCPTools(client, user_id="alice", agent_id="desk", call_timeout=0)
    with pytest.raises(TypeError, match="AsyncMemLayerClient"):
        create_server(object(), user_id="alice", agent_id="desk")  # type: ignore[arg-type]


async def test_create_server_lists_the_tools_resource_and_prompt() -> None:
    server = create_server(AsyncMemLayerClient(api_key=KEY), user_id="alice", agent_id="desk")
    assert [t.name for t in await server.list_tools()] == [
        "remember",
        "recall",
        "forget",
        "list_memories",
    ]
    assert [str(r.uri) for r in await server.list_resources()] == ["memlayer://memories"]
    assert [p.name for p in await server.list_prompts()] == ["recall_about"]


async def test_the_memories_resource_fails_with_the_tools_message() -> None:
    scripted = Scripted(lambda r: _error(401, "invalid_api_key", "invalid or missing API key"))
    tools = scripted.tools()
    with pytest.raises(RuntimeError, match="authentication failed"):
        await tools.memories_resource()
    assert (await tools.recall("tea")).isError
    assert scripted.requests == ["POST /v1/batch"]


@pytest.mark.parametrize("exact", ['{"a": 1}', "42", "[1, 2]", "  spaced\n", '"quoted"'])
async def test_text_reaches_memlayer_exactly_as_the_model_sent_it(exact: str) -> None:
    sent: list[str] = []

    def store(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content)["content"])
        return httpx.Response(201, json={**_memory(), "content": sent[-1]})

    tools = Scripted(store).tools()
    server = create_server(tools.client, user_id="alice", agent_id="desk")
    async with create_connected_server_and_client_session(server) as session:
        result = await session.call_tool("remember", {"text": exact})
    assert not result.isError, text(result)
    assert sent == [exact]
