"""The memory operations of the contract, on an open connection of either backend.

Each function takes a validated request model and the authenticated account, and returns
the JSON-ready result. Scoping is enforced here and only here: every statement is
restricted to ``account_id``, and list/recall/forget-all to the caller's ``user_id`` (and
``agent_id``/``session_id`` when given). Memory ids are global, so get/update/forget of an
id belonging to another account answer 404, exactly as an id that never existed.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta
from typing import Any

from . import cursors
from . import search as search_module
from .backend import dialect_of
from .db import MEMORY_COLUMNS
from .errors import ApiError, validation_error
from .explain import explain
from .filters import agent_prefix_condition, agent_prefix_params, scope_condition
from .keys import Account
from .schemas import (
    EncodedMetadata,
    ForgetAllQuery,
    ListQuery,
    RecallRequest,
    RememberItem,
    RememberManyRequest,
    RememberRequest,
    UpdateRequest,
    parse_iso,
)
from .scoring import relevance

__all__ = [
    "FORGET_STEP",
    "MemoryInserts",
    "Narrowed",
    "dump_metadata",
    "expiry",
    "forget",
    "forget_all",
    "forget_step",
    "get",
    "indexed_text",
    "iso",
    "list_page",
    "memory_json",
    "next_midnight",
    "recall",
    "remember",
    "remember_many",
    "scopes",
    "sweep_expired",
    "touch",
    "update",
    "usage",
]


#: Most bytes of memories one list page holds (see :func:`list_page`).
PAGE_BYTES = 1024 * 1024
#: Most memories one transaction of ``forget_all`` deletes. Deleting a memory also deletes
#: its full-text and vector rows and updates counters (triggers), so a transaction's time
#: grows with how many it deletes: this many keeps the write lock for milliseconds.
FORGET_STEP = 250


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def next_midnight(moment: datetime) -> datetime:
    return (moment + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


def memory_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "content": row["content"],
        "user_id": row["user_id"],
        "agent_id": row["agent_id"],
        "session_id": row["session_id"],
        "key": row["key"],
        "metadata": json.loads(row["metadata"]),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "expires_at": row["expires_at"],
        "ttl": row["ttl"],
    }


def expiry(ttl: float | None, expires_at: str | None, now: datetime) -> str | None:
    """When a memory written at ``now`` expires: ``expires_at`` as given, or ``now + ttl``."""
    if ttl is not None:
        return iso(now + timedelta(seconds=ttl))
    return expires_at


def sweep_expired(conn: Any, account: Account, now: str) -> int:
    """Delete the account's memories that expired by ``now``; every request starts with it."""
    deleted: int = conn.execute(
        "DELETE FROM memories WHERE account_id = ? AND expires_at IS NOT NULL AND expires_at <= ?",
        (account.id, now),
    ).rowcount
    return deleted


def touch(conn: Any, memories: list[dict[str, Any]], now: datetime) -> None:
    """Restart the expiry clock of ``memories`` that have a ``ttl`` (``refresh_ttl`` reads)."""
    for memory in memories:
        if memory.get("ttl") is not None:
            memory["expires_at"] = iso(now + timedelta(seconds=memory["ttl"]))
            conn.execute(
                "UPDATE memories SET expires_at = ? WHERE id = ?",
                (memory["expires_at"], memory["id"]),
            )


def dump_metadata(metadata: dict[str, Any] | None) -> str:
    """Metadata as the ``metadata`` column stores it (compact JSON; ``None`` is ``{}``)."""
    if isinstance(metadata, EncodedMetadata):
        return metadata.encoded
    return json.dumps(metadata or {}, ensure_ascii=False, separators=(",", ":"))


def new_memory_id() -> str:
    """A new memory's id: ``mem_`` and 32 hex digits, the first 12 the time in milliseconds
    and the other 20 random (80 bits).

    Ids that grow with time go in at the end of the id index, on both databases. Random ones
    (128 bits, as ``uuid4().hex`` gave) went in all over it: each memory of a batch of 100
    dirtied a page of its own, and writing those pages out was a large part of the batch's
    COMMIT. The id means what it did (unique, opaque, never used again); the milliseconds
    say no more than the memory's ``created_at``.
    """
    return f"mem_{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"


