"""A chat message history kept in MemLayer, for ``RunnableWithMessageHistory`` (legacy).

LangChain deprecated ``BaseChatMessageHistory`` in langchain-core 1.6.4 (removal in 2.0);
new agents keep short-term memory in a LangGraph checkpointer and long-term memory with
:class:`~memlayer_integrations.langchain.MemLayerMiddleware` or
:class:`~memlayer_integrations.langchain.MemLayerStore`. This class stays for applications
still on ``RunnableWithMessageHistory``, and says so with LangChain's own deprecation
warning when it is built.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from langchain_core._api import LangChainDeprecationWarning
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import BaseMessage, message_to_dict, messages_from_dict

from .. import AsyncMemLayerClient, MemLayerClient, Memory, Op
from .._adapter import (
    MAX_BATCH_ITEMS,
    ClientPair,
    message_placeholder,
    require_scope,
)
from .._adapter.message_parts import (
    LANGCHAIN_MESSAGES,
    alist_messages,
    list_messages,
    message_items,
    records,
    requests_for,
)

__all__ = ["MemLayerChatMessageHistory"]


def _items(message: BaseMessage) -> list[dict[str, Any]]:
    text = str(message.text).strip()
    # Content is what search sees; the exact message is in metadata (or, for a long one,
    # in the parts that message_parts splits it into).
    content = f"{message.type}: {text}" if text else message_placeholder(message.type)
    # The marker keeps the history from reading (or clearing) the other memories of the
    # session, such as those the middleware stores, or a LlamaIndex chat store's messages.
    return message_items(message_to_dict(message), content, LANGCHAIN_MESSAGES.metadata())


def _messages(memories: Sequence[Memory]) -> list[BaseMessage]:
    return messages_from_dict([record for record, _ in records(memories)])


def _warn_legacy() -> None:
    # LangChain warns only when its own classes are built, never for a subclass: say it here,
    # with its warning class, on the versions that deprecate the base class.
    if getattr(BaseChatMessageHistory, "__deprecated__", None):
        warnings.warn(
            "MemLayerChatMessageHistory is legacy: LangChain deprecated BaseChatMessageHistory "
            "in langchain-core 1.6.4 (removal in 2.0). For new agents use MemLayerMiddleware "
            "(long-term memory) with a LangGraph checkpointer (the conversation).",
            LangChainDeprecationWarning,
            stacklevel=3,
        )


class MemLayerChatMessageHistory(BaseChatMessageHistory):
    """Legacy: the messages of one conversation (user, agent, session), stored as MemLayer
    memories, for apps still on ``RunnableWithMessageHistory``.

    LangChain deprecated ``BaseChatMessageHistory`` in langchain-core 1.6.4, so building one
    warns (``LangChainDeprecationWarning``). New code: :class:`MemLayerMiddleware` (long-term
    memory) with a LangGraph checkpointer (the conversation).

    Every message type round-trips exactly (system, human, AI with tool calls, tool...):
    each memory's metadata holds ``message_to_dict(message)``, and a message longer than
    that allows (16 KiB of JSON) is split over several memories and joined back, up to
    about 200,000 characters (see ``_message_parts``). Messages come back in the order they
    were added. ``messages`` pages through the whole session, with no cap on its length.
    ``add_messages`` stores all its messages in one request (up to about 1 MB), so a turn
    is never half stored; ``clear`` deletes only this history's messages.

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
        _warn_legacy()
        require_scope(
            type(self).__name__, user_id=user_id, agent_id=agent_id, session_id=session_id
        )
        self.user_id = user_id
        self.agent_id = agent_id
        self.session_id = session_id
        self.page_size = page_size
        self._clients = ClientPair(client, async_client, api_key, base_url)

    def _scope(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "agent_id": self.agent_id, "session_id": self.session_id}

    def _list(self) -> list[Memory]:
        return list_messages(
            self._clients.sync, LANGCHAIN_MESSAGES, self.page_size, **self._scope()
        )

    async def _alist(self) -> list[Memory]:
        return await alist_messages(
            self._clients.async_, LANGCHAIN_MESSAGES, self.page_size, **self._scope()
        )

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        return _messages(self._list())

    async def aget_messages(self) -> list[BaseMessage]:
        return _messages(await self._alist())

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        for request in requests_for([_items(m) for m in messages]):
            if len(request) == 1:
                self._clients.sync.remember_many(request[0], **self._scope())
            else:
                self._clients.sync.batch([Op.remember_many(i, **self._scope()) for i in request])

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        for request in requests_for([_items(m) for m in messages]):
            if len(request) == 1:
                await self._clients.async_.remember_many(request[0], **self._scope())
            else:
                await self._clients.async_.batch(
                    [Op.remember_many(i, **self._scope()) for i in request]
                )

    def clear(self) -> None:
        ids = [m.id for m in self._list()]
        for c in range(0, len(ids), MAX_BATCH_ITEMS):
            self._clients.sync.batch([Op.forget(i) for i in ids[c : c + MAX_BATCH_ITEMS]])

    async def aclear(self) -> None:
        ids = [m.id for m in await self._alist()]
        for c in range(0, len(ids), MAX_BATCH_ITEMS):
            await self._clients.async_.batch([Op.forget(i) for i in ids[c : c + MAX_BATCH_ITEMS]])
