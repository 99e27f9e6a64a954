"""Chat messages of any realistic length stored exactly, for the chat history adapters.

A message is kept whole in one memory's metadata when it fits the contract's 16 KiB; a
longer one (a 20,000-character answer, a big tool result) is serialized to JSON and split
over several memories of at most :data:`PART_CHARS` characters each, in their content,
which the server returns character for character. All the parts of a message, and all the
messages of one ``add_messages`` call, go in one request whenever they fit its 1 MiB body
(:func:`requests_for`), so a turn is stored whole or not at all; a message is never split
across requests. Reading joins the parts back (:func:`records`).

Every item says ``deduplicate: false``: in a transcript, "yes" said twice is two messages.

Every memory that holds a chat message (or a part of one) is marked the same way, whichever
adapter wrote it: ``{"memlayer_kind": "chat_message", "memlayer_format": <framework>}``
(:class:`MessageMarker`). The kind says "this is a transcript message, not a fact"; the
format says whose serialization ``metadata["message"]`` is (LangChain's ``message_to_dict``
and LlamaIndex's ``ChatMessage`` dump differ), so one family never reads the other's
messages of the same session. Markers written by earlier versions stay readable: LangChain's
``{"memlayer_kind": "chat_message"}`` without a format, LlamaIndex's
``{"type": "llama_index.chat_message"}``. The server's filters have no "or", so a family
whose old marker has another key lists once per marker and merges (:func:`list_messages`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._client import AsyncMemLayerClient, MemLayerClient
from .._constants import MAX_BATCH_ITEMS, MAX_CONTENT_CHARS
from .._models import Memory

__all__ = [
    "CHAT_MESSAGE",
    "FORMAT_FIELD",
    "KIND_FIELD",
    "LANGCHAIN_MESSAGES",
    "LLAMA_INDEX_MESSAGES",
    "MAX_MESSAGE_BYTES",
    "PART_CHARS",
    "PART_FIELD",
    "MessageMarker",
    "alist_messages",
    "list_messages",
    "message_items",
    "records",
    "requests_for",
]

#: Metadata key of a part: ``{"id": ..., "index": i, "count": n}``.
PART_FIELD = "memlayer_part"
#: Characters of serialized message per part (the content limit is 32,768).
PART_CHARS = 30_000
#: The contract's metadata limit, less room for the adapter's own fields.
_METADATA_BUDGET = 16 * 1024 - 512
#: What one request may carry, UTF-8 encoded, under the 1 MiB body limit. A message whose
#: parts alone exceed it cannot be stored in one request and is refused before any is sent:
#: 200,000 characters of text always fit (300,000 bytes of 3-byte characters, twice that if
#: every character had to be escaped).
MAX_MESSAGE_BYTES = 960_000

#: Metadata key and value that mark a memory as a chat message, for every adapter.
KIND_FIELD = "memlayer_kind"
CHAT_MESSAGE = "chat_message"
#: Metadata key naming the serialization of ``metadata["message"]``: ``"langchain"`` or
#: ``"llama_index"``.
FORMAT_FIELD = "memlayer_format"


@dataclass(frozen=True)
class MessageMarker:
    """How one adapter family marks its chat messages, and how it finds them again.

    Args:
        format: the family's value of :data:`FORMAT_FIELD`.
        legacy: the marker the family wrote before :data:`FORMAT_FIELD` existed; a memory
            without a format that carries it is the family's too.
        reads: the server filters whose union holds every message of the family, old and
            new, in the order their listings are merged (oldest marker first).
    """

    format: str
    legacy: Mapping[str, Any]
    reads: tuple[Mapping[str, Any], ...] = field(default=())

    def metadata(self) -> dict[str, Any]:
        """The marker written on every memory of a message."""
        return {KIND_FIELD: CHAT_MESSAGE, FORMAT_FIELD: self.format}

    def owns(self, memory: Memory) -> bool:
        """Whether ``memory`` holds one of this family's messages (new or old marker)."""
        meta = memory.metadata
        if FORMAT_FIELD in meta:
            return meta.get(KIND_FIELD) == CHAT_MESSAGE and meta[FORMAT_FIELD] == self.format
        return all(meta.get(k) == v for k, v in self.legacy.items())


#: LangChain's chat history. Its old marker is the kind alone, so one listing on the kind
#: finds old and new messages (and drops another family's by their format).
LANGCHAIN_MESSAGES = MessageMarker(
    format="langchain",
    legacy={KIND_FIELD: CHAT_MESSAGE},
    reads=({KIND_FIELD: CHAT_MESSAGE},),
)
#: LlamaIndex's chat store. Its old marker was ``{"type": "llama_index.chat_message"}``,
#: another key, so reads list under both markers and merge.
_LLAMA_INDEX_LEGACY = {"type": "llama_index.chat_message"}
LLAMA_INDEX_MESSAGES = MessageMarker(
    format="llama_index",
    legacy=_LLAMA_INDEX_LEGACY,
    reads=(_LLAMA_INDEX_LEGACY, {KIND_FIELD: CHAT_MESSAGE, FORMAT_FIELD: "llama_index"}),
)


