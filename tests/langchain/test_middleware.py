"""MemLayerMiddleware in a real create_agent loop against the local server, with a scripted
model: recall reaches the model, per-user isolation, requests per turn, economy mode,
errors."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool

from memlayer_integrations import AuthenticationError, InternalServerError
from memlayer_integrations._constants import MAX_QUERY_CHARS
from memlayer_integrations.langchain import MemLayerMiddleware, MemLayerScopeError

from ._support import ScriptedChatModel, mock_clients

FACT = "My favourite drink is cardamom tea"


@tool
def lookup(term: str) -> str:
    """Look a term up."""
    return f"{term}: nothing special"


def _tool_rounds(n: int) -> list[AIMessage]:
    calls = [
        AIMessage(
            content="",
            tool_calls=[
                {
                    "name": "lookup",
                    "args": {"term": f"t{i}"},
                    "id": f"call_{i}",
                    "type": "tool_call",
                }
            ],
        )
        for i in range(n)
    ]
    return [*calls, AIMessage(content="Done.")]


def _agent(memory: MemLayerMiddleware, rounds: int = 0, **kwargs):
    model = ScriptedChatModel(responses=_tool_rounds(rounds))
    return create_agent(
        model, tools=[lookup], system_prompt="You are helpful.", middleware=[memory], **kwargs
    ), model


def _ask(agent, text: str, user: str):
    return agent.invoke({"messages": [HumanMessage(text)]}, {"configurable": {"user_id": user}})


async def _aask(agent, text: str, user: str):
    # context=, not configurable: on Python 3.10 LangGraph cannot hand the run's config to
    # async hooks (asyncio tasks take no context there), and context= works everywhere.
    return await agent.ainvoke({"messages": [HumanMessage(text)]}, context={"user_id": user})


@pytest.fixture
def memory(clients: tuple) -> MemLayerMiddleware:
    sync, async_, _ = clients
    return MemLayerMiddleware(
        agent_id="bot", client=sync, async_client=async_, write_policy="everything"
    )


def test_what_the_user_said_is_recalled_next_run_for_that_user_only(memory, counter) -> None:
    agent, _ = _agent(memory)
    _ask(agent, FACT, "alice")
    agent2, model2 = _agent(memory)
    _ask(agent2, "What drink should I order? Something like tea?", "alice")
    systems = model2.system_texts()
    assert len(systems) == 1  # merged into the existing system prompt, not a second one
    assert systems[0].startswith("You are helpful.")
    assert FACT in systems[0] and "[mem_" in systems[0]

    agent3, model3 = _agent(memory)
    _ask(agent3, "What drink should I order? Something like tea?", "bob")
    assert FACT not in model3.system_texts()[0]


def test_a_memory_already_in_the_conversation_is_not_repeated(memory) -> None:
    agent, _ = _agent(memory)
    _ask(agent, FACT, "alice")
    agent2, model2 = _agent(memory)
    _ask(agent2, FACT, "alice")  # the same words again: the conversation already holds them
    assert FACT not in model2.system_texts()[0]


@pytest.mark.parametrize("rounds", [0, 3])
def test_at_most_two_requests_per_turn_whatever_the_tool_rounds(
    memory, counter, rounds: int
) -> None:
    agent, model = _agent(memory, rounds)
    _ask(agent, FACT, "alice")
    counter.take()
    agent, model = _agent(memory, rounds)
    _ask(agent, "Which tea do I like?", "alice")
    assert counter.take() == ["POST /v1/memories/search", "POST /v1/memories/batch"]
    assert len(model.prompts) == rounds + 1
    # Every model call of the turn sees the memories, recalled once.
    assert all(FACT in next(str(m.text) for m in p if m.type == "system") for p in model.prompts)


async def test_async_hooks_use_the_async_client(clients: tuple) -> None:
    sync, async_, counter = clients
    sync.close()  # the async path must not touch the sync client
    memory = MemLayerMiddleware(
        agent_id="bot", async_client=async_, client=sync, write_policy="everything"
    )
    agent, _ = _agent(memory, 3)
    await _aask(agent, FACT, "alice")
    agent, model = _agent(memory, 3)
    counter.take()
    await _aask(agent, "Which tea do I like?", "alice")
    assert counter.take() == ["POST /v1/memories/search", "POST /v1/memories/batch"]
    assert FACT in model.system_texts()[0]


def test_economy_mode_is_one_request_per_turn_and_loses_nothing(clients: tuple) -> None:
    sync, async_, counter = clients
    memory = MemLayerMiddleware(
        agent_id="bot",
        client=sync,
        async_client=async_,
        economy=True,
        remember="both",
        write_policy="everything",
    )
    per_turn = []
    for text in [FACT, "I live in Bergen", "Which tea do I like?", "Where do I live?"]:
        agent, model = _agent(memory, rounds=1)
        _ask(agent, text, "alice")
        per_turn.append(counter.take())
    assert per_turn[0] == ["POST /v1/memories/search"]  # nothing queued yet
    assert per_turn[1:] == [["POST /v1/batch"]] * 3
    assert FACT in model.system_texts()[0] or "Bergen" in model.system_texts()[0]
    assert memory.pending == 2  # the last turn: user message and reply
    memory.close()
    assert counter.take() == ["POST /v1/batch"]
    assert memory.pending == 0
    stored = [m.content for m in sync.list_memories(user_id="alice", agent_id="bot")]
    assert stored.count(FACT) == 1 and "Where do I live?" in stored and "Done." in stored
    assert len(stored) == 5  # four user messages; "Done." four times is one memory


def _failing(status: int, code: str, calls: list):
    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(
            status,
            json={"error": {"code": code, "message": "x", "field": None}, "request_id": "req_1"},
        )

    return handler


def test_fail_open_goes_on_without_memories_and_keeps_the_write(clients: tuple, caplog) -> None:
    sync, _, _ = clients
    calls: list[str] = []
    down, adown = mock_clients(_failing(503, "internal_error", calls), sync._api_key)
    memory = MemLayerMiddleware(agent_id="bot", client=down, async_client=adown, fail_open=True)
    agent, model = _agent(memory)
    with caplog.at_level(logging.WARNING, logger="memlayer_integrations"):
        result = _ask(agent, FACT, "alice")
    assert result["messages"][-1].content == "Done."
    assert model.system_texts() == ["You are helpful."]
    assert "goes on without it" in caplog.text
    assert memory.pending == 1  # the write that failed waits for the next request


def test_without_fail_open_transient_errors_are_raised(clients: tuple) -> None:
    calls: list[str] = []
    down, adown = mock_clients(_failing(503, "internal_error", calls), clients[0]._api_key)
    agent, _ = _agent(MemLayerMiddleware(agent_id="bot", client=down, async_client=adown))
    with pytest.raises(Exception) as info:
        _ask(agent, FACT, "alice")
    assert type(info.value).__name__ == "InternalServerError"


@pytest.mark.parametrize("fail_open", [False, True])
def test_authentication_errors_always_propagate(base_url: str, fail_open: bool) -> None:
    memory = MemLayerMiddleware(
        agent_id="bot", api_key="ml_live_" + "0" * 32, base_url=base_url, fail_open=fail_open
    )
    agent, _ = _agent(memory)
    with pytest.raises(AuthenticationError):
        _ask(agent, FACT, "alice")


async def test_economy_batch_failure_restores_the_queue(clients: tuple) -> None:
    sync, async_, _ = clients
    memory = MemLayerMiddleware(agent_id="bot", client=sync, async_client=async_, economy=True)
    agent, _ = _agent(memory)
    await _aask(agent, FACT, "alice")
    assert memory.pending == 1
    calls: list[str] = []
    _, adown = mock_clients(_failing(503, "internal_error", calls), sync._api_key)
    memory._clients._async = adown
    with pytest.raises(InternalServerError):
        await _aask(agent, "Which tea?", "alice")
    assert calls == ["/v1/batch"] and memory.pending == 1
    memory._clients._async = async_
    await memory.aclose()
    assert [m.content for m in sync.list_memories(user_id="alice", agent_id="bot")] == [FACT]


def test_a_long_message_recalls_with_the_longest_query_the_server_takes() -> None:
    queries: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/memories/search":
            queries.append(json.loads(request.content)["query"])
            return httpx.Response(200, json={"results": []})
        return httpx.Response(201, json={"memories": []})

    sync, async_ = mock_clients(handler, "ml_live_" + "a" * 32)
    agent, _ = _agent(MemLayerMiddleware(agent_id="bot", client=sync, async_client=async_))
    long_message = "tell me about tea " * 300
    _ask(agent, long_message, "alice")
    assert queries == [long_message[:MAX_QUERY_CHARS]]


def test_scope_from_context_and_missing_scope(clients: tuple) -> None:
    sync, async_, _ = clients
    memory = MemLayerMiddleware(client=sync, async_client=async_)
    agent, _ = _agent(memory, context_schema=dict)
    agent.invoke(
        {"messages": [HumanMessage(FACT)]}, context={"user_id": "carol", "agent_id": "ctx_bot"}
    )
    assert [m.content for m in sync.list_memories(user_id="carol", agent_id="ctx_bot")] == [FACT]
    with pytest.raises(MemLayerScopeError, match="user_id"):
        agent.invoke({"messages": [HumanMessage(FACT)]}, context={"agent_id": "ctx_bot"})
