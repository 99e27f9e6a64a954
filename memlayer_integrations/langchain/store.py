"""A LangGraph ``BaseStore`` kept in MemLayer, for ``create_agent(..., store=...)``."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from typing import Any, cast

from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    validate_op_namespace,
)
from langgraph.store.base.embed import get_text_at_path, tokenize_path

from .. import AsyncMemLayerClient, MemLayerClient, MemLayerScopeError, Memory
from .. import Op as MOp
from .._adapter import MAX_BATCH_ITEMS, MAX_CONTENT_CHARS, ClientPair, clip_query, require_scope

__all__ = ["MemLayerStore", "decode_label", "encode_label", "memlayer_namespace"]

_ESCAPE_RE = re.compile(r"%(25|2E)")
_FILTER_OPS = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"}
_MAX_ID = 256

Scope = tuple[str, str]  # (user_id, agent_id)


def encode_label(value: str) -> str:
    """A namespace label for ``value``: ``%`` becomes ``%25`` and ``.`` becomes ``%2E``.

    LangGraph labels may not contain ``.``, but user ids often do (e-mail addresses).
    """
    if not isinstance(value, str) or not value:
        raise InvalidNamespaceError(f"a namespace id must be a non-empty string, got {value!r}")
    # "%" first, so the "%" of an escaped "." is not escaped again.
    return value.replace("%", "%25").replace(".", "%2E")


def decode_label(label: str) -> str:
    """The id a label stands for; the inverse of :func:`encode_label`.

    Raises:
        InvalidNamespaceError: ``label`` is not what :func:`encode_label` produces (a ``%``
            not followed by ``25`` or ``2E``), so decoding stays exact both ways.
    """
    value = _ESCAPE_RE.sub(lambda m: "%" if m.group(1) == "25" else ".", label)
    if encode_label(value) != label:
        raise InvalidNamespaceError(
            f"namespace label {label!r} has a '%' that is not '%25' or '%2E'; build labels "
            f"from ids with memlayer_namespace()"
        )
    return value


def memlayer_namespace(user_id: str, *labels: str) -> tuple[str, ...]:
    """A store namespace for ``user_id`` (any string, e-mail addresses included).

    Example:
        >>> memlayer_namespace("alice@example.com", "memories")
        ('alice@example%2Ecom', 'memories')
    """
    return tuple(encode_label(x) for x in (user_id, *labels))


#: The content of an item put with ``index=False``: no letter or digit, so no word of a
#: query matches it and the server does not embed it; search finds it by listing only.
_UNINDEXED = "\u2060"


#: ``json.dumps(value, ensure_ascii=False)`` without building an encoder for every item.
_encode = json.JSONEncoder(ensure_ascii=False).encode


def _render(value: dict[str, Any], index: bool | list[str] | None) -> str:
    """The searchable text of a value: the indexed fields, else the value as JSON."""
    if index is False:
        return _UNINDEXED
    texts: list[str] = []
    if isinstance(index, list):
        for path in index:
            texts.extend(get_text_at_path(value, tokenize_path(path)))
    text = "\n".join(t for t in texts if t.strip()) or _encode(value)
    return text[:MAX_CONTENT_CHARS]


def _refreshing(wire_op: dict[str, Any], refresh: bool) -> dict[str, Any]:
    """``wire_op`` restarting the TTL of what it returns, when ``refresh``."""
    return {**wire_op, "refresh_ttl": True} if refresh else wire_op


def _check_filter(filter: dict[str, Any] | None) -> dict[str, Any] | None:
    if not filter:
        return None
    for key, cond in filter.items():
        if isinstance(cond, dict):
            bad = set(cond) - _FILTER_OPS
            if bad:
                raise ValueError(
                    f"filter on {key!r}: MemLayer filters compare top-level fields with a value or "
                    f"{sorted(_FILTER_OPS)}; nested matches ({sorted(bad)}) are not supported"
                )
        elif isinstance(cond, (list, tuple)):
            raise ValueError(f"filter on {key!r}: list values are not supported")
    return dict(filter)


def _users(scopes: Iterable[Any]) -> list[str]:
    """The users of ``scopes``, once each, in order."""
    return list(dict.fromkeys(s.user_id for s in scopes))


def _matches(condition: MatchCondition, ns: tuple[str, ...]) -> bool:
    path = condition.path
    if len(ns) < len(path):
        return False
    # A namespace may be longer than the condition's path: zip stops at the path's end.
    if condition.match_type == "prefix":
        pairs = zip(ns, path, strict=False)
    else:
        pairs = zip(reversed(ns), reversed(path), strict=False)
    return all(p == "*" or n == p for n, p in pairs)


@functools.lru_cache(maxsize=4096)
def _scope_namespace(root: str, user_id: str, agent_id: str) -> tuple[str, ...] | None:
    """The namespace of scope ``(user_id, agent_id)`` in a store whose ``agent_id`` is
    ``root``, or ``None`` if the scope is not one of that store's.

    Cached: every item a read returns is mapped back to its namespace, and the items of
    one read share one or a few scopes.
    """
    if agent_id == root:
        rest: list[str] = []
    elif agent_id.startswith(root + "."):
        rest = agent_id[len(root) + 1 :].split(".")
        if not all(rest):
            return None
    else:
        return None
    return (encode_label(user_id), *rest)


class MemLayerStore(BaseStore):
    """LangGraph's long-term store, kept in MemLayer.

    **Namespaces.** A namespace ``(user, *labels)`` is stored under MemLayer user
    ``decode_label(user)`` and agent ``agent_id`` followed by ``"." + label`` for each further
    label (``("alice", "memories")`` is user ``alice``, agent ``langgraph_store.memories``).
    Labels cannot contain ``.``, so this is reversible; ids that do (e-mail addresses) go
    through :func:`memlayer_namespace`, which escapes ``%`` and ``.`` as ``%25`` and ``%2E``.
    A store namespace's memories therefore sit next to what other adapters store for the same
    user, and :meth:`list_namespaces` (``GET /v1/scopes``) only reports agents under
    ``agent_id``.

    **Items.** An item is a memory whose ``key`` is the item key (a put replaces it) and
    whose ``metadata`` is the value itself, so values round-trip exactly (JSON objects of at
    most 16 KiB) and filters on value fields are MemLayer metadata filters. The memory's
    content is a text rendering of the value (the ``index`` fields if given, else its JSON)
    for ``search(query=...)``; ``put(..., index=False)`` stores a content without any word,
    which no query matches and the server does not embed.

    **Search with a query** returns the matches first, best first with their ``score``, then
    the other items that pass the filter with ``score=None``, in listing (creation) order, as
    LangGraph's own stores do (``InMemoryStore`` with an index puts items it has no vector for
    last). A server with an embedder ranks every item of a namespace by meaning, so the
    common "search the store with the user's message" finds what it means.

    **Requests.** One ``batch``/``abatch`` call (so one ``get``, ``put``, ``delete``,
    ``search`` or ``list_namespaces``) is one ``/v1/batch`` request, per 100 wire operations:
    a search of ``(user, *labels)`` reads that user's agents under the prefix's agent in one
    recall and one list (``agent_prefix``), and namespaces are read with a ``scopes``
    operation of the same request. Two cases cost more: a search of the whole store (prefix
    ``()``) first lists the users that have namespaces (``GET /v1/scopes``), and a search
    asking for more than 100 items pages on. Reads see the store as it was before the
    call's writes, as with ``InMemoryStore``.

    **Differences from InMemoryStore.** Filters follow the MemLayer contract: an item without
    the field never matches (not even ``$ne`` or ``None``), and numbers never compare with
    strings. A namespace lives as long as it holds items.

    **TTL** (``supports_ttl`` is ``True``), as LangGraph defines it: ``put(..., ttl=minutes)``
    or ``ttl_config={"default_ttl": minutes}`` make an item expire; a read with
    ``refresh_ttl`` (the default, or ``ttl_config["refresh_on_read"]``) restarts its clock in
    the same request. An expired item is never returned (``InMemoryStore`` has no TTL, and
    ``SqliteStore`` returns items until its sweeper deletes them); the server deletes
    expired memories at every request, so ``sweep_interval_minutes`` is accepted but no
    sweeper thread is needed.

    Args:
        agent_id: the MemLayer agent under which namespaces are stored.
        client, async_client, api_key, base_url: how to reach MemLayer.
        index: default fields rendered as searchable text (``put(index=...)`` overrides).
        ttl_config: LangGraph's ``TTLConfig`` (``default_ttl``, ``refresh_on_read``,
            ``sweep_interval_minutes``), in minutes.

    Example:
        >>> store = MemLayerStore(api_key=key, base_url=server.url)
        >>> ns = memlayer_namespace("alice@example.com", "prefs")
        >>> store.put(ns, "drink", {"likes": "green tea", "cups": 3})
        >>> store.get(ns, "drink").value
        {'likes': 'green tea', 'cups': 3}
        >>> [i.key for i in store.search(ns, filter={"cups": {"$gte": 2}})]
        ['drink']
    """

    supports_ttl = True

    def __init__(
        self,
        *,
        agent_id: str = "langgraph_store",
        client: MemLayerClient | None = None,
        async_client: AsyncMemLayerClient | None = None,
        api_key: Any | None = None,
        base_url: str | None = None,
        index: list[str] | None = None,
        ttl_config: TTLConfig | None = None,
    ) -> None:
        require_scope(type(self).__name__, agent_id=agent_id)
        if "." in agent_id:  # the namespace's other labels are joined to it with dots
            raise MemLayerScopeError("MemLayerStore's agent_id cannot contain '.'")
        self.agent_id = agent_id
        self.index = index
        self.ttl_config = ttl_config
        self._clients = ClientPair(client, async_client, api_key, base_url)

    # -- namespaces <-> scopes -------------------------------------------------------

    def _scope(self, namespace: tuple[str, ...]) -> Scope:
        if not namespace:
            raise InvalidNamespaceError("a namespace needs at least one label (the user)")
        user_id = decode_label(namespace[0])
        agent_id = self.agent_id + "".join("." + label for label in namespace[1:])
        if len(user_id) > _MAX_ID or len(agent_id) > _MAX_ID:
            raise InvalidNamespaceError(
                f"namespace {namespace} is too long for MemLayer (256 characters)"
            )
        return user_id, agent_id

    def _namespace(self, user_id: str, agent_id: str) -> tuple[str, ...] | None:
        """The namespace of a scope, or ``None`` if the scope is not one of this store's."""
        return _scope_namespace(self.agent_id, user_id, agent_id)

    # -- planning (pure) ---------------------------------------------------------------

    def _validate(self, ops: list[Op]) -> None:
        for op in ops:
            validate_op_namespace(op)
            if isinstance(op, PutOp) and op.ttl is not None and not op.ttl > 0:
                raise ValueError(f"ttl is a positive number of minutes, got {op.ttl!r}")
            if not isinstance(op, (GetOp, PutOp, SearchOp, ListNamespacesOp)):
                raise ValueError(f"unknown store operation {type(op).__name__}")

    def _users_to_scan(self, ops: list[Op]) -> bool:
        """Whether a search spans every user (prefix ``()``): only then are the users
        listed first, in a request of its own."""
        return any(isinstance(op, SearchOp) and not op.namespace_prefix for op in ops)

    @staticmethod
    def _namespaces_user(op: ListNamespacesOp) -> str | None:
        """The user a list of namespaces is confined to (its prefix's first label), if any."""
        first = next(
            (c.path[0] for c in op.match_conditions or () if c.match_type == "prefix" and c.path),
            "*",
        )
        return None if first == "*" else decode_label(first)

    def _plan(self, ops: list[Op], users: list[str]) -> tuple[list[dict[str, Any]], list[Any]]:
        """Wire operations for ``ops``, and for each store op how to read its results.

        A search of prefix ``(user, *labels)`` is one recall and one list of that user's
        agents under ``agent_prefix`` (the prefix's agent and those below it); a search of
        ``()`` is those for each of ``users``.
        """
        wire: list[dict[str, Any]] = []
        readers: list[Any] = [None] * len(ops)

        # Gets grouped by scope and by whether they restart the items' TTL.
        gets: dict[tuple[Scope, bool], list[int]] = {}
        for i, op in enumerate(ops):
            if isinstance(op, GetOp):
                gets.setdefault((self._scope(op.namespace), op.refresh_ttl), []).append(i)
        for ((user_id, agent_id), refresh), idxs in gets.items():
            keys = sorted({cast(GetOp, ops[i]).key for i in idxs})
            lo = len(wire)
            for c in range(0, len(keys), MAX_BATCH_ITEMS):
                chunk = keys[c : c + MAX_BATCH_ITEMS]
                wire.append(
                    _refreshing(
                        MOp.list(
                            user_id=user_id, agent_id=agent_id, keys=chunk, limit=MAX_BATCH_ITEMS
                        ),
                        refresh,
                    )
                )
            for i in idxs:
                readers[i] = ("get", lo, len(wire))

        for i, op in enumerate(ops):
            if not isinstance(op, SearchOp):
                continue
            filters = _check_filter(op.filter)
            if op.limit <= 0 or op.offset < 0:
                readers[i] = ("empty",)
                continue
            prefix = op.namespace_prefix
            scopes = [self._scope(prefix)] if prefix else [(u, self.agent_id) for u in users]
            first = len(wire)
            need = op.offset + op.limit
            for user_id, agent_id in scopes:
                if op.query and op.query.strip():
                    # The matches from the first, then (as LangGraph's stores do) the items
                    # that pass the filter but match nothing, from the list page beside them.
                    for s in range(0, need, 100):
                        wire.append(
                            _refreshing(
                                MOp.recall(
                                    clip_query(op.query),
                                    user_id=user_id,
                                    agent_prefix=agent_id,
                                    filters=filters,
                                    limit=min(100, need - s),
                                    offset=s,
                                ),
                                op.refresh_ttl,
                            )
                        )
                wire.append(
                    _refreshing(
                        MOp.list(
                            user_id=user_id,
                            agent_prefix=agent_id,
                            filters=filters,
                            limit=min(100, need),
                        ),
                        op.refresh_ttl,
                    )
                )
            readers[i] = ("search", first, len(wire))

        # Namespaces: the store's scopes, of the user the prefix names or of every user.
        listed: dict[str | None, int] = {}
        for i, op in enumerate(ops):
            if isinstance(op, ListNamespacesOp):
                user = self._namespaces_user(op)
                if user not in listed:
                    listed[user] = len(wire)
                    wire.append(MOp.scopes(user_id=user, agent_prefix=self.agent_id))
                readers[i] = ("namespaces", listed[user])

        # Writes, after the reads; the last op on a key wins, as in InMemoryStore.
        last: dict[tuple[tuple[str, ...], str], PutOp] = {}
        for op in ops:
            if isinstance(op, PutOp):
                last.pop((op.namespace, op.key), None)
                last[(op.namespace, op.key)] = op
        deletes: dict[Scope, list[str]] = {}
        puts: dict[Scope, list[dict[str, Any]]] = {}
        scope_of: dict[tuple[str, ...], Scope] = {}  # a batch's puts share few namespaces
        for (ns, key), op in last.items():
            scope = scope_of.get(ns) or scope_of.setdefault(ns, self._scope(ns))
            if op.value is None:
                deletes.setdefault(scope, []).append(key)
            else:
                index = self.index if op.index is None else op.index
                value = dict(op.value)
                item: dict[str, Any] = {
                    "content": _render(value, index),
                    "metadata": value,
                    "key": key,
                }
                if op.ttl is not None:  # LangGraph counts TTL in minutes, MemLayer in seconds.
                    item["ttl"] = op.ttl * 60
                puts.setdefault(scope, []).append(item)
        for (user_id, agent_id), keys in deletes.items():
            for c in range(0, len(keys), MAX_BATCH_ITEMS):
                wire.append(
                    MOp.forget_all(
                        user_id=user_id, agent_id=agent_id, keys=keys[c : c + MAX_BATCH_ITEMS]
                    )
                )
        for (user_id, agent_id), items in puts.items():
            for c in range(0, len(items), MAX_BATCH_ITEMS):
                wire.append(
                    MOp.remember_many(
                        items[c : c + MAX_BATCH_ITEMS], user_id=user_id, agent_id=agent_id
                    )
                )
        return wire, readers

    # -- reading results (pure) --------------------------------------------------------

    def _item(self, memory: Memory, cls: type[Item] = Item, **extra: Any) -> Item:
        ns = self._namespace(memory.user_id, memory.agent_id)
        return cls(
            value=dict(memory.metadata),
            key=memory.key or memory.id,
            namespace=ns if ns is not None else (),
            created_at=memory.created_at,
            updated_at=memory.updated_at,
            **extra,
        )

    def _read(self, ops: list[Op], readers: list[Any], results: list[Any]) -> list[Result]:
        out: list[Result] = []
        for op, reader in zip(ops, readers, strict=True):
            if isinstance(op, PutOp):
                out.append(None)
            elif isinstance(op, ListNamespacesOp):
                out.append(self._list_namespaces(op, self._namespaces(results[reader[1]])))
            elif isinstance(op, GetOp):
                _, lo, hi = reader
                found = [m for page, _ in results[lo:hi] for m in page if m.key == op.key]
                out.append(self._item(found[0]) if found else None)
            elif reader[0] == "empty":
                out.append([])
            else:
                _, lo, hi = reader
                out.append(self._search_result(op, results[lo:hi]))
        return out

    @staticmethod
    def _matched(results: list[Any]) -> list[tuple[float | None, Memory]]:
        """The recall results among ``results``, best first (``index=False`` items left out)."""
        rows = [
            (r.score, r.memory)
            for result in results
            if not isinstance(result, tuple)
            for r in result
            if r.memory.content != _UNINDEXED
        ]
        rows.sort(key=lambda r: -(r[0] or 0.0))
        return rows

    def _search_result(self, op: SearchOp, results: list[Any]) -> list[SearchItem]:
        listed: list[tuple[float | None, Memory]] = [
            (None, m) for result in results if isinstance(result, tuple) for m in result[0]
        ]
        # In creation order (the lists of several users merged by it; a sort keeps ties).
        listed.sort(key=lambda r: r[1].created_at)
        rows = listed
        if op.query and op.query.strip():
            matched = self._matched(results)
            seen = {m.id for _, m in matched}
            rows = matched + [(None, m) for _, m in listed if m.id not in seen]
        window = rows[op.offset : op.offset + op.limit]
        return [self._item(m, SearchItem, score=score) for score, m in window]  # type: ignore[misc]

    def _list_namespaces(
        self, op: ListNamespacesOp, namespaces: list[tuple[str, ...]]
    ) -> list[tuple[str, ...]]:
        found = [ns for ns in namespaces if all(_matches(c, ns) for c in op.match_conditions or ())]
        if op.max_depth is not None:
            found = list({ns[: op.max_depth] for ns in found})
        return sorted(set(found))[op.offset : op.offset + op.limit]

    def _namespaces(self, scopes: Iterable[Any]) -> list[tuple[str, ...]]:
        out = []
        for s in scopes:
            ns = self._namespace(s.user_id, s.agent_id)
            if ns is not None:
                out.append(ns)
        return out

    # -- I/O ---------------------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        self._validate(ops)
        client = self._clients.sync
        users: list[str] = []
        if self._users_to_scan(ops):
            users = _users(client.list_scopes(agent_prefix=self.agent_id))
        wire, readers = self._plan(ops, users)
        results: list[Any] = []
        for c in range(0, len(wire), MAX_BATCH_ITEMS):
            results.extend(client.batch(wire[c : c + MAX_BATCH_ITEMS]))
        self._more_pages_sync(ops, wire, readers, results)
        return self._read(ops, readers, results)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        self._validate(ops)
        client = self._clients.async_
        users: list[str] = []
        if self._users_to_scan(ops):
            users = _users(await client.list_scopes(agent_prefix=self.agent_id))
        wire, readers = self._plan(ops, users)
        results: list[Any] = []
        for c in range(0, len(wire), MAX_BATCH_ITEMS):
            results.extend(await client.batch(wire[c : c + MAX_BATCH_ITEMS]))
        await self._more_pages_async(ops, wire, readers, results)
        return self._read(ops, readers, results)

    @staticmethod
    def _short_pages(
        ops: list[Op], wire: list[dict[str, Any]], readers: list[Any], results: list[Any]
    ) -> list[int]:
        """List pages of searches that need more items than one page (offset+limit > 100)."""
        todo = []
        for op, reader in zip(ops, readers, strict=True):
            if isinstance(op, SearchOp) and reader[0] == "search":
                if op.query and op.query.strip():
                    matched = MemLayerStore._matched(results[reader[1] : reader[2]])
                    if len(matched) >= op.offset + op.limit:
                        continue  # the matches fill the page: no item is listed on it
                for w in range(reader[1], reader[2]):
                    page, cursor = results[w] if isinstance(results[w], tuple) else ([], None)
                    if cursor and len(page) < op.offset + op.limit:
                        todo.append(w)
        return todo

    def _more_pages_sync(
        self, ops: list[Op], wire: list[dict[str, Any]], readers: list[Any], results: list[Any]
    ) -> None:
        for w in self._short_pages(ops, wire, readers, results):
            op = cast(
                SearchOp,
                next(
                    o
                    for o, r in zip(ops, readers, strict=True)
                    if r[0] == "search" and r[1] <= w < r[2]
                ),
            )
            page, cursor = results[w]
            page = list(page)
            while cursor and len(page) < op.offset + op.limit:
                more, cursor = self._clients.sync.batch([{**wire[w], "cursor": cursor}])[0]
                page.extend(more)
            results[w] = (page, cursor)

    async def _more_pages_async(
        self, ops: list[Op], wire: list[dict[str, Any]], readers: list[Any], results: list[Any]
    ) -> None:
        for w in self._short_pages(ops, wire, readers, results):
            op = cast(
                SearchOp,
                next(
                    o
                    for o, r in zip(ops, readers, strict=True)
                    if r[0] == "search" and r[1] <= w < r[2]
                ),
            )
            page, cursor = results[w]
            page = list(page)
            while cursor and len(page) < op.offset + op.limit:
                more, cursor = (await self._clients.async_.batch([{**wire[w], "cursor": cursor}]))[
                    0
                ]
                page.extend(more)
            results[w] = (page, cursor)

    def close(self) -> None:
        """Close the clients this store built."""
        self._clients.close()

    async def aclose(self) -> None:
        await self._clients.aclose()
