"""The memory cap, for the chat adapters: say what to do, or make room when asked to.

A write past the plan's memory limit gets 403 ``memory_limit_reached`` and stores nothing.
An adapter raises it as :class:`MemoryLimitError` (LangChain and LlamaIndex both let an
error from a memory reach the caller: it is not transient, so ``fail_open`` never hides
it), with a message that names the adapter's ``make_room`` option. With ``make_room=True``
the adapter forgets the oldest memories of the scopes it writes to, as many as it writes,
and sends the write again in the same request as those forgets (all or nothing): two more
requests, only when the cap is reached.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._constants import MAX_BATCH_ITEMS
from .._exceptions import MemoryLimitError
from .._operations import Op

if TYPE_CHECKING:
    from .._client import AsyncMemLayerClient, MemLayerClient

__all__ = ["abatch", "aroom_for", "batch", "room_for"]


def _wanted(ops: Sequence[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """How many memories each (user, agent) of ``ops`` writes, at most what a batch can hold."""
    room = MAX_BATCH_ITEMS - len(ops)
    need: dict[tuple[str, str], int] = {}
    for op in ops:
        n = len(op["items"]) if op["op"] == "remember_many" else int(op["op"] == "remember")
        if n:
            scope = (op["user_id"], op["agent_id"])
            take = min(n, room)
            need[scope] = need.get(scope, 0) + take
            room -= take
    return {scope: n for scope, n in need.items() if n}


def _check(exc: MemoryLimitError, make_room: bool, adapter: str) -> None:
    if not make_room:
        raise MemoryLimitError(
            f"{exc.message}. Or pass make_room=True to {adapter} to forget the oldest "
            "memories of this user and agent when the limit is reached",
            status_code=exc.status_code,
            code=exc.code,
            request_id=exc.request_id,
            field=exc.field,
        ) from exc


def room_for(
    client: MemLayerClient,
    ops: Sequence[dict[str, Any]],
    exc: MemoryLimitError,
    *,
    make_room: bool,
    adapter: str,
) -> list[dict[str, Any]]:
    """The forget operations to send before ``ops``, whose request failed with ``exc``.

    Raises:
        MemoryLimitError: ``make_room`` is off (the message says how to turn it on).
    """
    _check(exc, make_room, adapter)
    out = []
    for (user_id, agent_id), n in _wanted(ops).items():
        oldest = client.list_memories(user_id=user_id, agent_id=agent_id, page_size=n)
        out += [Op.forget(m.id) for m in itertools.islice(oldest, n)]
    return out


async def aroom_for(
    client: AsyncMemLayerClient,
    ops: Sequence[dict[str, Any]],
    exc: MemoryLimitError,
    *,
    make_room: bool,
    adapter: str,
) -> list[dict[str, Any]]:
    """Async :func:`room_for`."""
    _check(exc, make_room, adapter)
    out = []
    for (user_id, agent_id), n in _wanted(ops).items():
        pages = client.list_memories(user_id=user_id, agent_id=agent_id, page_size=n)
        found = 0
        async for memory in pages:
            out.append(Op.forget(memory.id))
            found += 1
            if found == n:
                break
    return out


def batch(
    client: MemLayerClient, ops: Sequence[dict[str, Any]], *, make_room: bool, adapter: str
) -> list[Any]:
    """``client.batch(ops)``; past the memory limit, with room made first (or the error)."""
    try:
        return client.batch(list(ops))
    except MemoryLimitError as exc:
        room = room_for(client, ops, exc, make_room=make_room, adapter=adapter)
        return client.batch([*room, *ops])[len(room) :]


async def abatch(
    client: AsyncMemLayerClient, ops: Sequence[dict[str, Any]], *, make_room: bool, adapter: str
) -> list[Any]:
    """Async :func:`batch`."""
    try:
        return await client.batch(list(ops))
    except MemoryLimitError as exc:
        room = await aroom_for(client, ops, exc, make_room=make_room, adapter=adapter)
        return (await client.batch([*room, *ops]))[len(room) :]