def indexed_text(
    conn: Any, content: str, scope: tuple[int, str, str]
) -> tuple[str, str, str, list[Any]]:
    """What a memory's INSERT or UPDATE adds for the database's full-text index:
    ``(", column", ", placeholder", ", column = placeholder", [value])``, or nothing on
    SQLite, whose triggers index the text (``backend.Dialect.text_column``)."""
    found = dialect_of(conn).text_column(content, scope)
    if found is None:
        return "", "", "", []
    column, mark, value = found
    return f", {column}", f", {mark}", f", {column} = {mark}", [value]


def _not_found(memory_id: str) -> ApiError:
    return ApiError(404, "not_found", f"memory {memory_id} not found")


def _load(conn: Any, account: Account, memory_id: str, now: str) -> Any:
    row: Any = conn.execute(
        f"SELECT {MEMORY_COLUMNS} FROM memories"
        " WHERE id = ? AND account_id = ? AND (expires_at IS NULL OR expires_at > ?)",
        (memory_id, account.id, now),
    ).fetchone()
    if row is None:
        raise _not_found(memory_id)
    return row


def _by_keys(
    conn: Any, account: Account, user_id: str, agent_id: str, keys: list[str]
) -> dict[str, Any]:
    """The scope's memories of ``keys`` (at most ``MAX_BATCH_ITEMS``), by key: one statement
    for a whole batch of puts instead of one per item."""
    if not keys:
        return {}
    marks = ",".join("?" * len(keys))
    rows = conn.execute(
        f"SELECT {MEMORY_COLUMNS} FROM memories WHERE account_id = ? AND user_id = ?"
        f" AND agent_id = ? AND key IN ({marks})",
        (account.id, user_id, agent_id, *keys),
    )
    return {row["key"]: row for row in rows}


def _by_contents(
    conn: Any, account: Account, user_id: str, agent_id: str, contents: list[str]
) -> dict[str, Any]:
    """For each of ``contents``, the newest memory of the scope without a key holding
    exactly it, if any: one statement for a batch (``memories_text`` index: the first 64
    characters narrow it to a few rows)."""
    if not contents:
        return {}
    starts = list({content[:64] for content in contents})
    wanted = set(contents)
    rows = conn.execute(
        f"SELECT {MEMORY_COLUMNS} FROM memories WHERE account_id = ? AND user_id = ? AND agent_id = ?"
        f" AND key IS NULL AND substr(content, 1, 64) IN ({','.join('?' * len(starts))})"
        " ORDER BY rowid",
        (account.id, user_id, agent_id, *starts),
    )
    # In rowid order: the newest holding a content is the last one kept.
    return {row["content"]: row for row in rows if row["content"] in wanted}


class MemoryInserts:
    """New memories of one ``_write`` (or of an import, ``transfer_store``), inserted a
    statement per up to :data:`_ROWS_PER_INSERT` rows instead of one each: a batch of 100
    puts paid as much for its 100 statements (binding, stepping, reading ``RETURNING`` back
    into Python) as for the rows.

    Each new memory takes its place in ``written`` (rowids in item order) at once, and its
    rowid when its statement runs (:meth:`flush`). The rows go in in item order, so they get
    the rowids they got one statement at a time; the triggers run per row as before.
    """

    def __init__(self, conn: Any, written: list[int]) -> None:
        self.conn = conn
        self.written = written
        self.columns = ""
        self.marks = ""
        self.rows: list[tuple[Any, ...]] = []
        self.slots: list[int] = []

    def add(self, columns: str, marks: str, row: tuple[Any, ...]) -> None:
        if self.rows and (columns, marks) != (self.columns, self.marks):
            self.flush()  # never happens: the indexed-text columns are the dialect's own
        self.columns, self.marks = columns, marks
        self.slots.append(len(self.written))
        self.written.append(0)  # its rowid, once inserted
        self.rows.append(row)
        if len(self.rows) == _ROWS_PER_INSERT:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        one = f"(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?{self.marks})"
        found = self.conn.execute(
            "INSERT INTO memories (id, account_id, user_id, agent_id, session_id, key, content,"
            f" metadata, created_at, updated_at, expires_at, ttl{self.columns})"
            f" VALUES {', '.join([one] * len(self.rows))} RETURNING id, rowid",
            [value for row in self.rows for value in row],
        ).fetchall()
        # By id: the order of RETURNING rows is not promised.
        rowids = {memory_id: rowid for memory_id, rowid in found}
        for slot, row in zip(self.slots, self.rows, strict=True):
            self.written[slot] = int(rowids[row[0]])
        self.rows, self.slots = [], []


