"""Every database statement of ``memlayer export`` and ``memlayer import``, and nothing else.

:mod:`.transfer` owns the dump format and its rules; this module only reads and writes rows,
as plain dicts whose fields are the dump's (see ``docs/export-format.md``). Another storage
backend implements these same functions on its own tables, and the format stays one.

Reads run in the caller's read transaction (one snapshot for a whole export); writes in the
caller's write transaction (one for a whole import, so an import is all or nothing).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from .store import MemoryInserts, dump_metadata, indexed_text

__all__ = [
    "BATCH",
    "counts",
    "find_account",
    "find_key",
    "find_memories",
    "find_usage",
    "insert_account",
    "insert_key",
    "insert_memories",
    "read_accounts",
    "read_keys",
    "read_memories",
    "read_usage",
    "write_usage",
]

#: Most memories :func:`find_memories` looks up at once: SQLite's oldest limit is 999
#: parameters a statement.
BATCH = 500

_LIVE = "expires_at IS NULL OR expires_at > ?"

_MEMORY_FIELDS = (
    "id, account_id, user_id, agent_id, session_id, key, content, metadata,"
    " created_at, updated_at, expires_at, ttl"
)


def _memory(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "account": row["account_id"],
        "user_id": row["user_id"],
        "agent_id": row["agent_id"],
        "session_id": row["session_id"],
        "key": row["key"],
        "content": row["content"],
        "metadata": json.loads(row["metadata"]),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "expires_at": row["expires_at"],
        "ttl": row["ttl"],
    }


def _account(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "plan": row["plan"],
        "memory_limit": row["memory_limit"],
        "request_limit": row["request_limit"],
        "suspended": bool(row["suspended"]),
        "created_at": row["created_at"],
    }


def _key(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "account": row["account_id"],
        "name": row["name"],
        "lookup": row["lookup"],
        "salt": bytes(row["salt"]).hex(),
        "hash": bytes(row["hash"]).hex(),
        "hint": row["hint"],
        "created_at": row["created_at"],
        "revoked_at": row["revoked_at"],
    }


# -- export: reads ----------------------------------------------------------------------


def counts(conn: Any, now: str, with_keys: bool) -> dict[str, int]:
    """How many records of each type an export at ``now`` writes."""

    def one(sql: str, *params: Any) -> int:
        return int(conn.execute(sql, params).fetchone()[0])

    found = {}
    if with_keys:
        found["accounts"] = one("SELECT count(*) FROM accounts")
        found["keys"] = one("SELECT count(*) FROM api_keys")
        found["usage"] = one("SELECT count(*) FROM request_counts")
    found["memories"] = one(f"SELECT count(*) FROM memories WHERE {_LIVE}", now)
    return found


def read_accounts(conn: Any) -> Iterator[dict[str, Any]]:
    sql = "SELECT id, plan, memory_limit, request_limit, suspended, created_at FROM accounts"
    for row in conn.execute(sql + " ORDER BY id"):
        yield _account(row)


def read_keys(conn: Any) -> Iterator[dict[str, Any]]:
    sql = (
        "SELECT id, account_id, name, lookup, salt, hash, hint, created_at, revoked_at"
        " FROM api_keys ORDER BY account_id, created_at, id"
    )
    for row in conn.execute(sql):
        yield _key(row)


def read_usage(conn: Any) -> Iterator[dict[str, Any]]:
    sql = "SELECT account_id, day, requests FROM request_counts ORDER BY account_id, day"
    for row in conn.execute(sql):
        yield {"account": row["account_id"], "day": row["day"], "requests": row["requests"]}


def read_memories(conn: Any, now: str) -> Iterator[dict[str, Any]]:
    """The memories not expired at ``now``, in the order they were stored."""
    sql = f"SELECT {_MEMORY_FIELDS} FROM memories WHERE {_LIVE} ORDER BY rowid"
    for row in conn.execute(sql, (now,)):
        yield _memory(row)


# -- import: lookups and writes ---------------------------------------------------------


def find_account(conn: Any, account_id: int) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT id, plan, memory_limit, request_limit, suspended, created_at FROM accounts"
        " WHERE id = ?",
        (account_id,),
    ).fetchone()
    return None if row is None else _account(row)


def insert_account(conn: Any, account: dict[str, Any]) -> None:
    conn.execute(
        "INSERT INTO accounts (id, plan, memory_limit, request_limit, suspended, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            account["id"],
            account["plan"],
            account["memory_limit"],
            account["request_limit"],
            int(account["suspended"]),
            account["created_at"],
        ),
    )


def find_key(conn: Any, key_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT id, account_id, name, lookup, salt, hash, hint, created_at, revoked_at"
        " FROM api_keys WHERE id = ?",
        (key_id,),
    ).fetchone()
    return None if row is None else _key(row)


def insert_key(conn: Any, key: dict[str, Any]) -> None:
    conn.execute(
        "INSERT INTO api_keys (id, account_id, name, lookup, salt, hash, hint, created_at, revoked_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            key["id"],
            key["account"],
            key["name"],
            key["lookup"],
            bytes.fromhex(key["salt"]),
            bytes.fromhex(key["hash"]),
            key["hint"],
            key["created_at"],
            key["revoked_at"],
        ),
    )


def find_usage(conn: Any, account_id: int, day: str) -> int | None:
    row = conn.execute(
        "SELECT requests FROM request_counts WHERE account_id = ? AND day = ?", (account_id, day)
    ).fetchone()
    return None if row is None else int(row[0])


def write_usage(conn: Any, account_id: int, day: str, requests: int) -> None:
    """Set a day's request count (the importer only ever raises it)."""
    conn.execute(
        "INSERT INTO request_counts (account_id, day, requests) VALUES (?, ?, ?)"
        " ON CONFLICT (account_id, day) DO UPDATE SET requests = excluded.requests",
        (account_id, day, requests),
    )


