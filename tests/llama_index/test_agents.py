"""MemLayerMemory with LlamaIndex's workflow agents, end to end on the local server."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Any

import pytest
from llama_index.core.agent.workflow import AgentWorkflow, FunctionAgent, ReActAgent
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.llms import MockFunctionCallingLLM
from llama_index.core.tools import FunctionTool
from llama_index.core.workflow import Context, JsonSerializer

from memlayer_integrations import AuthenticationError
from memlayer_integrations.llama_index import MemLayerMemory

from ._support import Recorder, recorded_clients, text_of, tool_rounds_llm


def lookup(x: str) -> str:
    """Look something up."""
    return f"result {x}"


LOOKUP = FunctionTool.from_defaults(lookup)


def memory_for(clients: tuple, user_id: str = "ada", **kwargs: Any) -> MemLayerMemory:
    # These tests count requests: every message is stored, questions included.
    kwargs.setdefault("write_policy", "everything")
    return MemLayerMemory(
        user_id=user_id, agent_id="bot", client=clients[0], async_client=clients[1], **kwargs
    )


def react_llm(answer: str) -> MockFunctionCallingLLM:
    seen: list[list[ChatMessage]] = []

    def respond(messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
        seen.append(list(messages))
        return ChatMessage(
            role=MessageRole.ASSISTANT, content=f"Thought: I can answer.\nAnswer: {answer}"
        )

    llm = MockFunctionCallingLLM(response_generator=respond)
    object.__setattr__(llm, "seen", seen)
    return llm


async def test_function_agent_recalls_once_per_user_message_across_tool_rounds(
    clients: tuple, recorder: Recorder
) -> None:
    clients[0].remember("Ada's favourite language is OCaml", user_id="ada", agent_id="bot")
    llm = tool_rounds_llm(3, "lookup")
    agent = FunctionAgent(tools=[LOOKUP], llm=llm, system_prompt="Be helpful.")
    memory = memory_for(clients)
    recorder.take()
    per_turn = []
    for text in ["Which language do I like?", "Tell me about OCaml", "Thanks"]:
        result = await agent.run(text, memory=memory)
        assert str(result) == "All done."
        per_turn.append(Recorder.ops(recorder.take()))
    assert per_turn == [["recall", "remember_many"]] * 3
    assert len(llm.seen) == 12  # 4 model calls per turn: the tool rounds really happened
    first_turn = llm.seen[:4]
    assert all("Ada's favourite language is OCaml" in text_of(m) for m in first_turn)
    assert all([x.role for x in m].count(MessageRole.SYSTEM) == 1 for m in llm.seen)
    stored = [m.content for m in clients[0].list_memories(user_id="ada", agent_id="bot")]
    # The same answer three times is one memory.
    assert stored[1:] == ["Which language do I like?", "All done.", "Tell me about OCaml", "Thanks"]


async def test_function_agent_economy_one_request_per_turn(
    clients: tuple, recorder: Recorder
) -> None:
    agent = FunctionAgent(tools=[LOOKUP], llm=tool_rounds_llm(2, "lookup"))
    memory = memory_for(clients, economy=True)
    counts = []
    for i in range(3):
        await agent.run(f"question {i}", memory=memory)
        counts.append(len(recorder.take()))
    assert counts == [1, 1, 1]
    await memory.aclose()
    # Three questions and one memory for the same answer given three times.
    assert len(list(clients[0].list_memories(user_id="ada", agent_id="bot"))) == 4


async def test_memories_persist_across_agents_and_users(clients: tuple) -> None:
    first = FunctionAgent(tools=[LOOKUP], llm=tool_rounds_llm(1, "lookup"))
    await first.run("My cat is called Whiskers", memory=memory_for(clients))

    llm = tool_rounds_llm(1, "lookup")
    second = FunctionAgent(tools=[LOOKUP], llm=llm)
    await second.run("What is my cat called?", memory=memory_for(clients))
    assert "My cat is called Whiskers" in text_of(llm.seen[0])

    stranger_llm = tool_rounds_llm(1, "lookup")
    stranger = FunctionAgent(tools=[LOOKUP], llm=stranger_llm)
    await stranger.run("What is my cat called?", memory=memory_for(clients, user_id="eve"))
    assert "Whiskers" not in text_of(stranger_llm.seen[0])


async def test_react_agent_and_agent_workflow(clients: tuple, recorder: Recorder) -> None:
    clients[0].remember("Ada lives in London", user_id="ada", agent_id="bot")
    llm = react_llm("London")
    react = ReActAgent(name="react", tools=[LOOKUP], llm=llm, system_prompt="Be helpful.")
    recorder.take()
    result = await react.run("Where do I live?", memory=memory_for(clients))
    assert "London" in str(result)
    assert "Ada lives in London" in text_of(llm.seen[0])
    assert Recorder.ops(recorder.take()) == ["recall", "remember_many"]

    workflow_llm = tool_rounds_llm(1, "lookup")
    workflow = AgentWorkflow(agents=[FunctionAgent(name="main", tools=[LOOKUP], llm=workflow_llm)])
    await workflow.run("Where do I live?", memory=memory_for(clients))
    assert "Ada lives in London" in text_of(workflow_llm.seen[0])
    assert Recorder.ops(recorder.take()) == ["recall", "remember_many"]


async def test_context_save_and_restore(
    base_url: str, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = FunctionAgent(tools=[LOOKUP], llm=tool_rounds_llm(1, "lookup", answer="Hello Ada."))
    ctx = Context(agent)
    memory = MemLayerMemory(
        user_id="ada", agent_id="bot", session_id="s1", api_key=api_key, base_url=base_url
    )
    await agent.run("My name is Ada", ctx=ctx, memory=memory)
    await memory.aclose()

    saved = json.dumps(ctx.to_dict(serializer=JsonSerializer()))
    assert api_key not in saved and "MemLayerMemory" in saved

    monkeypatch.setenv("MEMLAYER_API_KEY", api_key)  # a restored memory takes its key from here
    restored = Context.from_dict(agent, json.loads(saved), serializer=JsonSerializer())
    restored_memory = await restored.store.get("memory")
    assert isinstance(restored_memory, MemLayerMemory) and restored_memory is not memory
    assert [m.content for m in await restored_memory.aget_all() if m.role == MessageRole.USER] == [
        "My name is Ada"
    ]

    llm = tool_rounds_llm(1, "lookup")
    agent.llm = llm
    handler = agent.run("What is my name?", ctx=restored)
    await handler
    used = await handler.ctx.store.get("memory")
    window = [m.content for m in await used.aget_all() if m.role == MessageRole.USER]
    assert window == ["My name is Ada", "What is my name?"]
    assert "My name is Ada" in text_of(llm.seen[0])
    await used.aclose()


async def test_authentication_error_leaves_run_unchanged(base_url: str) -> None:
    bad = recorded_clients(base_url, "ml_live_" + secrets.token_hex(12))
    agent = FunctionAgent(tools=[LOOKUP], llm=tool_rounds_llm(1, "lookup"))
    with pytest.raises(AuthenticationError) as raised:
        await agent.run("hello", memory=memory_for(bad))
    assert raised.value.code == "invalid_api_key"
