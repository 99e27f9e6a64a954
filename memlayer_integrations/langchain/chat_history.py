"""A chat message history kept in MemLayer, for ``RunnableWithMessageHistory``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import BaseMessage, message_to_dict, messages_from_dict

from .. import AsyncMemLayerClient, MemLayerClient, Memory, Op
from .._client_pair import ClientPair
from .._constants import MAX_BATCH_ITEMS, MAX_CONTENT_CHARS

__all__ = ["MemLayerChatMessageHistory"]

# Marks the memories that are chat messages, so the history never reads (or clears) the
# other memories of the same session, such as those the middleware stores.
KIND_FIELD = "memlayer_kind"
KIND = "chat_message"


def _item(message: BaseMessage) -> dict[str, Any]:
    text = str(message.text).strip()
    # Content is what search sees; the exact message is in metadata.
    content = f"{message.type}: {text}" if text else f"{message.type} message"
    return {
        "content": content[:MAX_CONTENT_CHARS],
        "metadata": {KIND_FIELD: KIND, "message": message_to_dict(message)},
    }


def _messages(memories: Sequence[Memory]) -> list[BaseMessage]:
    return messages_from_dict([m.metadata["message"] for m in memories])


class MemLayerChatMessageHistory(BaseChatMessageHistory):
    """The messages of one conversation (user, agent, session), stored as MemLayer memories.

    Every message type round-trips exactly (system, human, AI with tool calls, tool...):
    each memory's metadata holds ``message_to_dict(message)`` (so one message is at most
    16 KiB of JSON), and messages come back in the order they were added. ``messages``
    pages through the whole session, with no cap on its length. ``add_messages`` is one
    request per 100 messages; ``clear`` deletes only this history's messages.

    Args:
        user_id, agent_id, session_id: the conversation.
        client, async_client, api_key, base_url: how to reach MemLayer.

    Example:
        >>> from langchain_core.runnables.history import RunnableWithMessageHistory
        >>> chain_with_history = RunnableWithMessageHistory(
        ...     model,  # your chat model, or a chain that ends in one
        ...     lambda session_id: MemLayerChatMessageHistory(
        ...         user_id="alice", agent_id="chat", session_id=session_id,
        ...         api_key=key, base_url=server.url),
        ... )
        >>> chain_with_history.invoke("I live in Oslo",
        ...                           {"configurable": {"session_id": "s1"}})
    """

    def __init__(
        self,
        *,
        user_id: str,
        agent_id: str,
        session_id: str,
        client: MemLayerClient | None = None,
        async_client: AsyncMemLayerClient | None = None,
        api_key: Any | None = None,
        base_url: str | None = None,
        page_size: int = 100,
    ) -> None:
        for name, value in (
            ("user_id", user_id),
            ("agent_id", agent_id),
            ("session_id", session_id),
        ):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string")
        self.user_id = user_id
        self.agent_id = agent_id
        self.session_id = session_id
        self.page_size = page_size
        self._clients = ClientPair(client, async_client, api_key, base_url)

    def _scope(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "agent_id": self.agent_id, "session_id": self.session_id}

    def _list_args(self) -> dict[str, Any]:
        return {**self._scope(), "filters": {KIND_FIELD: KIND}, "page_size": self.page_size}

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        return _messages(list(self._clients.sync.list_memories(**self._list_args())))

    async def aget_messages(self) -> list[BaseMessage]:
        return _messages([m async for m in self._clients.async_.list_memories(**self._list_args())])

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        items = [_item(m) for m in messages]
        for c in range(0, len(items), MAX_BATCH_ITEMS):
            self._clients.sync.remember_many(items[c : c + MAX_BATCH_ITEMS], **self._scope())

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        items = [_item(m) for m in messages]
        for c in range(0, len(items), MAX_BATCH_ITEMS):
            await self._clients.async_.remember_many(
                items[c : c + MAX_BATCH_ITEMS], **self._scope()
            )

    def clear(self) -> None:
        ids = [m.id for m in self._clients.sync.list_memories(**self._list_args())]
        for c in range(0, len(ids), MAX_BATCH_ITEMS):
            self._clients.sync.batch([Op.forget(i) for i in ids[c : c + MAX_BATCH_ITEMS]])

    async def aclear(self) -> None:
        ids = [m.id async for m in self._clients.async_.list_memories(**self._list_args())]
        for c in range(0, len(ids), MAX_BATCH_ITEMS):
            await self._clients.async_.batch([Op.forget(i) for i in ids[c : c + MAX_BATCH_ITEMS]])
