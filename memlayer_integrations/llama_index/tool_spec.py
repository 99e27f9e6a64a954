"""``MemLayerToolSpec``: ``remember``, ``recall`` and ``forget`` tools for LlamaIndex agents.

The tools act on the memories of the user and agent the spec was built for; the model only
ever chooses *what* to remember, recall or forget, never *whose* memories (no ``user_id``
or ``agent_id`` in any tool schema).

Errors: a failing tool call raises the client's error (:class:`AuthenticationError`,
:class:`RateLimitError`, ...). LlamaIndex's workflow agents catch exceptions from tools and
hand the model an error ``ToolOutput`` whose text is ``str(error)``: the error's message,
status, code and request id, never the key (keys are masked in every message) nor the raw
response body. The original exception stays on ``ToolOutput.exception``, so an application
can stop the run instead of letting the model carry on without its memory::

    from llama_index.core.agent.workflow import ToolCallResult
    from memlayer_integrations import AuthenticationError

    handler = agent.run("What do you remember about me?")
    async for event in handler.stream_events():
        if isinstance(event, ToolCallResult) and isinstance(
            event.tool_output.exception, AuthenticationError
        ):
            await handler.cancel_run()
            raise event.tool_output.exception
    result = await handler
"""

from __future__ import annotations

from typing import Any

from llama_index.core.tools.tool_spec.base import BaseToolSpec

from .. import AsyncMemLayerClient, MemLayerClient, Memory, RecalledMemory
from .._adapter import (
    DEFAULT_RECALL_LIMIT,
    ClientPair,
    check_owner,
    clip_query,
    renamed_attribute,
    render_memories,
    require_scope,
    warn_renamed,
)

__all__ = ["MemLayerToolSpec"]

_SOURCE = {"source": "llama_index.tool"}


class MemLayerToolSpec(BaseToolSpec):
    """Long-term memory tools for an agent, bound to one user and agent.

    Args:
        user_id: whose memories the tools act on (required; never a tool argument).
        agent_id: which agent's memories (required; never a tool argument).
        session_id: stored with every memory the agent saves.
        k: how many memories ``recall`` returns. ``recall_limit=``, its former name, still
            works and warns.
        max_memory_chars: budget for ``recall``'s answer.
        client, async_client, api_key, base_url: how to reach MemLayer (see
            :class:`~memlayer_integrations.llama_index.MemLayerMemory`).

    Example:
        >>> from llama_index.core.agent.workflow import FunctionAgent
        >>> tools = MemLayerToolSpec(user_id="user_123", agent_id="support_bot",
        ...                          api_key=key, base_url=server.url).to_tool_list()
        >>> agent = FunctionAgent(tools=tools, llm=llm)
    """

    # BaseToolSpec declares this as a plain class attribute; read, never mutated.
    spec_functions = [("remember", "aremember"), ("recall", "arecall"), ("forget", "aforget")]  # noqa: RUF012

    recall_limit = renamed_attribute("recall_limit", "k")

    def __init__(
        self,
        user_id: str,
        agent_id: str,
        *,
        session_id: str | None = None,
        k: int = DEFAULT_RECALL_LIMIT,
        max_memory_chars: int = 2000,
        client: MemLayerClient | None = None,
        async_client: AsyncMemLayerClient | None = None,
        api_key: Any = None,
        base_url: str | None = None,
        recall_limit: int | None = None,
    ) -> None:
        require_scope(type(self).__name__, user_id=user_id, agent_id=agent_id)
        if recall_limit is not None:
            warn_renamed(type(self).__name__, "recall_limit", "k")
            k = recall_limit
        self.user_id = user_id
        self.agent_id = agent_id
        self.session_id = session_id
        self.k = k
        self.max_memory_chars = max_memory_chars
        self._clients = ClientPair(client, async_client, api_key, base_url)

    # -- answers for the model (pure) ------------------------------------------------

    @staticmethod
    def _remembered(memory: Memory) -> str:
        return f"Remembered (memory id {memory.id})."

    def _recalled(self, hits: list[RecalledMemory]) -> str:
        text = render_memories(
            hits, max_chars=self.max_memory_chars, header="Memories found (best first):"
        )
        return text or "No memories found for that query."

    # -- tools (docstrings are what the model reads) --------------------------------

    def remember(self, content: str) -> str:
        """Save one lasting fact about the user to long-term memory, to use in later conversations.

        Save facts and preferences the user states (name, plans, likes, decisions), one fact
        per call, as a short sentence that makes sense on its own. Do not save small talk,
        guesses, or secrets such as passwords.

        Args:
            content (str): the fact, e.g. "User prefers email to phone calls".
        """
        memory = self._clients.sync.remember(
            content,
            user_id=self.user_id,
            agent_id=self.agent_id,
            session_id=self.session_id,
            metadata=_SOURCE,
        )
        return self._remembered(memory)

    async def aremember(self, content: str) -> str:
        """Async :meth:`remember`."""
        memory = await self._clients.async_.remember(
            content,
            user_id=self.user_id,
            agent_id=self.agent_id,
            session_id=self.session_id,
            metadata=_SOURCE,
        )
        return self._remembered(memory)

    def recall(self, query: str) -> str:
        """Search long-term memory for what is known about the user, best matches first.

        Use it before answering questions about the user's past, preferences or earlier
        conversations. Each result starts with its memory id in brackets.

        Args:
            query (str): what to look for, in plain words, e.g. "user's home city".
        """
        hits = self._clients.sync.recall(
            clip_query(query), user_id=self.user_id, agent_id=self.agent_id, limit=self.k
        )
        return self._recalled(hits)

    async def arecall(self, query: str) -> str:
        """Async :meth:`recall`."""
        hits = await self._clients.async_.recall(
            clip_query(query), user_id=self.user_id, agent_id=self.agent_id, limit=self.k
        )
        return self._recalled(hits)

    def forget(self, memory_id: str) -> str:
        """Delete one memory that is wrong or that the user asked you to forget.

        Find its id with the recall tool first.

        Args:
            memory_id (str): the id shown in brackets by recall, e.g. "mem_0f8c2d1e9a7b4c3d8e6f5a4b3c2d1e0f".
        """
        # Ids are account-wide: a model must not delete another user's memory by its id.
        check_owner(self._clients.sync.get(memory_id), user_id=self.user_id, agent_id=self.agent_id)
        self._clients.sync.forget(memory_id)
        return f"Forgot memory {memory_id}."

    async def aforget(self, memory_id: str) -> str:
        """Async :meth:`forget`."""
        memory = await self._clients.async_.get(memory_id)
        check_owner(memory, user_id=self.user_id, agent_id=self.agent_id)
        await self._clients.async_.forget(memory_id)
        return f"Forgot memory {memory_id}."

    def close(self) -> None:
        """Close the sync client if this spec built it."""
        self._clients.close()

    async def aclose(self) -> None:
        """Close every client this spec built."""
        await self._clients.aclose()
