"""API keys and the accounts they open: creation, lookup, revocation, suspension.

A key is shown once, when it is created, and stored only as a salted SHA-256. To find a key's
row without storing the key, each row carries ``lookup``: the first 16 hex digits of the
key's SHA-256. The candidate rows' salted hashes are then compared with
``hmac.compare_digest``, so how long a check takes does not depend on how much of a guess
matched. (A single hash suffices: keys carry ~238 random bits, so there is nothing for a slow
password hash to protect against.)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass
from typing import Any

from .._constants import KEY_PATTERN, KEY_PREFIX
from .settings import Plan

__all__ = [
    "Account",
    "KeyInfo",
    "KeyNotFoundError",
    "add_key",
    "authenticate",
    "create_key",
    "find_key",
    "generate_key",
    "list_keys",
    "recheck",
    "revoke_key",
    "set_suspended",
]

_ALPHABET = string.ascii_letters + string.digits
_KEY_RANDOM_CHARS = 40


class KeyNotFoundError(LookupError):
    """No key with that id (or value) exists in this database."""


@dataclass(frozen=True)
class Account:
    """The account a request was authenticated as (and, when known, by which key)."""

    id: int
    plan: str
    memory_limit: int | None
    request_limit: int | None
    suspended: bool
    key_id: str | None = None


@dataclass(frozen=True)
class KeyInfo:
    """What ``memlayer keys list`` shows of a key: never the key itself."""

    id: str
    account_id: int
    name: str | None
    plan: str
    hint: str
    created_at: str
    revoked: bool
    suspended: bool

    @property
    def status(self) -> str:
        return "revoked" if self.revoked else "suspended" if self.suspended else "active"


def generate_key() -> str:
    return KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(_KEY_RANDOM_CHARS))


def _lookup(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _salted(salt: bytes, key: str) -> bytes:
    return hashlib.sha256(salt + key.encode()).digest()


def create_key(
    conn: Any, *, plan_name: str, plan: Plan, name: str | None, now: str
) -> tuple[str, str]:
    """Create an account on ``plan`` and its key, inside the caller's write transaction.

    Returns:
        ``(key, key_id)``: the key, to show once, and its id (``key_...``), to manage it.
    """
    account_id = conn.execute(
        "INSERT INTO accounts (plan, memory_limit, request_limit, created_at) VALUES (?, ?, ?, ?)"
        " RETURNING id",
        (plan_name, plan.memories, plan.requests_per_day, now),
    ).fetchall()[0][0]
    return add_key(conn, account_id=int(account_id), name=name, now=now)


def add_key(conn: Any, *, account_id: int, name: str | None, now: str) -> tuple[str, str]:
    """Create another key for an existing account, inside the caller's write transaction.

    The account's memories, plan and other keys stay as they are; ``memlayer mcp --embedded``
    uses it to give each run its own key to one lasting account.

    Returns:
        ``(key, key_id)``, as :func:`create_key`.
    """
    key = generate_key()
    key_id = "key_" + secrets.token_hex(8)
    salt = secrets.token_bytes(16)
    conn.execute(
        "INSERT INTO api_keys (id, account_id, name, lookup, salt, hash, hint, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            key_id,
            account_id,
            name,
            _lookup(key),
            salt,
            _salted(salt, key),
            key[: len(KEY_PREFIX) + 4] + "…",
            now,
        ),
    )
    return key, key_id


def _match(conn: Any, key: str) -> Any:
    found = None
    for row in conn.execute(
        "SELECT k.id, k.revoked_at, a.id AS account_id, a.plan, a.memory_limit, a.request_limit, a.suspended,"
        " k.salt, k.hash FROM api_keys k JOIN accounts a ON a.id = k.account_id WHERE k.lookup = ?",
        (_lookup(key),),
    ):
        # Every candidate is compared, so the time taken does not say which one matched.
        if hmac.compare_digest(_salted(row["salt"], key), row["hash"]):
            found = row
    return found


def authenticate(conn: Any, key: str) -> Account | None:
    """The account of a live (not revoked) key, or ``None``. The format is checked by the caller."""
    row = _match(conn, key)
    if row is None or row["revoked_at"] is not None:
        return None
    return Account(
        row["account_id"],
        row["plan"],
        row["memory_limit"],
        row["request_limit"],
        bool(row["suspended"]),
        row["id"],
    )


def recheck(conn: Any, account: Account, day: str) -> tuple[Account | None, int]:
    """``account`` as its key's rows say now, with its requests counted on ``day``: in one
    statement, inside the request's transaction.

    The account is ``None`` if the key was revoked (or deleted) since it was authenticated.
    This is what lets a process keep authenticated keys in memory (``Service.authenticate``):
    a key revoked or an account suspended by another process is refused at its next request
    all the same, in the read the quota needs anyway.
    """
    row = conn.execute(
        "SELECT k.revoked_at, a.plan, a.memory_limit, a.request_limit, a.suspended,"
        " (SELECT c.requests FROM request_counts c WHERE c.account_id = a.id AND c.day = ?)"
        " FROM api_keys k JOIN accounts a ON a.id = k.account_id"
        " WHERE k.id = ? AND a.id = ?",
        (day, account.key_id, account.id),
    ).fetchone()
    if row is None or row[0] is not None:
        return None, 0
    fresh = Account(account.id, row[1], row[2], row[3], bool(row[4]), account.key_id)
    return fresh, int(row[5] or 0)


def find_key(conn: Any, key_or_id: str) -> str:
    """Resolve a key id (``key_...``) or the key itself to the key id."""
    if KEY_PATTERN.fullmatch(key_or_id):
        row = _match(conn, key_or_id)
        if row is not None:
            return str(row["id"])
    elif conn.execute("SELECT 1 FROM api_keys WHERE id = ?", (key_or_id,)).fetchone():
        return key_or_id
    raise KeyNotFoundError(
        "no such key (give the key id shown by `memlayer keys list`, or the key)"
    )


def list_keys(conn: Any) -> list[KeyInfo]:
    rows = conn.execute(
        "SELECT k.id, k.account_id, k.name, a.plan, k.hint, k.created_at, k.revoked_at, a.suspended"
        " FROM api_keys k JOIN accounts a ON a.id = k.account_id ORDER BY k.created_at, k.rowid"
    )
    return [
        KeyInfo(
            r["id"],
            r["account_id"],
            r["name"],
            r["plan"],
            r["hint"],
            r["created_at"],
            r["revoked_at"] is not None,
            bool(r["suspended"]),
        )
        for r in rows
    ]


def revoke_key(conn: Any, key_or_id: str, *, now: str) -> str:
    """Revoke a key for good (its account's memories stay); return its id."""
    key_id = find_key(conn, key_or_id)
    conn.execute(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?", (now, key_id)
    )
    return key_id


def set_suspended(conn: Any, key_or_id: str, suspended: bool) -> str:
    """Suspend or reinstate the account of a key; return the key id."""
    key_id = find_key(conn, key_or_id)
    conn.execute(
        "UPDATE accounts SET suspended = ? WHERE id = (SELECT account_id FROM api_keys WHERE id = ?)",
        (int(suspended), key_id),
    )
    return key_id
