"""MemLayerMemoryBlock inside LlamaIndex's Memory: flushed messages stored, recall on read,
truncation within the token budget."""

from __future__ import annotations

import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.memory import Memory

from memlayer_integrations import APIConnectionError
from memlayer_integrations.llama_index import MemLayerMemoryBlock

from ._support import Recorder, text_of


def block_for(clients: tuple, **kwargs) -> MemLayerMemoryBlock:
    return MemLayerMemoryBlock(
        user_id="u1", agent_id="bot", client=clients[0], async_client=clients[1], **kwargs
    )


async def test_flushed_messages_are_stored_in_one_request_and_recalled(
    clients: tuple, recorder: Recorder
) -> None:
    memory = Memory.from_defaults(
        session_id="s1",
        token_limit=200,
        token_flush_size=20,
        chat_history_token_ratio=0.1,
        memory_blocks=[block_for(clients)],
    )
    recorder.take()
    await memory.aput_messages(
        [
            ChatMessage(
                role="user", content="My sister Ingrid lives in Bergen and works as a nurse there."
            ),
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
    clients[0].remember_many(
        [f"fact {i} about apples " * 5 for i in range(4)], user_id="u1", agent_id="bot"
    )
    block = block_for(clients)
    content = await block.aget([ChatMessage(role="user", content="apples")])
    assert content.count("- [mem_") == 4
    shorter = await block.atruncate(content, 30)
    assert shorter is not None and 0 < shorter.count("- [mem_") < 4
    assert content.startswith(shorter.removesuffix("</memories>")) and shorter.endswith(
        "</memories>"
    )
    assert await block.atruncate(content, 10_000) is None
    assert await block.atruncate(content, 0) == content


def _small_memory(block: MemLayerMemoryBlock) -> Memory:
    # A short-term budget this small flushes older messages into the block every turn.
    return Memory.from_defaults(
        session_id="s1",
        token_limit=120,
        token_flush_size=20,
        chat_history_token_ratio=0.5,
        memory_blocks=[block],
    )


async def test_an_agent_turn_with_a_flush_recalls_once(clients: tuple, recorder: Recorder) -> None:
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.tools import FunctionTool

    from ._support import tool_rounds_llm

    def lookup(x: str) -> str:
        """Look something up."""
        return f"result {x} " * 20

    agent = FunctionAgent(
        tools=[FunctionTool.from_defaults(lookup)], llm=tool_rounds_llm(3, "lookup")
    )
    memory = _small_memory(block_for(clients))
    recorder.take()
    per_turn = []
    for i in range(4):
        await agent.run(f"question number {i} about the garden shed", memory=memory)
        per_turn.append(Recorder.ops(recorder.take()))
    assert any("remember_many" in ops for ops in per_turn)  # the budget really made it flush
    assert all(ops.count("recall") == 1 and len(ops) <= 2 for ops in per_turn), per_turn


async def test_economy_carries_a_flush_with_the_next_recall(
    clients: tuple, recorder: Recorder
) -> None:
    block = block_for(clients, economy=True)
    memory = _small_memory(block)
    recorder.take()
    per_turn = []
    for i in range(6):
        await memory.aput_messages(
            [
                ChatMessage(
                    role="user",
                    content=f"Turn {i}: my bicycle number {i} needs a new chain and tyres.",
                ),
                ChatMessage(
                    role="assistant", content=f"Noted, bicycle {i} needs a chain and tyres."
                ),
            ]
        )
        await memory.aget(input=f"what does bicycle {i} need")
        per_turn.append(len(recorder.take()))
    assert per_turn == [1] * 6
    await memory.aput_messages(
        [ChatMessage(role="user", content="One last long message about the chain tool " * 5)]
    )
    assert block.pending_writes > 0 and recorder.take() == []
    stored_before = len(list(clients[0].list_memories(user_id="u1", agent_id="bot")))
    pending = block.pending_writes
    recorder.take()
    await block.aclose()
    assert Recorder.ops(recorder.take()) == ["remember_many"]
    assert block.pending_writes == 0
    assert (
        len(list(clients[0].list_memories(user_id="u1", agent_id="bot")))
        == stored_before + pending
        > pending
    )


async def test_economy_keeps_waiting_writes_when_the_carrying_request_fails(
    clients: tuple, monkeypatch
) -> None:
    block = block_for(clients, economy=True)
    await block.aput([ChatMessage(role="user", content="I keep bees on the roof.")])
    assert block.pending_writes == 1

    async def unreachable(*args, **kwargs):
        raise APIConnectionError("connection refused")

    monkeypatch.setattr(clients[1], "batch", unreachable)
    with pytest.raises(APIConnectionError):
        await block.aget([ChatMessage(role="user", content="bees")])
    assert block.pending_writes == 1
    monkeypatch.undo()
    block.flush()
    assert [m.content for m in clients[0].list_memories(user_id="u1", agent_id="bot")] == [
        "I keep bees on the roof."
    ]


async def test_truncating_an_empty_block_is_nothing(clients: tuple) -> None:
    block = block_for(clients)
    assert await block.atruncate([], 10) is None
    assert await block.atruncate("", 10) is None


async def test_flush_and_close_store_everything_waiting_however_much(
    clients: tuple, recorder: Recorder
) -> None:
    block = block_for(clients, economy=True)
    await block.aput([ChatMessage(role="user", content=f"note {i}") for i in range(250)])
    recorder.take()
    await block.aflush()
    assert block.pending_writes == 0
    assert len(list(clients[0].list_memories(user_id="u1", agent_id="bot"))) == 250
    await block.aput([ChatMessage(role="user", content=f"later {i}") for i in range(150)])
    block.close()
    assert block.pending_writes == 0
    assert len(list(clients[0].list_memories(user_id="u1", agent_id="bot"))) == 400


async def test_flushed_questions_and_small_talk_are_not_stored(clients: tuple) -> None:
    block = block_for(clients)
    await block.aput(
        [
            ChatMessage(role="user", content="Hi! Which plan am I on?"),
            ChatMessage(role="assistant", content="Thanks, noted."),
            ChatMessage(role="user", content="I moved to Bergen."),
        ]
    )
    stored = [m.content for m in clients[0].list_memories(user_id="u1", agent_id="bot")]
    assert stored == ["I moved to Bergen."]
    everything = block_for(clients, write_policy="everything")
    await everything.aput([ChatMessage(role="user", content="Which plan am I on?")])
    assert len(list(clients[0].list_memories(user_id="u1", agent_id="bot"))) == 2
