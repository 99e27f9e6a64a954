"""MemLayerToolSpec: schemas, the three tools sync and async, scope safety, and errors
inside a FunctionAgent."""

from __future__ import annotations

import secrets

import httpx
import pytest
from llama_index.core.agent.workflow import FunctionAgent, ToolCallResult

from memlayer_integrations import (
    APIConnectionError,
    AuthenticationError,
    InternalServerError,
    NotFoundError,
)
from memlayer_integrations.llama_index import MemLayerToolSpec, stop_on_denied

from ._support import mock_clients, recorded_clients, tool_rounds_llm


def spec_for(clients: tuple, user_id: str = "u1") -> MemLayerToolSpec:
    return MemLayerToolSpec(
        user_id, "bot", session_id="s1", client=clients[0], async_client=clients[1]
    )


def test_schemas_never_expose_scope(clients: tuple) -> None:
    tools = {t.metadata.name: t for t in spec_for(clients).to_tool_list()}
    assert set(tools) == {"remember", "recall", "forget"}
    params = {name: t.metadata.get_parameters_dict() for name, t in tools.items()}
    assert {n: sorted(p["properties"]) for n, p in params.items()} == {
        "remember": ["content"],
        "recall": ["query"],
        "forget": ["memory_id"],
    }
    for name, tool in tools.items():
        text = str(params[name]) + tool.metadata.description
        assert "user_id" not in text and "agent_id" not in text
        assert tool.async_fn is not None


@pytest.mark.parametrize("flavor", ["sync", "async"])
async def test_remember_recall_forget(clients: tuple, flavor: str) -> None:
    tools = {t.metadata.name: t for t in spec_for(clients).to_tool_list()}

    async def use(name: str, **kwargs):
        return tools[name].call(**kwargs) if flavor == "sync" else await tools[name].acall(**kwargs)

    saved = await use("remember", content="User prefers tea over coffee")
    [stored] = list(clients[0].list_memories(user_id="u1", agent_id="bot"))
    assert stored.id in saved.content and stored.session_id == "s1"
    found = await use("recall", query="tea or coffee")
    assert f"[{stored.id}] User prefers tea over coffee" in found.content
    assert "No memories" in (await use("recall", query="bicycle")).content
    assert (await use("forget", memory_id=stored.id)).content == f"Forgot memory {stored.id}."
    assert list(clients[0].list_memories(user_id="u1", agent_id="bot")) == []


@pytest.mark.parametrize("flavor", ["sync", "async"])
async def test_forget_refuses_another_users_memory(clients: tuple, flavor: str) -> None:
    theirs = clients[0].remember("Bob's secret", user_id="bob", agent_id="bot")
    spec = spec_for(clients)
    with pytest.raises(NotFoundError):
        spec.forget(theirs.id) if flavor == "sync" else await spec.aforget(theirs.id)
    assert clients[0].get(theirs.id).content == "Bob's secret"


async def test_agent_sees_a_safe_error_and_the_application_can_stop(base_url: str) -> None:
    key = "ml_live_" + secrets.token_hex(12)
    bad = recorded_clients(base_url, key)
    tools = spec_for(bad).to_tool_list()
    llm = tool_rounds_llm(1, "recall", tool_kwargs={"query": "anything"})

    # Left alone, the agent hands the model an error ToolOutput and carries on.
    handler = FunctionAgent(tools=tools, llm=llm).run("What do you know about me?")
    results = [ev async for ev in handler.stream_events() if isinstance(ev, ToolCallResult)]
    await handler
    output = results[0].tool_output
    assert output.is_error
    assert "this key is unknown" in output.content and key not in output.content
    assert isinstance(output.exception, AuthenticationError) and output.exception.status_code == 401
    assert key not in str(llm.seen[-1])  # what the model was shown

    # The documented way to stop instead (tool_spec module docstring).
    llm = tool_rounds_llm(1, "recall", tool_kwargs={"query": "x"})
    handler = FunctionAgent(tools=tools, llm=llm).run("hi")
    with pytest.raises(AuthenticationError) as raised:
        await stop_on_denied(handler)
    assert raised.value.code == "invalid_api_key" and handler.is_done()


async def test_stop_on_denied_returns_the_result_of_a_run_without_denial(clients: tuple) -> None:
    tools = spec_for(clients).to_tool_list()
    llm = tool_rounds_llm(1, "recall", tool_kwargs={"query": "anything"})
    result = await stop_on_denied(FunctionAgent(tools=tools, llm=llm).run("hi"))
    assert str(result)


def _outage(kind: str):
    def handler(request: httpx.Request) -> httpx.Response:
        if kind == "refused":
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(503, json={"error": {"code": "internal_error", "message": "down"}})

    return handler


@pytest.mark.parametrize("kind", ["refused", "503"])
@pytest.mark.parametrize("flavor", ["sync", "async"])
async def test_an_outage_is_an_error_output_for_the_model(kind: str, flavor: str, caplog) -> None:
    sync, async_ = mock_clients(_outage(kind), "ml_live_" + "a" * 32)
    spec = MemLayerToolSpec("u1", "bot", client=sync, async_client=async_)
    recall = {t.metadata.name: t for t in spec.to_tool_list()}["recall"]
    output = recall.call(query="tea") if flavor == "sync" else await recall.acall(query="tea")
    assert output.is_error and "answer without it" in output.content
    expected = APIConnectionError if kind == "refused" else InternalServerError
    assert isinstance(output.exception, expected)
    assert "http://memlayer.test" in caplog.text or kind == "503"


async def test_fail_open_false_raises_the_outage() -> None:
    sync, async_ = mock_clients(_outage("refused"), "ml_live_" + "a" * 32)
    spec = MemLayerToolSpec("u1", "bot", client=sync, async_client=async_, fail_open=False)
    remember = {t.metadata.name: t for t in spec.to_tool_list()}["remember"]
    with pytest.raises(
        APIConnectionError, match=r"could not reach MemLayer at http://memlayer\.test"
    ):
        remember.call(content="tea")
    with pytest.raises(APIConnectionError):
        await remember.acall(content="tea")


async def test_an_outage_inside_a_function_agent_lets_the_model_answer() -> None:
    sync, async_ = mock_clients(_outage("refused"), "ml_live_" + "a" * 32)
    tools = MemLayerToolSpec("u1", "bot", client=sync, async_client=async_).to_tool_list()
    llm = tool_rounds_llm(1, "recall", tool_kwargs={"query": "anything"})
    handler = FunctionAgent(tools=tools, llm=llm).run("What do you know about me?")
    results = [ev async for ev in handler.stream_events() if isinstance(ev, ToolCallResult)]
    await handler
    assert results[0].tool_output.is_error
    assert "answer without it" in results[0].tool_output.content


async def test_forget_names_the_id_rule_without_a_request() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(500)

    sync, async_ = mock_clients(handler, "ml_live_" + "a" * 32)
    spec = MemLayerToolSpec("u1", "bot", client=sync, async_client=async_)
    rule = "is not a memory id: a memory id is 'mem_' followed by 32 lowercase hex digits"
    with pytest.raises(ValueError, match=rule):
        spec.forget("abc")
    with pytest.raises(ValueError, match=rule):
        await spec.aforget("mem_" + "F" * 32)
    assert seen == []
