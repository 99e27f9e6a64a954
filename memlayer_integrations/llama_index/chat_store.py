"""``MemLayerChatStore``: a LlamaIndex ``BaseChatStore`` that keeps chat histories in MemLayer.

A chat store key is a session: the store is bound to one ``user_id`` and ``agent_id``, and
the messages of key ``k`` are memories of that scope with ``session_id = k``, in creation
order. Each memory's content is the message's text (so it can be recalled); the message
itself, with every field (role, content blocks, ``additional_kwargs``), is kept in the
memory's metadata and is what the store gives back. A message too long for that (16 KiB of
JSON) is split over several memories and joined back exactly, up to about 200,000
characters, all its parts in one request (``_message_parts``).

Costs, in requests: ``add_message`` 1; a listing is 2 requests plus 1 per 100 messages (one
listing per marker: the shared chat-message marker, and the ``type`` marker of earlier
versions, whose messages still load; see ``_adapter/message_parts``); ``get_messages`` a
listing; ``delete_message``/``delete_last_message`` the listing plus 1; ``delete_messages``
and ``set_messages`` the listing plus 1 per 100 messages (one atomic batch up to 100);
``get_keys`` lists every message of the scope, because the contract lists scopes but not the
sessions inside one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.storage.chat_store.base import BaseChatStore

from .. import AsyncMemLayerClient, MemLayerClient, Memory, Op
from .._adapter import MAX_BATCH_ITEMS, ClientPair, message_placeholder, require_scope
from .._adapter.message_parts import (
    LLAMA_INDEX_MESSAGES,
    alist_messages,
    list_messages,
    message_items,
    records,
)
from ._messages import message_text

__all__ = ["MemLayerChatStore"]


def _items(message: ChatMessage) -> list[dict[str, Any]]:
    text = message_text(message)
    # The content must not be blank; a message without text (tool calls, images) is still
    # kept whole in the metadata.
    content = text if text.strip() else message_placeholder(message.role.value)
    # The marker: other memories of the session (facts, another adapter's messages) are
    # not this store's messages and are ignored.
    return message_items(message.model_dump(mode="json"), content, LLAMA_INDEX_MESSAGES.metadata())


#: One stored message: what it was, and the ids of the memories holding it.
_Stored = tuple[dict[str, Any], list[str]]


def _message(stored: _Stored) -> ChatMessage:
    return ChatMessage.model_validate(stored[0])


def _forget(stored: Sequence[_Stored]) -> list[dict[str, Any]]:
    return [Op.forget(i) for _, ids in stored for i in ids]


def _chunks(ops: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [list(ops[i : i + MAX_BATCH_ITEMS]) for i in range(0, len(ops), MAX_BATCH_ITEMS)]


def _pick(stored: list[_Stored], idx: int) -> _Stored | None:
    # As SimpleChatStore: an index past the end deletes nothing.
    if -len(stored) <= idx < len(stored):
        return stored[idx]
    return None


def _distinct_sessions(memories: Iterable[Memory]) -> list[str]:
    keys: dict[str, None] = {}
    for m in memories:
        if m.session_id is not None:
            keys.setdefault(m.session_id, None)
    return list(keys)


class MemLayerChatStore(BaseChatStore):
    """Chat histories in MemLayer, one session per key, for one user and agent.

    Args:
        user_id: whose conversations these are (required).
        agent_id: which agent's (required).
        client, async_client, api_key, base_url: how to reach MemLayer (see
            :class:`~memlayer_integrations.llama_index.MemLayerMemory`).

    Serializes without its clients or key.

    Example:
        >>> from llama_index.core.memory import ChatMemoryBuffer
        >>> store = MemLayerChatStore(user_id="user_123", agent_id="support_bot",
        ...                           api_key=key, base_url=server.url)
        >>> memory = ChatMemoryBuffer.from_defaults(chat_store=store, chat_store_key="session-1")
    """

    user_id: str
    agent_id: str
    base_url: str | None = None
    page_size: int = Field(default=100, ge=1, le=100)

    _clients: ClientPair = PrivateAttr()

    def __init__(
        self,
        *,
        client: MemLayerClient | None = None,
        async_client: AsyncMemLayerClient | None = None,
        api_key: Any = None,
        **data: Any,
    ) -> None:
        require_scope(
            type(self).__name__, user_id=data.get("user_id"), agent_id=data.get("agent_id")
        )
        super().__init__(**data)
        self._clients = ClientPair(client, async_client, api_key, self.base_url)
        self.base_url = self._clients.base_url

    @classmethod
    def class_name(cls) -> str:
        return "MemLayerChatStore"

    def _scope(self, key: str | None = None) -> dict[str, Any]:
        scope: dict[str, Any] = {"user_id": self.user_id, "agent_id": self.agent_id}
        if key is not None:
            if not isinstance(key, str) or not key:
                raise ValueError("a chat store key is a non-empty string")
            scope["session_id"] = key
        return scope

    def _replace_ops(
        self, old: list[_Stored], key: str, messages: Sequence[ChatMessage]
    ) -> list[dict[str, Any]]:
        ops = _forget(old)
        items = [item for m in messages for item in _items(m)]
        for i in range(0, len(items), MAX_BATCH_ITEMS):
            ops.append(Op.remember_many(items[i : i + MAX_BATCH_ITEMS], **self._scope(key)))
        return ops

    # -- sync ------------------------------------------------------------------------

    def _list(self, key: str | None) -> list[Memory]:
        return list_messages(
            self._clients.sync, LLAMA_INDEX_MESSAGES, self.page_size, **self._scope(key)
        )

    def _stored(self, key: str) -> list[_Stored]:
        return records(self._list(key))

    def _run(self, ops: list[dict[str, Any]]) -> None:
        for chunk in _chunks(ops):
            self._clients.sync.batch(chunk)

    def set_messages(self, key: str, messages: list[ChatMessage]) -> None:
        """Replace the messages of ``key`` (atomically when old and new fit in 100 operations)."""
        self._run(self._replace_ops(self._stored(key), key, messages))

    def get_messages(self, key: str) -> list[ChatMessage]:
        """The messages of ``key``, oldest first (``[]`` for an unknown key)."""
        return [_message(m) for m in self._stored(key)]

    def add_message(self, key: str, message: ChatMessage) -> None:
        """Append ``message`` to ``key`` (one request)."""
        self._clients.sync.remember_many(_items(message), **self._scope(key))

    def delete_messages(self, key: str) -> list[ChatMessage] | None:
        """Delete every message of ``key``; returns them, or ``None`` if there were none."""
        old = self._stored(key)
        if not old:
            return None
        self._run(_forget(old))
        return [_message(m) for m in old]

    def delete_message(self, key: str, idx: int) -> ChatMessage | None:
        """Delete the message at position ``idx`` of ``key``; ``None`` if there is none."""
        target = _pick(self._stored(key), idx)
        if target is None:
            return None
        self._run(_forget([target]))
        return _message(target)

    def delete_last_message(self, key: str) -> ChatMessage | None:
        """Delete the newest message of ``key``; ``None`` if there is none."""
        return self.delete_message(key, -1)

    def get_keys(self) -> list[str]:
        """Every key with messages, in order of first message (lists the whole scope)."""
        return _distinct_sessions(self._list(None))

    # -- async -----------------------------------------------------------------------

    async def _alist(self, key: str | None) -> list[Memory]:
        return await alist_messages(
            self._clients.async_, LLAMA_INDEX_MESSAGES, self.page_size, **self._scope(key)
        )

    async def _astored(self, key: str) -> list[_Stored]:
        return records(await self._alist(key))

    async def _arun(self, ops: list[dict[str, Any]]) -> None:
        for chunk in _chunks(ops):
            await self._clients.async_.batch(chunk)

    async def aset_messages(self, key: str, messages: list[ChatMessage]) -> None:
        """Async :meth:`set_messages`."""
        await self._arun(self._replace_ops(await self._astored(key), key, messages))

    async def aget_messages(self, key: str) -> list[ChatMessage]:
        """Async :meth:`get_messages`."""
        return [_message(m) for m in await self._astored(key)]

    async def async_add_message(self, key: str, message: ChatMessage) -> None:
        """Async :meth:`add_message` (LlamaIndex's name for it)."""
        await self._clients.async_.remember_many(_items(message), **self._scope(key))

    async def adelete_messages(self, key: str) -> list[ChatMessage] | None:
        """Async :meth:`delete_messages`."""
        old = await self._astored(key)
        if not old:
            return None
        await self._arun(_forget(old))
        return [_message(m) for m in old]

    async def adelete_message(self, key: str, idx: int) -> ChatMessage | None:
        """Async :meth:`delete_message`."""
        target = _pick(await self._astored(key), idx)
        if target is None:
            return None
        await self._arun(_forget([target]))
        return _message(target)

    async def adelete_last_message(self, key: str) -> ChatMessage | None:
        """Async :meth:`delete_last_message`."""
        return await self.adelete_message(key, -1)

    async def aget_keys(self) -> list[str]:
        """Async :meth:`get_keys`."""
        return _distinct_sessions(await self._alist(None))

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """Close the sync client if this store built it."""
        self._clients.close()

    async def aclose(self) -> None:
        """Close every client this store built."""
        await self._clients.aclose()
