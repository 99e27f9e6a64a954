"""MemLayerMemory as the memory of LlamaIndex's chat engines, end to end on the local server."""

from __future__ import annotations

import secrets

import pytest
from llama_index.core.base.llms.types import MessageRole
from llama_index.core.chat_engine import (
    CondensePlusContextChatEngine,
    ContextChatEngine,
    SimpleChatEngine,
)

from memlayer_integrations import AuthenticationError
from memlayer_integrations.llama_index import MemLayerMemory

from ._support import FixedRetriever, Recorder, RecordingLLM, text_of


def memory_for(clients: tuple, user_id: str, **kwargs) -> MemLayerMemory:
    return MemLayerMemory(
        user_id=user_id, agent_id="bot", client=clients[0], async_client=clients[1], **kwargs
    )


def build(kind: str, llm: RecordingLLM, memory: MemLayerMemory, clients: tuple):
    if kind == "simple":
        return SimpleChatEngine.from_defaults(llm=llm, memory=memory, system_prompt="You are kind.")
    cls = ContextChatEngine if kind == "context" else CondensePlusContextChatEngine
    return cls.from_defaults(
        retriever=FixedRetriever(), llm=llm, memory=memory, system_prompt="You are kind."
    )


ENGINES = ["simple", "context", "condense_plus_context"]


@pytest.mark.parametrize("kind", ENGINES)
@pytest.mark.parametrize("flavor", ["sync", "async"])
async def test_memories_persist_across_engines_and_stay_with_their_user(
    clients: tuple, kind: str, flavor: str
) -> None:
    async def chat(engine, text: str) -> None:
        engine.chat(text) if flavor == "sync" else await engine.achat(text)

    llm = RecordingLLM()
    first = build(kind, llm, memory_for(clients, "alice"), clients)
    await chat(first, "My favourite colour is teal")
    await chat(first, "I work as a pilot")

    second = build(kind, llm, memory_for(clients, "alice"), clients)
    await chat(second, "What is my favourite colour?")
    shown = llm.seen[-1]
    assert "My favourite colour is teal" in text_of(shown)
    # Provider rules: one system message, first; no memory repeated.
    assert [m.role for m in shown].count(MessageRole.SYSTEM) == 1 and shown[
        0
    ].role == MessageRole.SYSTEM
    assert text_of(shown).count("My favourite colour is teal") == 1

    other = build(kind, llm, memory_for(clients, "bob"), clients)
    await chat(other, "What is my favourite colour?")
    assert "teal" not in text_of(llm.seen[-1])


@pytest.mark.parametrize("kind", ENGINES)
def test_at_most_two_requests_per_turn(clients: tuple, recorder: Recorder, kind: str) -> None:
    engine = build(kind, RecordingLLM(), memory_for(clients, "carol"), clients)
    recorder.take()
    memory_ops = []
    for text in [
        "I like jazz",
        "I play the piano",
        "What music do I like?",
        "Do I play an instrument?",
    ]:
        engine.chat(text)
        memory_ops.append(recorder.take())
    assert [len(t) for t in memory_ops] == [2, 2, 2, 2]
    assert all(Recorder.ops(t) in (["recall", "remember_many"],) for t in memory_ops)


def test_simple_chat_engine_economy_is_one_request_per_turn(
    clients: tuple, recorder: Recorder
) -> None:
    memory = memory_for(clients, "dave", economy=True)
    engine = build("simple", RecordingLLM(), memory, clients)
    counts = []
    for i in range(4):
        engine.chat(f"Remember item {i}")
        counts.append(len(recorder.take()))
    assert counts == [1, 1, 1, 1]
    memory.close()
    # Four statements; the model's answer is "text" every time, which is one memory.
    stored = [m.content for m in clients[0].list_memories(user_id="dave", agent_id="bot")]
    assert sorted(stored) == [*(f"Remember item {i}" for i in range(4)), "text"]


@pytest.mark.parametrize("kind", ENGINES)
async def test_authentication_error_leaves_chat_and_achat_unchanged(
    base_url: str, kind: str
) -> None:
    from ._support import recorded_clients

    bad = recorded_clients(base_url, "ml_live_" + secrets.token_hex(12))
    engine = build(kind, RecordingLLM(), memory_for(bad, "erin"), bad)
    with pytest.raises(AuthenticationError) as sync_error:
        engine.chat("hello")
    with pytest.raises(AuthenticationError) as async_error:
        await engine.achat("hello")
    assert sync_error.value.status_code == async_error.value.status_code == 401