def _merged(listings: Sequence[Sequence[Memory]], marker: MessageMarker) -> list[Memory]:
    # Each listing is in creation order; a stable sort on the creation time merges them
    # (a memory found by two filters is kept once), and ``owns`` drops the messages of
    # another family that a shared filter also selects.
    seen: set[str] = set()
    out: list[Memory] = []
    for listing in listings:
        for memory in listing:
            if memory.id not in seen and marker.owns(memory):
                seen.add(memory.id)
                out.append(memory)
    if len(listings) > 1:
        out.sort(key=lambda m: m.created_at)
    return out


def list_messages(
    client: MemLayerClient, marker: MessageMarker, page_size: int, **scope: Any
) -> list[Memory]:
    """Every memory of ``scope`` holding a message of ``marker``'s family, oldest first
    (one listing per filter in ``marker.reads``)."""
    return _merged(
        [list(client.list_memories(**scope, filters=f, page_size=page_size)) for f in marker.reads],
        marker,
    )


async def alist_messages(
    client: AsyncMemLayerClient, marker: MessageMarker, page_size: int, **scope: Any
) -> list[Memory]:
    """Async :func:`list_messages`."""
    listings = []
    for f in marker.reads:
        listings.append(
            [m async for m in client.list_memories(**scope, filters=f, page_size=page_size)]
        )
    return _merged(listings, marker)


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def message_items(
    record: Mapping[str, Any], content: str, metadata: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The memory items that store one message.

    Args:
        record: the message as JSON-ready data (what comes back from :func:`records`).
        content: the searchable text of a message that fits one memory.
        metadata: the adapter's own metadata fields (its :class:`MessageMarker`), on every
            part.
    """
    whole = {**metadata, "message": dict(record)}
    if content.strip() and len(content) <= MAX_CONTENT_CHARS and _size(whole) <= _METADATA_BUDGET:
        return [{"content": content, "metadata": whole, "deduplicate": False}]
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    chunks = [text[i : i + PART_CHARS] for i in range(0, len(text), PART_CHARS)]
    part_id = uuid.uuid4().hex
    items = [
        {
            # The prefix keeps a part that is only white space from being a blank content.
            "content": f"[part {i + 1}/{len(chunks)}] {chunk}",
            "metadata": {**metadata, PART_FIELD: {"id": part_id, "index": i, "count": len(chunks)}},
            "deduplicate": False,
        }
        for i, chunk in enumerate(chunks)
    ]
    size = _size(items)
    if size > MAX_MESSAGE_BYTES:
        raise ValueError(
            f"this message is {len(text):,} characters as JSON ({size:,} bytes to send); a "
            f"message is stored in one request of at most {MAX_MESSAGE_BYTES:,} bytes"
        )
    return items


def records(memories: Sequence[Memory]) -> list[tuple[dict[str, Any], list[str]]]:
    """Each message stored in ``memories`` (in order) with the ids of its memories."""
    out: list[tuple[dict[str, Any], list[str]]] = []
    parts: dict[str, list[Memory]] = {}
    for memory in memories:
        part = memory.metadata.get(PART_FIELD)
        if part is None:
            out.append((memory.metadata["message"], [memory.id]))
            continue
        group = parts.setdefault(part["id"], [])
        group.append(memory)
        if len(group) == part["count"]:
            group.sort(key=lambda m: m.metadata[PART_FIELD]["index"])
            text = "".join(m.content.split("] ", 1)[1] for m in group)
            out.append((json.loads(text), [m.id for m in group]))
            del parts[part["id"]]
    if parts:
        raise ValueError(
            f"{len(parts)} stored message(s) are missing parts; they were not written by this "
            "package's chat history, or their memories were forgotten one by one"
        )
    return out


def requests_for(messages: Sequence[list[dict[str, Any]]]) -> list[list[list[dict[str, Any]]]]:
    """The items of ``messages`` (each a list from :func:`message_items`) packed into
    requests: each request is a list of ``remember_many`` item lists (at most 100 items
    each, at most 100 of them), at most :data:`MAX_MESSAGE_BYTES` in all. One request when
    everything fits; a message is never split between two."""
    out: list[list[list[dict[str, Any]]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for items in messages:
        item_size = _size(items)
        if current and (
            size + item_size > MAX_MESSAGE_BYTES
            or len(current) + len(items) > MAX_BATCH_ITEMS * MAX_BATCH_ITEMS
        ):
            out.append(_ops(current))
            current, size = [], 0
        current.extend(items)
        size += item_size
    if current:
        out.append(_ops(current))
    return out


def _ops(items: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [items[i : i + MAX_BATCH_ITEMS] for i in range(0, len(items), MAX_BATCH_ITEMS)]
