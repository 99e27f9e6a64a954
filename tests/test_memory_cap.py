"""The plan's memory cap in the chat adapters: an error that says what to do, or room made.

Accounts on the "tiny" plan (5 memories, 10 requests a day), so each test counts its
requests: at most 10.
"""

from __future__ import annotations

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage
from llama_index.core.base.llms.types import ChatMessage, MessageRole

from memlayer_integrations import AsyncMemLayerClient, MemLayerClient, MemoryLimitError
from memlayer_integrations.langchain import MemLayerMiddleware
from memlayer_integrations.llama_index import MemLayerMemory
from tests.langchain._support import ScriptedChatModel

OLD = [f"old fact number {i}" for i in range(5)]


@pytest.fixture
def tiny_key(local_server) -> str:
    return local_server.create_key(plan="tiny")


@pytest.fixture
def tiny(local_server, tiny_key) -> MemLayerClient:
    client = MemLayerClient(api_key=tiny_key, base_url=local_server.url)
    client.remember_many(OLD, user_id="alice", agent_id="bot")  # full: 5 of 5
    yield client
    client.close()


def stored(client: MemLayerClient) -> list[str]:
    return [m.content for m in client.list_memories(user_id="alice", agent_id="bot")]


def _turn(memory: MemLayerMiddleware, text: str) -> None:
    agent = create_agent(
        ScriptedChatModel(responses=[AIMessage("Noted.")]), tools=[], middleware=[memory]
    )
    agent.invoke({"messages": [HumanMessage(text)]}, {"configurable": {"user_id": "alice"}})


def test_middleware_at_the_cap_raises_an_error_that_says_what_to_do(tiny) -> None:
    memory = MemLayerMiddleware(agent_id="bot", client=tiny, fail_open=True)
    with pytest.raises(MemoryLimitError) as info:
        _turn(memory, "I live in Oslo")
    assert "make_room=True to MemLayerMiddleware" in str(info.value)
    assert "Forget memories" in str(info.value)
    assert info.value.code == "memory_limit_reached"
    assert stored(tiny) == OLD  # nothing lost, nothing half stored


def test_middleware_make_room_forgets_the_oldest(tiny) -> None:
    memory = MemLayerMiddleware(agent_id="bot", client=tiny, make_room=True)
    _turn(memory, "I live in Oslo")
    assert stored(tiny) == [*OLD[1:], "I live in Oslo"]


def test_memory_make_room_in_economy_mode(tiny) -> None:
    memory = MemLayerMemory(
        user_id="alice", agent_id="bot", client=tiny, economy=True, make_room=True
    )
    memory.put_messages(
        [
            ChatMessage(role=MessageRole.USER, content="I live in Oslo"),
            ChatMessage(role=MessageRole.ASSISTANT, content="Oslo is lovely in spring."),
        ]
    )
    memory.put(ChatMessage(role=MessageRole.USER, content="Where do I live?"))
    memory.get()  # the queued turn travels with this recall, and room is made for it
    assert stored(tiny) == [*OLD[2:], "I live in Oslo", "Oslo is lovely in spring."]


async def test_memory_without_make_room_keeps_the_write_queued(
    tiny, tiny_key, local_server
) -> None:
    async_client = AsyncMemLayerClient(api_key=tiny_key, base_url=local_server.url)
    memory = MemLayerMemory(user_id="alice", agent_id="bot", client=tiny, async_client=async_client)
    with pytest.raises(MemoryLimitError, match="make_room=True to MemLayerMemory"):
        await memory.aput_messages(
            [
                ChatMessage(role=MessageRole.USER, content="I live in Oslo"),
                ChatMessage(role=MessageRole.ASSISTANT, content="Noted, Oslo."),
            ]
        )
    assert memory.pending_writes == 2 and stored(tiny) == OLD
    await async_client.aclose()
