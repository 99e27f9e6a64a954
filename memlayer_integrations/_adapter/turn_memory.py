"""Framework-free pieces every chat-memory adapter needs, written once.

* :func:`render_memories` turns recalled memories into the block of text put in front of
  the model: each memory with its id, nothing the conversation already holds, within a
  character budget.
* :class:`WriteBuffer` holds a turn's writes in *economy mode*, so that they travel with the
  next turn's recall in one ``/v1/batch`` request (one request per turn instead of two).
  Whatever is still buffered is flushed on ``close()`` and at interpreter exit.
* :func:`recall_carrying` / :func:`arecall_carrying` recall, sending the buffered writes in
  the same request; :func:`send_pending` / :func:`asend_pending` store them on their own.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .._constants import MAX_BATCH_ITEMS
from .._logging import get_logger
from .._models import RecalledMemory
from .._operations import MemoryItem, Op, normalize_item

if TYPE_CHECKING:
    from .._client import AsyncMemLayerClient, MemLayerClient

__all__ = [
    "MEMORY_HEADER",
    "WriteBuffer",
    "arecall_carrying",
    "asend_pending",
    "recall_carrying",
    "render_memories",
    "send_pending",
]

log = get_logger("memlayer_integrations.memory")

# Content characters one economy-mode request carries at most, well under the 1 MiB body limit.
MAX_BATCH_CHARS = 256_000

MEMORY_HEADER = "Relevant long-term memories about this user (from earlier conversations):"


def _normalize(text: str) -> str:
    return " ".join(text.split()).casefold()


def render_memories(
    recalled: Sequence[RecalledMemory],
    *,
    exclude: Iterable[str] = (),
    max_chars: int = 2000,
    header: str = MEMORY_HEADER,
) -> str | None:
    """The context block for ``recalled``, or ``None`` when nothing is left to say.

    Args:
        recalled: memories, best first (as ``recall`` returns them).
        exclude: texts already in the conversation; a memory whose content equals one of
            them (ignoring case and spacing) is left out, so the model never reads it twice.
        max_chars: budget for the whole block. Memories are added best first until the next
            one would not fit; a memory is never cut in the middle.
        header: the first line of the block.
    """
    seen = {_normalize(t) for t in exclude if t}
    lines: list[str] = []
    used = len(header)
    for item in recalled:
        text = item.memory.content
        norm = _normalize(text)
        if norm in seen:
            continue
        line = f"- [{item.memory.id}] {text}"
        if used + 1 + len(line) > max_chars:
            break
        seen.add(norm)
        lines.append(line)
        used += 1 + len(line)
    if not lines:
        return None
    return "\n".join([header, *lines])


class WriteBuffer:
    """Writes waiting to ride along with the next request (economy mode).

    Items are grouped by scope, so a flush is one ``remember_many`` operation per
    (user, agent) pair. :meth:`take` empties the buffer; if the request carrying the taken
    operations fails, :meth:`restore` puts them back, so a failed request loses nothing.

    Args:
        flush: called with the pending operations at interpreter exit (and by adapters'
            ``close()``); it must send them synchronously, e.g. ``client.batch``.
    """

    def __init__(self, flush: Callable[[list[dict[str, Any]]], Any] | None = None) -> None:
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._flush = flush
        if flush is not None:
            # A weak reference, so the buffer can still be garbage-collected; an exit hook
            # that held it strongly would keep every adapter alive for the whole process.
            ref = weakref.ref(self)
            atexit.register(_flush_at_exit, ref)

    def __len__(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._pending.values())

    def add(self, items: Sequence[MemoryItem], *, user_id: str, agent_id: str) -> None:
        """Queue ``items`` (as accepted by ``remember_many``) for this scope."""
        ops = [normalize_item(item) for item in items]
        with self._lock:
            self._pending.setdefault((user_id, agent_id), []).extend(ops)

    def take(
        self, max_items: int = MAX_BATCH_ITEMS - 1, max_chars: int = MAX_BATCH_CHARS
    ) -> list[dict[str, Any]]:
        """Remove and return pending writes, oldest first, as batch operations.

        At most ``max_items`` memories and about ``max_chars`` characters of content are
        taken, so that the operations and one more (the recall they ride with) always fit in
        one request; the rest stays queued for the next one. At least one memory is taken
        when any is pending.
        """
        taken: dict[tuple[str, str], list[dict[str, Any]]] = {}
        count = chars = 0
        with self._lock:
            for scope in list(self._pending):
                items = self._pending[scope]
                while items and count < max_items:
                    size = len(items[0].get("content", ""))
                    if count and chars + size > max_chars:
                        break
                    taken.setdefault(scope, []).append(items.pop(0))
                    count += 1
                    chars += size
                if not items:
                    del self._pending[scope]
                if count >= max_items or (count and chars >= max_chars):
                    break
        return [
            Op.remember_many(items, user_id=user_id, agent_id=agent_id)
            for (user_id, agent_id), items in taken.items()
        ]

    def restore(self, operations: Sequence[dict[str, Any]]) -> None:
        """Put back operations returned by :meth:`take` whose request failed, ahead of newer ones."""
        with self._lock:
            for op in reversed(list(operations)):
                scope = (op["user_id"], op["agent_id"])
                self._pending[scope] = list(op["items"]) + self._pending.get(scope, [])

    def flush(self, send: Callable[[list[dict[str, Any]]], Any] | None = None) -> None:
        """Send everything pending now, one request at a time, with ``send`` (by default
        the ``flush`` callable), e.g. ``client.batch``.

        If a request fails, what it carried goes back to the queue and the error is raised;
        what earlier requests stored stays stored and is not queued again.
        """
        send = send or self._flush
        if send is None:
            raise RuntimeError("this WriteBuffer has no flush callable")
        while ops := self.take(max_items=MAX_BATCH_ITEMS):
            try:
                send(ops)
            except BaseException:
                self.restore(ops)
                raise

    async def aflush(self, send: Callable[[list[dict[str, Any]]], Awaitable[Any]]) -> None:
        """Async :meth:`flush`, with an async ``send`` such as ``AsyncMemLayerClient.batch``."""
        while ops := self.take(max_items=MAX_BATCH_ITEMS):
            try:
                await send(ops)
            except BaseException:
                self.restore(ops)
                raise


def recall_carrying(
    client: MemLayerClient, buffer: WriteBuffer, query: str, *, carry: bool, **scope: Any
) -> list[RecalledMemory]:
    """``client.recall(query, **scope)``; with ``carry``, pending writes go in the same request.

    The writes are taken from ``buffer`` and sent first in one ``/v1/batch`` request (all
    or nothing); if the request fails they are put back, so nothing waiting is lost.
    """
    ops = buffer.take() if carry else []
    try:
        if ops:
            results = client.batch([*ops, Op.recall(query, **scope)])
            recalled: list[RecalledMemory] = results[-1]
            return recalled
        return client.recall(query, **scope)
    except BaseException:
        buffer.restore(ops)
        raise


async def arecall_carrying(
    client: AsyncMemLayerClient, buffer: WriteBuffer, query: str, *, carry: bool, **scope: Any
) -> list[RecalledMemory]:
    """Async :func:`recall_carrying`."""
    ops = buffer.take() if carry else []
    try:
        if ops:
            results = await client.batch([*ops, Op.recall(query, **scope)])
            recalled: list[RecalledMemory] = results[-1]
            return recalled
        return await client.recall(query, **scope)
    except BaseException:
        buffer.restore(ops)
        raise


def send_pending(client: MemLayerClient, buffer: WriteBuffer) -> None:
    """Store every write waiting in ``buffer``, one ``remember_many`` request per scope and
    batch; what a failed request carried (and what waited behind it) is put back."""
    while ops := buffer.take():
        for i, op in enumerate(ops):
            try:
                client.remember_many(op["items"], user_id=op["user_id"], agent_id=op["agent_id"])
            except BaseException:
                buffer.restore(ops[i:])
                raise


async def asend_pending(client: AsyncMemLayerClient, buffer: WriteBuffer) -> None:
    """Async :func:`send_pending`."""
    while ops := buffer.take():
        for i, op in enumerate(ops):
            try:
                await client.remember_many(
                    op["items"], user_id=op["user_id"], agent_id=op["agent_id"]
                )
            except BaseException:
                buffer.restore(ops[i:])
                raise


def _flush_at_exit(ref: weakref.ReferenceType[WriteBuffer]) -> None:
    buffer = ref()
    if buffer is None or not len(buffer):
        return
    try:
        buffer.flush()
    except Exception as exc:  # at exit there is no caller left to raise to
        log.error("could not flush %d pending memories at exit: %s", len(buffer), exc)
