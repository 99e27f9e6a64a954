"""MemLayerRetriever: NodeWithScore results, sync and async, and errors."""

from __future__ import annotations

import secrets

import pytest
from llama_index.core.chat_engine import ContextChatEngine

from memlayer_integrations import AuthenticationError
from memlayer_integrations.llama_index import MemLayerMemory, MemLayerRetriever

from ._support import Recorder, RecordingLLM, recorded_clients, text_of


@pytest.mark.parametrize("flavor", ["sync", "async"])
async def test_returns_scored_nodes_with_memory_metadata(
    clients: tuple, recorder: Recorder, flavor: str
) -> None:
    stored = clients[0].remember(
        "User's birthday is on 4 May",
        user_id="u1",
        agent_id="bot",
        session_id="s9",
        metadata={"topic": "dates"},
    )
    clients[0].remember("User's birthday is secret", user_id="u2", agent_id="bot")
    retriever = MemLayerRetriever("u1", "bot", client=clients[0], async_client=clients[1])
    recorder.take()
    nodes = (
        retriever.retrieve("when is the birthday")
        if flavor == "sync"
        else await retriever.aretrieve("when is the birthday")
    )
    assert len(recorder.take()) == 1
    assert [n.node.get_content() for n in nodes] == ["User's birthday is on 4 May"]
    node = nodes[0]
    assert node.score is not None and node.score > 0
    assert node.node.node_id == stored.id
    assert node.node.metadata == {
        "memory_id": stored.id,
        "user_id": "u1",
        "agent_id": "bot",
        "session_id": "s9",
        "key": None,
        "created_at": stored.created_at.isoformat(),
        "updated_at": stored.updated_at.isoformat(),
        "memory_metadata": {"topic": "dates"},
    }
    shown = node.node.get_content(metadata_mode="llm")
    assert "created_at" in shown and stored.id not in shown


async def test_blank_query_sends_nothing(clients: tuple, recorder: Recorder) -> None:
    retriever = MemLayerRetriever("u1", "bot", client=clients[0], async_client=clients[1])
    recorder.take()
    assert retriever.retrieve("   ") == [] and await retriever.aretrieve("") == []
    assert recorder.take() == []


async def test_in_a_context_chat_engine_and_errors(clients: tuple, base_url: str) -> None:
    clients[0].remember("Support hours are 9 to 5", user_id="u1", agent_id="bot")
    llm = RecordingLLM()
    retriever = MemLayerRetriever("u1", "bot", client=clients[0], async_client=clients[1])
    memory = MemLayerMemory(
        user_id="u1", agent_id="chat", client=clients[0], async_client=clients[1]
    )
    ContextChatEngine.from_defaults(retriever=retriever, llm=llm, memory=memory).chat(
        "what are the support hours"
    )
    assert "Support hours are 9 to 5" in text_of(llm.seen[-1])

    bad = recorded_clients(base_url, "ml_live_" + secrets.token_hex(12))
    engine = ContextChatEngine.from_defaults(
        retriever=MemLayerRetriever("u1", "bot", client=bad[0], async_client=bad[1]),
        llm=llm,
        memory=memory,
    )
    with pytest.raises(AuthenticationError):
        engine.chat("hours?")
    with pytest.raises(AuthenticationError):
        await engine.achat("hours?")