#: Rows per INSERT of :class:`MemoryInserts`: 13 values a row stays under the 999 variables of
#: older SQLite builds.
_ROWS_PER_INSERT = 64


def _write(
    conn: Any,
    account: Account,
    user_id: str,
    agent_id: str,
    items: list[RememberItem],
    session_id: str | None,
    now: str,
    field_prefix: str,
    embeddings: Any = None,
) -> list[tuple[dict[str, Any], bool]]:
    """Store ``items`` in one scope; ``(memory, created)`` each. Checks keys and the limit first.

    An item replaces the memory of its ``key``; without a key (and unless it says
    ``deduplicate: false``) it refreshes the memory of the scope that holds the same content,
    so saying a thing twice never spends a second memory. Items of one request that repeat a
    content are one memory too.

    With ``embeddings`` (the server has an embedder) each memory's vector is stored with it.
    """
    existing: list[Any] = []
    by_key = _by_keys(
        conn, account, user_id, agent_id, list({i.key for i in items if i.key is not None})
    )
    by_content = _by_contents(
        conn,
        account,
        user_id,
        agent_id,
        list({i.content for i in items if i.key is None and i.deduplicate}),
    )
    seen: dict[str, int] = {}
    first_of: dict[str, int] = {}  # content -> index of the first new item holding it
    repeats: dict[int, int] = {}  # item index -> earlier item it refreshes
    for i, item in enumerate(items):
        if item.key is not None:
            if item.key in seen:
                where = f"{field_prefix}[{i}].key" if field_prefix else "key"
                raise validation_error(
                    f"{where}: key {item.key!r} is also used by item {seen[item.key]}", where
                )
            seen[item.key] = i
            existing.append(by_key.get(item.key))
        elif item.deduplicate:
            row = by_content.get(item.content)
            if row is None and item.content in first_of:
                repeats[i] = first_of[item.content]
            elif row is None:
                first_of[item.content] = i
            existing.append(row)
        else:
            existing.append(None)
    new = sum(1 for i, row in enumerate(existing) if row is None and i not in repeats)
    if account.memory_limit is not None and new:
        stored = conn.execute(
            "SELECT memory_count FROM accounts WHERE id = ?", (account.id,)
        ).fetchone()[0]
        if stored + new > account.memory_limit:
            raise ApiError(
                403,
                "memory_limit_reached",
                f"storing {new} more memories would exceed the plan's limit of {account.memory_limit} "
                f"({stored} stored); nothing was stored. Forget memories you no longer need "
                "(DELETE /v1/memories/{id} or forget_all), or move to a larger plan",
            )
    moment = parse_iso(now)
    scope = (account.id, user_id, agent_id)
    out: list[tuple[dict[str, Any], bool]] = []
    written: list[int] = []
    inserts = MemoryInserts(conn, written)
    for i, (item, row) in enumerate(zip(items, existing, strict=True)):
        session = item.session_id if item.session_id is not None else session_id
        metadata = dump_metadata(item.metadata)
        expires = expiry(item.ttl, item.expires_at, moment)
        if i in repeats:
            inserts.flush()  # the memory it refreshes may be one of them
            row = conn.execute(
                f"SELECT {MEMORY_COLUMNS} FROM memories WHERE id = ?",
                (out[repeats[i]][0]["id"],),
            ).fetchone()
        columns, marks, sets, values = indexed_text(conn, item.content, scope)
        if row is None:
            memory_id = new_memory_id()
            inserts.add(
                columns,
                marks,
                (
                    memory_id,
                    account.id,
                    user_id,
                    agent_id,
                    session,
                    item.key,
                    item.content,
                    metadata,
                    now,
                    now,
                    expires,
                    item.ttl,
                    *values,
                ),
            )
            memory = {
                "id": memory_id,
                "content": item.content,
                "user_id": user_id,
                "agent_id": agent_id,
                "session_id": session,
                "key": item.key,
                # What was just encoded, without decoding it again: a validated JSON object.
                "metadata": item.metadata if item.metadata is not None else {},
                "created_at": now,
                "updated_at": now,
                "expires_at": expires,
                "ttl": item.ttl,
            }
            out.append((memory, True))
        else:
            conn.execute(
                "UPDATE memories SET content = ?, metadata = ?, session_id = ?, updated_at = ?,"
                f" expires_at = ?, ttl = ?{sets} WHERE rowid = ?",
                (item.content, metadata, session, now, expires, item.ttl, *values, row["rowid"]),
            )
            written.append(row["rowid"])
            memory = memory_json(row)
            memory.update(
                content=item.content,
                metadata=item.metadata if item.metadata is not None else {},
                session_id=session,
                updated_at=now,
                expires_at=expires,
                ttl=item.ttl,
            )
            out.append((memory, False))
    inserts.flush()
    if embeddings is not None:
        # A replacement with the same text keeps its vector (if it has one of this model). A
        # text without a letter or digit has no meaning to embed: it is found by listing only
        # (the LangGraph store stores its index=False items so).
        # One vector per memory: items of one request that repeat a content share a rowid.
        todo = list(
            {
                rowid: (rowid, item.content)
                for rowid, item, row in zip(written, items, existing, strict=True)
                if search_module.query_terms(item.content)
                and (
                    row is None
                    or row["content"] != item.content
                    or not embeddings.index.has_vector(conn, rowid)
                )
            }.values()
        )
        if todo:
            vectors = embeddings.documents([text for _, text in todo])
            embeddings.index.put(conn, [(rowid, scope) for rowid, _ in todo], vectors)
    return out


