"""Chat messages of any realistic length stored exactly, for the chat history adapters.

A message is kept whole in one memory's metadata when it fits the contract's 16 KiB; a
longer one (a 20,000-character answer, a big tool result) is serialized to JSON and split
over several memories of at most :data:`PART_CHARS` characters each, in their content,
which the server returns character for character. All the parts of a message, and all the
messages of one ``add_messages`` call, go in one request whenever they fit its 1 MiB body
(:func:`requests_for`), so a turn is stored whole or not at all; a message is never split
across requests. Reading joins the parts back (:func:`records`).

Every item says ``deduplicate: false``: in a transcript, "yes" said twice is two messages.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from .._constants import MAX_BATCH_ITEMS, MAX_CONTENT_CHARS
from .._models import Memory

__all__ = [
    "MAX_MESSAGE_BYTES",
    "PART_CHARS",
    "PART_FIELD",
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


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def message_items(
    record: Mapping[str, Any], content: str, metadata: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The memory items that store one message.

    Args:
        record: the message as JSON-ready data (what comes back from :func:`records`).
        content: the searchable text of a message that fits one memory.
        metadata: the adapter's own metadata fields (its kind marker), on every part.
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
