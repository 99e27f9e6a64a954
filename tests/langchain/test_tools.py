"""The memory tools: langchain-tests standard suites for each, then scope, model-safe errors
and error propagation through create_agent's tool node."""

from __future__ import annotations

import json

import httpx
import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_tests.integration_tests import ToolsIntegrationTests
from langchain_tests.unit_tests import ToolsUnitTests

from memlayer_integrations import AuthenticationError, MemLayerClient
from memlayer_integrations._constants import MAX_QUERY_CHARS
from memlayer_integrations.langchain import MemLayerScopeError, MemLayerToolkit
from memlayer_integrations.langchain.tools import ForgetTool, RecallTool, RememberTool

from ._support import ScriptedChatModel, mock_clients


class _ServerParams:
    example: dict = {}

    @pytest.fixture(autouse=True)
    def _server(self, base_url: str, api_key: str) -> None:
        with MemLayerClient(api_key=api_key, base_url=base_url) as client:
            self._memory_id = client.remember("alice likes tea", user_id="alice", agent_id="bot").id
        self._params = {
            "user_id": "alice",
            "agent_id": "bot",
            "api_key": api_key,
            "base_url": base_url,
        }

    @property
    def tool_constructor_params(self) -> dict:
        return self._params


class TestRememberUnit(_ServerParams, ToolsUnitTests):
    tool_constructor = RememberTool
    tool_invoke_params_example = {"content": "alice lives in Oslo"}


class TestRememberIntegration(_ServerParams, ToolsIntegrationTests):
    tool_constructor = RememberTool
    tool_invoke_params_example = {"content": "alice lives in Oslo"}


class TestRecallUnit(_ServerParams, ToolsUnitTests):
    tool_constructor = RecallTool
    tool_invoke_params_example = {"query": "tea"}


class TestRecallIntegration(_ServerParams, ToolsIntegrationTests):
    tool_constructor = RecallTool
    tool_invoke_params_example = {"query": "tea"}


class TestForgetUnit(_ServerParams, ToolsUnitTests):
    tool_constructor = ForgetTool
    tool_invoke_params_example = {"memory_id": "mem_" + "0" * 32}


class TestForgetIntegration(_ServerParams, ToolsIntegrationTests):
    tool_constructor = ForgetTool

    @property
    def tool_invoke_params_example(self) -> dict:
        return {"memory_id": self._memory_id}


def test_schemas_never_expose_the_scope(api_key: str, base_url: str) -> None:
    tools = MemLayerToolkit(api_key=api_key, base_url=base_url).get_tools()
    assert [t.name for t in tools] == ["remember", "recall", "forget"]
    for t in tools:
        fields = set(t.tool_call_schema.model_json_schema()["properties"])
        assert fields in ({"content"}, {"query"}, {"memory_id"})


def test_remember_recall_forget_with_scope_from_configurable(clients: tuple) -> None:
    sync, async_, _ = clients
    remember, recall, forget = MemLayerToolkit(
        agent_id="bot", client=sync, async_client=async_
    ).get_tools()
    cfg = {"configurable": {"user_id": "alice"}}
    out = remember.invoke({"content": "alice is vegan"}, cfg)
    memory_id = out.split("[")[1].split("]")[0]
    assert f"[{memory_id}] alice is vegan" in recall.invoke({"query": "vegan"}, cfg)
    assert (
        recall.invoke({"query": "vegan"}, {"configurable": {"user_id": "bob"}})
        == "No relevant memories."
    )
    # Bob's run cannot forget Alice's memory by its id.
    assert "No memory with that id" in forget.invoke(
        {"memory_id": memory_id}, {"configurable": {"user_id": "bob"}}
    )
    assert forget.invoke({"memory_id": memory_id}, cfg) == f"Forgot [{memory_id}]."
    with pytest.raises(MemLayerScopeError):
        remember.invoke({"content": "x"})


async def test_recoverable_errors_reach_the_model_safely(clients: tuple, api_key: str) -> None:
    sync, async_, _ = clients
    _, _, forget = MemLayerToolkit(
        user_id="alice", agent_id="bot", client=sync, async_client=async_
    ).get_tools()
    msg = await forget.ainvoke(
        {
            "name": "forget",
            "args": {"memory_id": "mem_" + "f" * 32},
            "id": "c1",
            "type": "tool_call",
        }
    )
    assert isinstance(msg, ToolMessage) and msg.status == "error"
    assert (
        "No memory with that id" in msg.content
        and api_key not in msg.content
        and "req_" not in msg.content
    )


async def test_recall_sends_at_most_the_longest_query_the_server_takes() -> None:
    queries: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        queries.append(json.loads(request.content)["query"])
        return httpx.Response(200, json={"results": []})

    sync, async_ = mock_clients(handler, "ml_live_" + "a" * 32)
    recall = RecallTool(user_id="alice", agent_id="bot", client=sync, async_client=async_)
    long_query = "which tea " * 500
    assert recall.invoke({"query": long_query}) == "No relevant memories."
    assert await recall.ainvoke({"query": long_query}) == "No relevant memories."
    assert queries == [long_query[:MAX_QUERY_CHARS]] * 2


def _agent_with(tools, call: dict):
    model = ScriptedChatModel(
        responses=[
            AIMessage(content="", tool_calls=[{**call, "id": "c1", "type": "tool_call"}]),
            AIMessage("ok"),
        ]
    )
    return create_agent(model, tools=tools), model


def test_tool_errors_in_an_agent(base_url: str, api_key: str) -> None:
    tools = MemLayerToolkit(
        user_id="alice", agent_id="bot", api_key=api_key, base_url=base_url
    ).get_tools()
    agent, model = _agent_with(tools, {"name": "forget", "args": {"memory_id": "mem_" + "f" * 32}})
    agent.invoke({"messages": [HumanMessage("forget it")]})
    tool_msg = model.prompts[1][-1]
    assert tool_msg.type == "tool" and "No memory with that id" in tool_msg.content

    bad = MemLayerToolkit(
        user_id="alice", agent_id="bot", api_key="ml_live_" + "0" * 32, base_url=base_url
    ).get_tools()
    agent, _ = _agent_with(bad, {"name": "recall", "args": {"query": "tea"}})
    with pytest.raises(AuthenticationError):
        agent.invoke({"messages": [HumanMessage("what do I like")]})


def test_scope_from_the_runs_context_in_an_agent(clients: tuple) -> None:
    # context= is how LangChain passes run data now; configurable still works (above).
    sync, async_, _ = clients
    tools = MemLayerToolkit(client=sync, async_client=async_).get_tools()
    agent, _ = _agent_with(tools, {"name": "remember", "args": {"content": "carol likes figs"}})
    agent.invoke(
        {"messages": [HumanMessage("remember that")]},
        context={"user_id": "carol", "agent_id": "ctx_bot"},
    )
    [stored] = list(sync.list_memories(user_id="carol"))
    assert (stored.agent_id, stored.content) == ("ctx_bot", "carol likes figs")


def test_forget_refuses_a_memory_of_another_agent_of_the_same_user(clients: tuple) -> None:
    sync, async_, _ = clients
    other = sync.remember("dave likes pears", user_id="dave", agent_id="other_bot")
    [forget] = [
        t
        for t in MemLayerToolkit(
            user_id="dave", agent_id="bot", client=sync, async_client=async_
        ).get_tools()
        if t.name == "forget"
    ]
    assert "No memory with that id" in forget.invoke({"memory_id": other.id})
    assert sync.get(other.id).content == "dave likes pears"