def remember(
    conn: Any,
    account: Account,
    req: RememberRequest,
    now: str,
    embeddings: Any = None,
) -> tuple[int, dict[str, Any]]:
    """Store one memory: ``(201, memory)``, or ``(200, memory)`` when its key replaced one."""
    item = RememberItem.model_construct(
        content=req.content,
        metadata=req.metadata,
        key=req.key,
        session_id=req.session_id,
        ttl=req.ttl,
        expires_at=req.expires_at,
        deduplicate=req.deduplicate,
    )
    [(memory, created)] = _write(
        conn, account, req.user_id, req.agent_id, [item], None, now, "", embeddings
    )
    return (201 if created else 200), memory


def remember_many(
    conn: Any,
    account: Account,
    req: RememberManyRequest,
    now: str,
    embeddings: Any = None,
) -> list[dict[str, Any]]:
    pairs = _write(
        conn,
        account,
        req.user_id,
        req.agent_id,
        req.items,
        req.session_id,
        now,
        "items",
        embeddings,
    )
    return [memory for memory, _ in pairs]


#: What :func:`_narrowed` found for ``(user_id, agent_prefix)``, kept for the reads of one
#: request until it writes (see ``operations.batch``): a store search is a recall and a
#: list of the same prefix, which would read the same scope sizes twice.
Narrowed = dict[tuple[str, str], tuple[str | None, str | None]]


def _narrowed(
    conn: Any,
    account: Account,
    user_id: str,
    agent_id: str | None,
    agent_prefix: str | None,
    known: Narrowed | None = None,
) -> tuple[str | None, str | None]:
    """``(agent_id, agent_prefix)`` to read by: an ``agent_prefix`` that covers one agent
    holding memories is that agent, read by the scope's own index (and, in a recall, its
    own statistics and full-text scope word) instead of a range of the user's agents."""
    if agent_prefix is None or agent_id is not None:
        return agent_id, agent_prefix
    if known is not None and (user_id, agent_prefix) in known:
        return known[(user_id, agent_prefix)]
    found: tuple[str | None, str | None] = (None, agent_prefix)
    covered = scopes(conn, account, user_id, agent_prefix)
    if len(covered) == 1:
        found = covered[0]["agent_id"], None
    if known is not None:
        known[(user_id, agent_prefix)] = found
    return found


