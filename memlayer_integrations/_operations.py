"""What each operation sends and how its answer is read, with no I/O and no client state.

One definition per operation: the request body (or query parameters and path) and the
parser of its result. :class:`BaseClient` wraps them into calls that both clients send, and
:class:`Op` builds the same bodies as operations of a ``batch`` request, whose results are
read by the same parsers. The builders refuse malformed arguments (one string where a list
is due, an unknown item field) before anything is sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from . import _constants as C
from ._models import Memory, MemoryList, RecalledMemory, RecallResults, Scope, ScopeList, Usage

#: A memory to store: its text, or a mapping with ``content`` and optional ``metadata``,
#: ``key``, ``session_id``, ``ttl`` (seconds), ``expires_at`` (an aware datetime or ISO 8601
#: string) and ``deduplicate`` (``False``: always add, even when the same text is stored).
MemoryItem = str | Mapping[str, Any]

_ITEM_FIELDS = {"content", "metadata", "key", "session_id", "ttl", "expires_at", "deduplicate"}


def _drop_none(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


def _ttl(ttl: Any) -> float | int | None:
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise TypeError(f"ttl is a number of seconds, not {type(ttl).__name__}")
    if not 0 < ttl <= C.MAX_TTL_SECONDS:
        raise ValueError(f"ttl must be more than 0 and at most {C.MAX_TTL_SECONDS} seconds")
    return ttl


def _expires_at(value: Any) -> str | None:
    """An expiry as the wire's ISO 8601 text; a datetime must carry its time zone."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("expires_at needs a time zone (an aware datetime)")
        return value.isoformat()
    raise TypeError(f"expires_at is a datetime or an ISO 8601 string, not {type(value).__name__}")


def _expiry(ttl: Any, expires_at: Any) -> dict[str, Any]:
    if ttl is not None and expires_at is not None:
        raise TypeError("give ttl or expires_at, not both")
    return {"ttl": _ttl(ttl), "expires_at": _expires_at(expires_at)}


def normalize_item(item: MemoryItem) -> dict[str, Any]:
    """Turn a ``remember_many`` item into its wire form, rejecting what the server would."""
    if isinstance(item, str):
        return {"content": item}
    if isinstance(item, Mapping):
        if not _ITEM_FIELDS.issuperset(item):
            raise TypeError(f"unknown memory item field(s): {sorted(set(item) - _ITEM_FIELDS)}")
        if "content" not in item:
            raise TypeError("a memory item mapping needs 'content'")
        out = dict(item)
        if "ttl" in out or "expires_at" in out:
            out.update(_expiry(out.get("ttl"), out.get("expires_at")))
        return _drop_none(out)
    raise TypeError(f"a memory item is a str or a mapping, not {type(item).__name__}")


def parse_memory(body: Any) -> Memory:
    return Memory.model_validate(body)


def _parse_memory_field(body: Any) -> Memory:
    return Memory.model_validate(body["memory"])


def parse_memories(body: Any) -> list[Memory]:
    return MemoryList(Memory.model_validate(m) for m in body["memories"])


def parse_recalled(body: Any) -> list[RecalledMemory]:
    return RecallResults(RecalledMemory.model_validate(r) for r in body["results"])


def parse_batched_memories(body: Any) -> list[Memory]:
    """The memories of a ``/batch`` request made only of ``remember_many`` operations."""
    return MemoryList(m for result in body["results"] for m in parse_memories(result))


def parse_deleted(body: Any) -> int:
    return int(body["deleted"])


def parse_page(body: Any) -> tuple[list[Memory], str | None]:
    return parse_memories(body), body.get("next_cursor")


def parse_usage(body: Any) -> Usage:
    return Usage.model_validate(body)


def parse_scopes(body: Any) -> list[Scope]:
    return ScopeList(Scope.model_validate(s) for s in body["scopes"])


def parse_nothing(body: Any) -> None:
    return None


# How each batch operation's result is read: the same shapes as the single endpoints.
BATCH_PARSERS: dict[str, Callable[[Any], Any]] = {
    "remember": _parse_memory_field,
    "remember_many": parse_memories,
    "recall": parse_recalled,
    "get": _parse_memory_field,
    "update": _parse_memory_field,
    "forget": parse_deleted,
    "forget_all": parse_deleted,
    "list": parse_page,
    "usage": lambda body: Usage.model_validate(body["usage"]),
    "scopes": parse_scopes,
}


