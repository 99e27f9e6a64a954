"""The conversations of the requests-per-turn benchmark: one adapter in its host each.

A scenario runs the scripted conversation through its adapter, returns the number of
requests each turn made, and closes the adapter at the end (which is when economy mode
sends its last queued write; the caller counts that separately). Frameworks are imported
inside ``run`` so that ``python -m benchmarks --only scale`` needs neither.
"""

from __future__ import annotations

import asyncio
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from memlayer_integrations import AsyncMemLayerClient, MemLayerClient

from . import _fakes

__all__ = ["SCENARIOS", "Counted", "Scenario"]

USER = "user_bench"
AGENT = "assistant"


@dataclass
class Counted:
    """A sync and an async client on one account, both counting into ``counter``."""

    client: MemLayerClient
    async_client: AsyncMemLayerClient
    async_http: httpx.AsyncClient
    counter: Counter

    def total(self) -> int:
        return sum(self.counter.values())


@dataclass(frozen=True)
class Scenario:
    """One adapter in one host. ``body(counted, script, tool_rounds=, economy=)`` runs the
    conversation and returns the requests of each turn."""

    framework: str
    adapter: str
    host: str
    io: str
    has_tools: bool
    has_economy: bool
    body: Callable[..., list[int]]

    def run(
        self, counted: Counted, script: list[str], *, tool_rounds: int, economy: bool
    ) -> list[int]:
        return self.body(counted, script, tool_rounds=tool_rounds, economy=economy)


def _per_turn_sync(counted: Counted, script: list[str], turn: Callable[[str], Any]) -> list[int]:
    counts = []
    for line in script:
        before = counted.total()
        turn(line)
        counts.append(counted.total() - before)
    return counts


async def _per_turn_async(
    counted: Counted, script: list[str], turn: Callable[[str], Any]
) -> list[int]:
    counts = []
    for line in script:
        before = counted.total()
        await turn(line)
        counts.append(counted.total() - before)
    return counts


async def _close_async(counted: Counted) -> None:
    """Close the async client's connections on the loop that opened them."""
    await counted.async_http.aclose()


# -- LangChain ----------------------------------------------------------------------------


def _middleware_agent(counted: Counted, tool_rounds: int, economy: bool) -> tuple[Any, Any]:
    from langchain.agents import create_agent
    from langgraph.checkpoint.memory import InMemorySaver

    from memlayer_integrations.langchain import MemLayerMiddleware

    middleware = MemLayerMiddleware(
        user_id=USER,
        agent_id=AGENT,
        client=counted.client,
        async_client=counted.async_client,
        economy=economy,
        remember="both",
    )
    agent = create_agent(
        _fakes.scripted_chat_model(tool_rounds),
        tools=[_fakes.lookup_tool()],
        middleware=[middleware],
        checkpointer=InMemorySaver(),
    )
    return agent, middleware


def _langchain_middleware_sync(
    counted: Counted, script: list[str], *, tool_rounds: int, economy: bool
) -> list[int]:
    agent, middleware = _middleware_agent(counted, tool_rounds, economy)
    config = {"configurable": {"thread_id": "thread-1"}}
    counts = _per_turn_sync(
        counted, script, lambda line: agent.invoke({"messages": [("user", line)]}, config)
    )
    middleware.close()
    return counts


def _langchain_middleware_async(
    counted: Counted, script: list[str], *, tool_rounds: int, economy: bool
) -> list[int]:
    async def main() -> list[int]:
        agent, middleware = _middleware_agent(counted, tool_rounds, economy)
        config = {"configurable": {"thread_id": "thread-1"}}
        counts = await _per_turn_async(
            counted, script, lambda line: agent.ainvoke({"messages": [("user", line)]}, config)
        )
        await middleware.aclose()
        await _close_async(counted)
        return counts

    return asyncio.run(main())


def _langchain_chat_history(
    counted: Counted, script: list[str], *, tool_rounds: int, economy: bool
) -> list[int]:
    from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
    from langchain_core.runnables.history import RunnableWithMessageHistory

    from memlayer_integrations.langchain import MemLayerChatMessageHistory

    def history(session_id: str) -> MemLayerChatMessageHistory:
        return MemLayerChatMessageHistory(
            user_id=USER,
            agent_id=AGENT,
            session_id=session_id,
            client=counted.client,
            async_client=counted.async_client,
        )

    prompt = ChatPromptTemplate.from_messages(
        [
            ("system", "You are a helpful assistant."),
            MessagesPlaceholder("history"),
            ("human", "{question}"),
        ]
    )
    with warnings.catch_warnings():
        # Deprecated in favour of LangGraph persistence, but still what many applications use.
        warnings.simplefilter("ignore")
        chain = RunnableWithMessageHistory(
            prompt | _fakes.scripted_chat_model(0),
            history,
            input_messages_key="question",
            history_messages_key="history",
        )
    config = {"configurable": {"session_id": "session-1"}}
    return _per_turn_sync(counted, script, lambda line: chain.invoke({"question": line}, config))