def recall(
    conn: Any,
    account: Account,
    req: RecallRequest,
    now: str,
    embeddings: Any = None,
    narrowed: Narrowed | None = None,
) -> list[dict[str, Any]]:
    """By words alone, or by words and meaning when the server has an embedder (``hybrid``).

    An ``agent_prefix`` that covers one agent holding memories is searched as that agent
    (its own statistics and full-text scope word, far fewer postings to walk than the
    user's); one that covers several is searched as all the user's agents, narrowed to them.
    """
    agent_id, agent_prefix = _narrowed(
        conn, account, req.user_id, req.agent_id, req.agent_prefix, narrowed
    )
    scope: dict[str, Any] = {
        "user_id": req.user_id,
        "agent_id": agent_id,
        "agent_prefix": agent_prefix,
        "session_id": req.session_id,
        "filters": dialect_of(conn).compile_filters(req.filters),
        "limit": req.limit,
        "offset": req.offset,
        "now": now,
    }
    if embeddings is None:
        hits = search_module.search(conn, account.id, req.query, **scope)
        results = [{"memory": memory_json(row), "score": relevance(raw)} for row, raw in hits]
    else:
        from . import hybrid  # imports numpy: only with an embedder

        hits = hybrid.search(
            conn,
            account.id,
            req.query,
            embeddings.query_future(req.query),
            embeddings.index,
            **scope,
        )
        # Already a relevance in (0, 1]: hybrid.py documents it.
        results = [{"memory": memory_json(row), "score": score} for row, score in hits]
    if req.explain:
        reasons = explain(conn, req.query, [row for row, _ in hits])
        for result, why in zip(results, reasons, strict=True):
            result["why"] = why
    return results


def get(conn: Any, account: Account, memory_id: str, now: str) -> dict[str, Any]:
    return memory_json(_load(conn, account, memory_id, now))


def update(
    conn: Any,
    account: Account,
    memory_id: str,
    req: UpdateRequest,
    now: str,
    embeddings: Any = None,
) -> dict[str, Any]:
    row = _load(conn, account, memory_id, now)
    memory = memory_json(row)
    if req.content is not None:
        memory["content"] = req.content
    if req.metadata is not None:
        memory["metadata"] = req.metadata
    memory["updated_at"] = now
    scope = (account.id, row["user_id"], row["agent_id"])
    _, _, sets, values = indexed_text(conn, memory["content"], scope)
    conn.execute(
        f"UPDATE memories SET content = ?, metadata = ?, updated_at = ?{sets} WHERE rowid = ?",
        (memory["content"], dump_metadata(memory["metadata"]), now, *values, row["rowid"]),
    )
    if (
        embeddings is not None
        and req.content is not None
        and search_module.query_terms(req.content)
    ):
        vectors = embeddings.documents([req.content])
        embeddings.index.put(conn, [(row["rowid"], scope)], vectors)
    return memory


def forget(conn: Any, account: Account, memory_id: str) -> int:
    deleted: int = conn.execute(
        "DELETE FROM memories WHERE id = ? AND account_id = ?", (memory_id, account.id)
    ).rowcount
    if not deleted:
        raise _not_found(memory_id)
    return deleted


def forget_step(conn: Any, account: Account, q: ForgetAllQuery, limit: int | None = None) -> int:
    """Delete at most ``limit`` memories of the scope; how many were deleted.

    ``DELETE /v1/memories`` calls it in its own short transactions until it deletes fewer
    than ``limit``, so a scope of any size never holds the write lock for long (see
    ``service.Unfinished``). Every memory goes with its rows elsewhere (triggers), so the
    database is consistent after each step.
    """
    where = scope_condition(account.id, q.user_id, q.agent_id, q.session_id, q.keys)
    deleted: int = conn.execute(
        "DELETE FROM memories WHERE rowid IN"
        f" (SELECT m.rowid FROM memories AS m WHERE {where.sql} LIMIT ?)",
        [*where.params, FORGET_STEP if limit is None else limit],
    ).rowcount
    return deleted


def forget_all(conn: Any, account: Account, q: ForgetAllQuery) -> int:
    """``forget_all`` inside a batch: a batch is one transaction, so it cannot be split
    into steps; a scope of more than :data:`FORGET_STEP` memories is refused (422
    ``query_too_expensive``, nothing deleted) rather than held under the lock."""
    where = scope_condition(account.id, q.user_id, q.agent_id, q.session_id, q.keys)
    found = conn.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM memories AS m WHERE {where.sql} LIMIT ?) AS found",
        [*where.params, FORGET_STEP + 1],
    ).fetchone()[0]
    found = int(found)
    if found > FORGET_STEP:
        raise ApiError(
            422,
            "query_too_expensive",
            f"forget_all in a batch deletes at most {FORGET_STEP} memories and this scope "
            "holds more; send it alone (DELETE /v1/memories), which deletes any number",
        )
    return forget_step(conn, account, q, found)


