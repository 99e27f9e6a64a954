"""``MemLayerMemoryBlock``: MemLayer as a long-term block of LlamaIndex's ``Memory``.

LlamaIndex's ``Memory`` keeps a short-term FIFO of messages and, when it grows past its
token budget, flushes the oldest messages into its memory blocks; on every read it asks
each block for content to put in front of the model. This block stores the flushed
messages in MemLayer (one request per flush) and answers reads with the memories recalled
for the latest user message (one request per turn, however often ``Memory`` is read).
With ``economy=True`` a flush waits and travels with the next recall in one ``/v1/batch``
request, so a turn never costs more than one request.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.memory.memory import BaseMemoryBlock
from llama_index.core.utils import get_tokenizer

from .. import AsyncMemLayerClient, MemLayerClient, RecalledMemory
from .._adapter import (
    DEFAULT_RECALL_LIMIT,
    ClientPair,
    WriteBuffer,
    arecall_carrying,
    asend_pending,
    renamed_argument,
    renamed_attribute,
    render_memories,
    require_scope,
    send_pending,
)
from .._adapter.turn_memory import MEMORY_CLOSE, check_write_policy
from ._messages import memory_item, message_text, query_from

__all__ = ["MemLayerMemoryBlock"]

# Where render_memories starts a memory: "- [mem_...] ".
_ENTRY = re.compile(r"\n(?=- \[mem_)")


class MemLayerMemoryBlock(BaseMemoryBlock[str]):
    """A ``Memory`` block that stores flushed messages in MemLayer and recalls from it.

    Args:
        user_id: whose memories (required).
        agent_id: which agent's memories (required).
        name: the block's name in the memory template.
        k: how many memories to recall per read. ``recall_limit=``, its former name, still
            works and warns.
        max_memory_chars: budget for the rendered memories.
        priority: LlamaIndex's truncation priority (0 = never truncate).
        economy: keep flushed messages until the next recall and send both in one request;
            ``flush()``/``close()`` (and interpreter exit) store what is still waiting.
        write_policy: which flushed messages are worth a memory: ``"statements"`` (default)
            leaves out questions, greetings and acknowledgements, ``"everything"`` keeps
            them, or a callable ``(text, role) -> bool``.
        make_room: at the plan's memory limit, forget the oldest memories of the user and
            agent (as many as are being stored) and store; off, the ``MemoryLimitError`` is
            raised and says how to turn this on.
        client, async_client, api_key, base_url: how to reach MemLayer (see
            :class:`~memlayer_integrations.llama_index.MemLayerMemory`).

    Reads are cached per query, because ``Memory`` is read several times per turn (agents
    read it before and after every tool round); a new user message is a new query. A flush
    in the middle of a turn keeps the turn's recall: the messages it stores were in the
    model's context a moment ago.

    Example:
        >>> from llama_index.core.memory import Memory
        >>> block = MemLayerMemoryBlock(user_id="user_123", agent_id="support_bot",
        ...                             api_key=key, base_url=server.url)
        >>> memory = Memory.from_defaults(session_id="s1", token_limit=40000,
        ...                               memory_blocks=[block])
    """

    name: str = Field(default="memlayer_memories", description="The name of the memory block.")
    user_id: str
    agent_id: str
    k: int = Field(default=DEFAULT_RECALL_LIMIT, ge=1, le=100)
    recall_limit = renamed_attribute("recall_limit", "k")
    max_memory_chars: int = Field(default=2000, ge=100)
    priority: int = Field(default=1, description="Truncation priority (0 = never truncate).")
    economy: bool = False
    make_room: bool = False
    write_policy: Any = Field(default="statements", exclude=True)
    base_url: str | None = None
    tokenizer_fn: Callable[[str], list[Any]] = Field(default_factory=get_tokenizer, exclude=True)

    _clients: ClientPair = PrivateAttr()
    _cache: tuple[str, list[RecalledMemory]] | None = PrivateAttr(default=None)
    _buffer: WriteBuffer = PrivateAttr()

    def __init__(
        self,
        *,
        client: MemLayerClient | None = None,
        async_client: AsyncMemLayerClient | None = None,
        api_key: Any = None,
        **data: Any,
    ) -> None:
        renamed_argument(data, "recall_limit", "k", owner=type(self).__name__)
        require_scope(
            type(self).__name__, user_id=data.get("user_id"), agent_id=data.get("agent_id")
        )
        super().__init__(**data)
        self.write_policy = check_write_policy(self.write_policy)
        self._clients = clients = ClientPair(client, async_client, api_key, self.base_url)
        self.base_url = clients.base_url
        self._buffer = WriteBuffer(flush=lambda ops: clients.sync.batch(ops))

    async def _aget(self, messages: list[ChatMessage] | None = None, **block_kwargs: Any) -> str:
        """The memories recalled for the latest user message, rendered; ``""`` if none."""
        messages = messages or []
        query = query_from(messages)
        if query is None:
            return ""
        if self._cache is not None and self._cache[0] == query:
            recalled = self._cache[1]
        else:
            recalled = await arecall_carrying(
                self._clients.async_,
                self._buffer,
                query,
                carry=self.economy,
                make_room=self.make_room,
                adapter="MemLayerMemoryBlock",
                user_id=self.user_id,
                agent_id=self.agent_id,
                limit=self.k,
            )
            self._cache = (query, recalled)
        block = render_memories(
            recalled, exclude=[message_text(m) for m in messages], max_chars=self.max_memory_chars
        )
        return block or ""

    async def _aput(self, messages: list[ChatMessage]) -> None:
        """Store the messages flushed from short-term memory: in one request, or (economy)
        with the next recall."""
        items = [
            item
            for m in messages
            if (item := memory_item(m, m.additional_kwargs.get("session_id"), self.write_policy))
            is not None
        ]
        if not items:
            return
        self._buffer.add(items, user_id=self.user_id, agent_id=self.agent_id)
        if not self.economy:
            await asend_pending(
                self._clients.async_,
                self._buffer,
                make_room=self.make_room,
                adapter="MemLayerMemoryBlock",
            )

    @property
    def pending_writes(self) -> int:
        """How many flushed messages wait to be stored (economy mode)."""
        return len(self._buffer)

    def flush(self) -> None:
        """Store every waiting message now."""
        send_pending(
            self._clients.sync,
            self._buffer,
            make_room=self.make_room,
            adapter="MemLayerMemoryBlock",
        )

    async def aflush(self) -> None:
        """Async :meth:`flush`."""
        await asend_pending(
            self._clients.async_,
            self._buffer,
            make_room=self.make_room,
            adapter="MemLayerMemoryBlock",
        )

    def close(self) -> None:
        """Store what is waiting, then close the clients this block built."""
        self.flush()
        self._clients.close()

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        await self.aflush()
        await self._clients.aclose()

    async def atruncate(self, content: str, tokens_to_truncate: int) -> str | None:
        """Drop the least relevant memories until ``tokens_to_truncate`` tokens are saved.

        Memories are listed best first, so lines go from the end; a memory is never cut in
        the middle. ``None`` when nothing is left but the header.
        """
        if tokens_to_truncate <= 0:
            return content
        if not content:  # Memory passes [] for a block that had nothing to say this turn
            return None
        # The frame (header, note, opening tag), then one entry per memory (an entry may
        # span lines), then the closing tag, which stays.
        body = content.removesuffix("\n" + MEMORY_CLOSE)
        entries = _ENTRY.split(body)
        target = len(self.tokenizer_fn(content)) - tokens_to_truncate

        def joined() -> str:
            return "\n".join([*entries, MEMORY_CLOSE])

        while len(entries) > 1 and len(self.tokenizer_fn(joined())) > target:
            entries.pop()
        return joined() if len(entries) > 1 else None