# -- LlamaIndex ---------------------------------------------------------------------------

# Small enough that messages flow from Memory's short-term queue into its blocks within the
# conversation (the default, 30,000 tokens, would never flush in 20 short turns).
MEMORY_TOKEN_LIMIT = 600


def _llama_memory(counted: Counted, economy: bool) -> Any:
    from memlayer_integrations.llama_index import MemLayerMemory

    return MemLayerMemory(
        user_id=USER,
        agent_id=AGENT,
        session_id="session-1",
        economy=economy,
        client=counted.client,
        async_client=counted.async_client,
    )


def _llama_block_memory(counted: Counted, economy: bool) -> tuple[Any, Any]:
    from llama_index.core.memory import Memory

    from memlayer_integrations.llama_index import MemLayerMemoryBlock

    block = MemLayerMemoryBlock(
        user_id=USER,
        agent_id=AGENT,
        economy=economy,
        client=counted.client,
        async_client=counted.async_client,
    )
    memory = Memory.from_defaults(
        session_id="session-1", token_limit=MEMORY_TOKEN_LIMIT, memory_blocks=[block]
    )
    return memory, block


def _simple_engine(memory: Any) -> Any:
    from llama_index.core.chat_engine import SimpleChatEngine
    from llama_index.core.llms import MockLLM

    return SimpleChatEngine.from_defaults(llm=MockLLM(max_tokens=16), memory=memory)


def _llama_memory_engine(
    counted: Counted, script: list[str], *, tool_rounds: int, economy: bool
) -> list[int]:
    memory = _llama_memory(counted, economy)
    engine = _simple_engine(memory)
    counts = _per_turn_sync(counted, script, lambda line: engine.chat(line))
    memory.close()
    return counts


def _llama_memory_agent(
    counted: Counted, script: list[str], *, tool_rounds: int, economy: bool
) -> list[int]:
    from llama_index.core.agent.workflow import FunctionAgent

    async def main() -> list[int]:
        memory = _llama_memory(counted, economy)
        agent = FunctionAgent(
            llm=_fakes.scripted_function_llm(tool_rounds), tools=[_fakes.lookup_function()]
        )
        counts = await _per_turn_async(
            counted, script, lambda line: agent.run(user_msg=line, memory=memory)
        )
        await memory.aclose()
        await _close_async(counted)
        return counts

    return asyncio.run(main())


def _llama_block_engine(
    counted: Counted, script: list[str], *, tool_rounds: int, economy: bool
) -> list[int]:
    # Memory's blocks are async: its sync get() runs them on a fresh event loop each call,
    # so the conversation is driven with achat, on one loop.
    async def main() -> list[int]:
        memory, block = _llama_block_memory(counted, economy)
        engine = _simple_engine(memory)
        counts = await _per_turn_async(counted, script, lambda line: engine.achat(line))
        await block.aclose()
        await _close_async(counted)
        return counts

    return asyncio.run(main())


def _llama_block_agent(
    counted: Counted, script: list[str], *, tool_rounds: int, economy: bool
) -> list[int]:
    from llama_index.core.agent.workflow import FunctionAgent

    async def main() -> list[int]:
        memory, block = _llama_block_memory(counted, economy)
        agent = FunctionAgent(
            llm=_fakes.scripted_function_llm(tool_rounds), tools=[_fakes.lookup_function()]
        )
        counts = await _per_turn_async(
            counted, script, lambda line: agent.run(user_msg=line, memory=memory)
        )
        await block.aclose()
        await _close_async(counted)
        return counts

    return asyncio.run(main())


SCENARIOS: list[Scenario] = [
    Scenario(
        "LangChain",
        "MemLayerMiddleware",
        "create_agent",
        "sync",
        True,
        True,
        _langchain_middleware_sync,
    ),
    Scenario(
        "LangChain",
        "MemLayerMiddleware",
        "create_agent",
        "async",
        True,
        True,
        _langchain_middleware_async,
    ),
    Scenario(
        "LangChain",
        "MemLayerChatMessageHistory",
        "RunnableWithMessageHistory",
        "sync",
        False,
        False,
        _langchain_chat_history,
    ),
    Scenario(
        "LlamaIndex",
        "MemLayerMemory",
        "SimpleChatEngine",
        "sync",
        False,
        True,
        _llama_memory_engine,
    ),
    Scenario(
        "LlamaIndex", "MemLayerMemory", "FunctionAgent", "async", True, True, _llama_memory_agent
    ),
    Scenario(
        "LlamaIndex",
        "MemLayerMemoryBlock",
        "Memory in SimpleChatEngine",
        "async",
        False,
        True,
        _llama_block_engine,
    ),
    Scenario(
        "LlamaIndex",
        "MemLayerMemoryBlock",
        "Memory in FunctionAgent",
        "async",
        True,
        True,
        _llama_block_agent,
    ),
]
