"""MemLayerMemoryBlock inside LlamaIndex's Memory: flushed messages stored, recall on read,
truncation within the token budget."""

from __future__ import annotations

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.memory import Memory

from memlayer_integrations.llama_index import MemLayerMemoryBlock

from ._support import Recorder, text_of


def block_for(clients: tuple, **kwargs) -> MemLayerMemoryBlock:
    return MemLayerMemoryBlock(user_id="u1", agent_id="bot", client=clients[0], async_client=clients[1], **kwargs)


async def test_flushed_messages_are_stored_in_one_request_and_recalled(clients: tuple, recorder: Recorder) -> None:
    memory = Memory.from_defaults(
        session_id="s1", token_limit=200, token_flush_size=20, chat_history_token_ratio=0.1,
        memory_blocks=[block_for(clients)],
    )
    recorder.take()
    await memory.aput_messages(
        [
            ChatMessage(role="user", content="My sister Ingrid lives in Bergen and works as a nurse there."),
            ChatMessage(role="assistant", content="Bergen is lovely; nursing is demanding work."),
            ChatMessage(role="user", content="What should I bring when I visit my sister?"),
            ChatMessage(role="assistant", content="Rain gear, for Bergen."),
        ]
    )
    writes = recorder.take()
    assert Recorder.ops(writes) == ["remember_many"]
    stored = list(clients[0].list_memories(user_id="u1", agent_id="bot"))
    assert stored[0].content.startswith("My sister Ingrid") and stored[0].session_id == "s1"
    recorder.take()

    messages = await memory.aget(input="where does Ingrid live")
    assert "My sister Ingrid lives in Bergen" in text_of(messages)
    await memory.aget(input="where does Ingrid live")
    assert Recorder.ops(recorder.take()) == ["recall"]  # the second read is served from cache


async def test_truncate_drops_the_least_relevant_memories(clients: tuple) -> None:
    clients[0].remember_many([f"fact {i} about apples " * 5 for i in range(4)], user_id="u1", agent_id="bot")
    block = block_for(clients)
    content = await block.aget([ChatMessage(role="user", content="apples")])
    assert content.count("- [mem_") == 4
    shorter = await block.atruncate(content, 30)
    assert shorter is not None and 0 < shorter.count("- [mem_") < 4 and content.startswith(shorter)
    assert await block.atruncate(content, 10_000) is None
    assert await block.atruncate(content, 0) == content