def _listing(account: Account, q: ListQuery) -> bytes:
    """What a cursor is bound to: the account and every condition of the listing."""
    scope = [account.id, q.user_id, q.agent_id, q.session_id, sorted(q.keys or []), q.filters]
    if q.agent_prefix is not None:  # appended: cursors of listings without one stay valid
        scope.append(["agent_prefix", q.agent_prefix])
    return json.dumps(scope, sort_keys=True, ensure_ascii=False).encode()


def _cursor_secret(conn: Any) -> bytes:
    row = conn.execute("SELECT value FROM server_secrets WHERE name = 'cursor'").fetchone()
    return bytes(row[0])


def list_page(
    conn: Any,
    account: Account,
    q: ListQuery,
    now: str,
    page_bytes: int = PAGE_BYTES,
    narrowed: Narrowed | None = None,
) -> dict[str, Any]:
    """One page in creation order of the memories not expired at ``now``; ``next_cursor``
    is ``None`` on the last page.

    A page holds up to ``q.limit`` memories and stops early (always after at least one)
    once it holds ``page_bytes`` of them (``PAGE_BYTES``, less if the server's answer cap
    is smaller), so a page of the largest memories stays a
    bounded answer. The cursor is opaque and only valid for the same listing
    (:mod:`.cursors`).
    """
    agent_id, agent_prefix = _narrowed(
        conn, account, q.user_id, q.agent_id, q.agent_prefix, narrowed
    )
    where = scope_condition(
        account.id,
        q.user_id,
        agent_id,
        q.session_id,
        q.keys,
        dialect_of(conn).compile_filters(q.filters),
        live_at=now,
        agent_prefix=agent_prefix,
    )
    sql, params = where.sql, where.params
    if q.cursor is not None:
        sql += " AND m.rowid > ?"
        params.append(
            cursors.decode(_cursor_secret(conn), _listing(account, q), q.cursor, "cursor")
        )
    rows = conn.execute(
        f"SELECT {MEMORY_COLUMNS} FROM memories AS m WHERE {sql} ORDER BY m.rowid LIMIT ?",
        [*params, q.limit + 1],
    ).fetchall()
    memories: list[dict[str, Any]] = []
    size = 0
    for row in rows[: q.limit]:
        size += len(row["content"].encode()) + len(row["metadata"].encode()) + 512
        if memories and size > page_bytes:
            break
        memories.append(memory_json(row))
    more = len(rows) > len(memories)
    last = rows[len(memories) - 1]["rowid"] if memories else 0
    return {
        "memories": memories,
        "next_cursor": cursors.encode(_cursor_secret(conn), _listing(account, q), last)
        if more
        else None,
    }


def scopes(
    conn: Any,
    account: Account,
    user_id: str | None,
    agent_prefix: str | None = None,
) -> list[dict[str, Any]]:
    sql = (
        "SELECT user_id, agent_id, memories FROM scope_sizes WHERE account_id = ? AND memories > 0"
    )
    params: list[Any] = [account.id]
    if user_id is not None:
        sql += " AND user_id = ?"
        params.append(user_id)
    if agent_prefix is not None:
        sql += " AND " + agent_prefix_condition("agent_id")
        params.extend(agent_prefix_params(agent_prefix))
    sql += " ORDER BY user_id, agent_id"
    return [
        {"user_id": r["user_id"], "agent_id": r["agent_id"], "memories": r["memories"]}
        for r in conn.execute(sql, params)
    ]


def usage(conn: Any, account: Account, requests_today: int, now: datetime) -> dict[str, Any]:
    stored = conn.execute(
        "SELECT memory_count FROM accounts WHERE id = ?", (account.id,)
    ).fetchone()[0]
    return {
        "plan": account.plan,
        "memories_stored": stored,
        "memories_limit": account.memory_limit,
        "requests_today": requests_today,
        "requests_limit": account.request_limit,
        "resets_at": next_midnight(now).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