def find_memories(
    conn: Any, memories: Sequence[dict[str, Any]]
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """What the database holds for a batch of dumped memories (ids all different).

    Returns ``(stored, key_holders)``: the memories stored under the batch's ids, by id, and
    for each dumped memory with a ``key`` that another memory of its scope already holds,
    that memory's id. The ids are looked up in one statement (a batch is at most
    :data:`BATCH` memories: SQLite allows 999 parameters); keys, which bulk data seldom
    has, one memory at a time.
    """
    if len(memories) > BATCH:
        raise ValueError(f"at most {BATCH} memories a batch ({len(memories)} given)")
    stored: dict[str, dict[str, Any]] = {}
    if memories:
        marks = ", ".join("?" * len(memories))
        sql = f"SELECT {_MEMORY_FIELDS} FROM memories WHERE id IN ({marks})"
        for row in conn.execute(sql, [m["id"] for m in memories]):
            stored[row["id"]] = _memory(row)
    holders: dict[str, str] = {}
    for memory in memories:
        if memory["key"] is None:
            continue
        holder = conn.execute(
            "SELECT id FROM memories WHERE account_id = ? AND user_id = ? AND agent_id = ?"
            " AND key = ? AND id != ?",
            (memory["account"], memory["user_id"], memory["agent_id"], memory["key"], memory["id"]),
        ).fetchone()
        if holder is not None:
            holders[memory["id"]] = str(holder[0])
    return stored, holders


def insert_memories(conn: Any, memories: Sequence[dict[str, Any]]) -> None:
    """Store dumped memories as they were, in their order, many rows a statement
    (:class:`.store.MemoryInserts`, as a batch of puts is written).

    The triggers keep every count (``sqlite_schema.py``; on PostgreSQL once per statement, adding up
    its rows: ``postgres/schema.py`` migration 3), so fewer, larger statements also mean
    fewer updates of the same count rows. What the backend's full-text index needs is
    written beside each memory (:func:`.store.indexed_text`).
    """
    inserts = MemoryInserts(conn, [])
    for memory in memories:
        scope = (memory["account"], memory["user_id"], memory["agent_id"])
        columns, marks, _, values = indexed_text(conn, memory["content"], scope)
        inserts.add(
            columns,
            marks,
            (
                memory["id"],
                memory["account"],
                memory["user_id"],
                memory["agent_id"],
                memory["session_id"],
                memory["key"],
                memory["content"],
                dump_metadata(memory["metadata"]),
                memory["created_at"],
                memory["updated_at"],
                memory["expires_at"],
                memory["ttl"],
                *values,
            ),
        )
    inserts.flush()