class Op:
    """Builders for the operations of :meth:`MemLayerClient.batch`.

    A batch runs several operations in one request (one request against the daily quota),
    in order and all or nothing.

    Example:
        >>> memories, recalled = client.batch([
        ...     Op.remember_many(["likes tea"], user_id="u1", agent_id="bot"),
        ...     Op.recall("tea", user_id="u1"),
        ... ])
    """

    @staticmethod
    def remember(
        content: str,
        *,
        user_id: str,
        agent_id: str,
        metadata: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        key: str | None = None,
        ttl: float | None = None,
        expires_at: datetime | str | None = None,
    ) -> dict[str, Any]:
        return {
            "op": "remember",
            **remember_body(content, user_id, agent_id, metadata, session_id, key, ttl, expires_at),
        }

    @staticmethod
    def remember_many(
        items: Sequence[MemoryItem], *, user_id: str, agent_id: str, session_id: str | None = None
    ) -> dict[str, Any]:
        return {"op": "remember_many", **remember_many_body(items, user_id, agent_id, session_id)}

    @staticmethod
    def recall(
        query: str,
        *,
        user_id: str,
        agent_id: str | None = None,
        limit: int = C.DEFAULT_RECALL_LIMIT,
        filters: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        offset: int = 0,
        explain: bool = False,
        agent_prefix: str | None = None,
    ) -> dict[str, Any]:
        """``agent_prefix``: the agent of that id and those below it (``a`` covers ``a.b``,
        not ``ab``); usually instead of ``agent_id`` (given both, both must hold)."""
        return {
            "op": "recall",
            **recall_body(
                query, user_id, agent_id, limit, filters, session_id, offset, explain, agent_prefix
            ),
        }

    @staticmethod
    def get(memory_id: str) -> dict[str, Any]:
        return {"op": "get", "memory_id": memory_id}

    @staticmethod
    def update(
        memory_id: str, *, content: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        return {"op": "update", "memory_id": memory_id, **update_body(content, metadata)}

    @staticmethod
    def forget(memory_id: str) -> dict[str, Any]:
        return {"op": "forget", "memory_id": memory_id}

    @staticmethod
    def forget_all(
        *,
        user_id: str,
        agent_id: str | None = None,
        session_id: str | None = None,
        keys: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        return {
            "op": "forget_all",
            **_drop_none(
                {
                    "user_id": user_id,
                    "agent_id": agent_id,
                    "session_id": session_id,
                    "keys": _list_or_none(keys),
                }
            ),
        }

    @staticmethod
    def list(
        *,
        user_id: str,
        agent_id: str | None = None,
        session_id: str | None = None,
        filters: Mapping[str, Any] | None = None,
        keys: Sequence[str] | None = None,
        limit: int = C.DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
        agent_prefix: str | None = None,
    ) -> dict[str, Any]:
        """``agent_prefix`` as in :meth:`recall`."""
        return {
            "op": "list",
            **_drop_none(
                {
                    "user_id": user_id,
                    "agent_id": agent_id,
                    "agent_prefix": agent_prefix,
                    "session_id": session_id,
                    "filters": dict(filters) if filters is not None else None,
                    "keys": _list_or_none(keys),
                    "limit": limit,
                    "cursor": cursor,
                }
            ),
        }

    @staticmethod
    def usage() -> dict[str, Any]:
        return {"op": "usage"}

    @staticmethod
    def scopes(*, user_id: str | None = None, agent_prefix: str | None = None) -> dict[str, Any]:
        """The (user, agent) pairs holding memories, as :meth:`MemLayerClient.list_scopes`."""
        return {"op": "scopes", **_drop_none({"user_id": user_id, "agent_prefix": agent_prefix})}


def _list_or_none(keys: Sequence[str] | None) -> list[str] | None:
    if keys is None:
        return None
    if isinstance(keys, str):
        raise TypeError("keys is a sequence of keys, not a single string")
    return list(keys)


def remember_body(
    content: str,
    user_id: str,
    agent_id: str,
    metadata: Mapping[str, Any] | None,
    session_id: str | None,
    key: str | None,
    ttl: float | None = None,
    expires_at: datetime | str | None = None,
) -> dict[str, Any]:
    return _drop_none(
        {
            "content": content,
            "user_id": user_id,
            "agent_id": agent_id,
            "session_id": session_id,
            "metadata": dict(metadata) if metadata is not None else None,
            "key": key,
            **_expiry(ttl, expires_at),
        }
    )


def remember_many_body(
    items: Sequence[MemoryItem], user_id: str, agent_id: str, session_id: str | None
) -> dict[str, Any]:
    if isinstance(items, (str, Mapping)):
        raise TypeError("items is a sequence of memories; wrap a single one in a list")
    return _drop_none(
        {
            "user_id": user_id,
            "agent_id": agent_id,
            "session_id": session_id,
            "items": [normalize_item(i) for i in items],
        }
    )


@dataclass(frozen=True)
class RememberManyRequest:
    """One request of a ``remember_many``: what it stores and where it is sent."""

    count: int
    path: str
    body: dict[str, Any]


def _json_size(value: Any) -> int:
    # As the clients serialize bodies (json.dumps defaults, ensure_ascii=False).
    return len(json.dumps(value, ensure_ascii=False).encode())


def remember_many_requests(
    items: Sequence[MemoryItem],
    user_id: str,
    agent_id: str,
    session_id: str | None,
    max_bytes: int = C.MAX_BODY_BYTES,
    max_items: int = C.BULK_ITEMS_PER_REQUEST,
) -> list[RememberManyRequest]:
    """The requests that store ``items``, in order, few and of bounded size.

    Up to ``MAX_BATCH_ITEMS`` items: one ``POST /memories/batch``, all or nothing, as
    always. More: ``POST /batch`` requests of ``remember_many`` operations (at most
    ``MAX_BATCH_ITEMS`` items each), each request holding at most ``max_items`` items and
    ``max_bytes`` of body. So 1,000 short memories take one request against the daily
    quota instead of ten, and 10,000 take ten instead of a hundred. Each request is all or
    nothing; the items are validated before any is sent.
    """
    whole = remember_many_body(items, user_id, agent_id, session_id)
    normalized: list[dict[str, Any]] = whole.pop("items")
    if len(normalized) <= C.MAX_BATCH_ITEMS:
        return [
            RememberManyRequest(len(normalized), "/memories/batch", {**whole, "items": normalized})
        ]
    header = {"op": "remember_many", **whole, "items": []}
    op_size = _json_size(header) + 2  # the ", " between operations
    budget = max_bytes - _json_size({"operations": []})
    requests: list[RememberManyRequest] = []
    ops: list[dict[str, Any]] = []
    used = 0

    def flush() -> None:
        nonlocal ops, used
        if ops:
            count = sum(len(op["items"]) for op in ops)
            requests.append(RememberManyRequest(count, "/batch", {"operations": ops}))
        ops, used = [], 0

    for item in normalized:
        size = _json_size(item) + 2
        if ops and sum(len(op["items"]) for op in ops) >= max_items:
            flush()
        fits_op = bool(ops) and len(ops[-1]["items"]) < C.MAX_BATCH_ITEMS
        if fits_op and used + size <= budget:
            ops[-1]["items"].append(item)
            used += size
            continue
        if not ops or len(ops) >= C.MAX_BATCH_ITEMS or used + op_size + size > budget:
            flush()
        ops.append({**header, "items": [item]})
        used += op_size + size
    flush()
    return requests


def recall_body(
    query: str,
    user_id: str,
    agent_id: str | None,
    limit: int,
    filters: Mapping[str, Any] | None,
    session_id: str | None,
    offset: int,
    explain: bool = False,
    agent_prefix: str | None = None,
) -> dict[str, Any]:
    return _drop_none(
        {
            "query": query,
            "user_id": user_id,
            "agent_id": agent_id,
            "agent_prefix": agent_prefix,
            "session_id": session_id,
            "filters": dict(filters) if filters is not None else None,
            "limit": limit,
            "offset": offset or None,
            "explain": True if explain else None,
        }
    )


def update_body(content: str | None, metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    if content is None and metadata is None:
        raise TypeError("update needs content, metadata or both")
    return _drop_none(
        {"content": content, "metadata": dict(metadata) if metadata is not None else None}
    )


def memory_path(memory_id: str) -> str:
    if not isinstance(memory_id, str) or not memory_id:
        raise TypeError("memory_id must be a non-empty string")
    # Quote so that an id like "../usage" stays one path segment.
    return "/memories/" + quote(memory_id, safe="")


def scope_params(
    user_id: str, agent_id: str | None, session_id: str | None, keys: Sequence[str] | None
) -> list[tuple[str, str]]:
    params = [("user_id", user_id)]
    if agent_id is not None:
        params.append(("agent_id", agent_id))
    if session_id is not None:
        params.append(("session_id", session_id))
    for k in _list_or_none(keys) or []:
        params.append(("key", k))
    return params
