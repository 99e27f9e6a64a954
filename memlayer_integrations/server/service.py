"""What every authenticated request goes through, in order.

1. **Authenticate** the ``X-API-Key`` header (401/403), before anything else.
2. **Replay**: an ``Idempotency-Key`` already answered for this account returns the stored
   answer; nothing runs and no quota is spent.
3. **Count** the request against the account's daily quota (429 once it is spent).
4. **Run** the operation. Writes run in the same transaction as the quota count and the
   idempotency record, inside a savepoint: an operation that fails leaves nothing behind
   but the counted request, and a write and its idempotency record are committed together
   (so two concurrent requests with the same key cannot both store). Reads run on their
   own connection, concurrently with writes.

The transaction is committed before the response is built, so an acknowledged write is on
disk.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .._constants import (
    KEY_PATTERN,
    MISSING_KEY_MESSAGE,
    UNKNOWN_KEY_MESSAGE,
    WRONG_KEY_FORMAT_MESSAGE,
)
from . import keys as keys_module
from .db import Database
from .errors import ApiError, json_bytes
from .keys import Account
from .parsing import parse_json_body
from .settings import ServerSettings
from .store import iso, next_midnight

__all__ = ["Context", "Incoming", "Operation", "Outcome", "Service"]

IDEMPOTENCY_TTL_SECONDS = 24 * 3600
_IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7e]{1,255}")


@dataclass
class Incoming:
    """The parts of an HTTP request the service looks at (no framework types)."""

    method: str
    path: str
    raw_query: bytes
    query: Sequence[tuple[str, str]]
    api_keys: Sequence[str]
    idempotency_key: str | None = None
    body: bytes | None = b""  # None: larger than the limit
    content_type: str | None = None
    path_params: dict[str, str] = field(default_factory=dict)


@dataclass
class Outcome:
    status: int
    body: bytes | None
    headers: dict[str, str] = field(default_factory=dict)
    error: ApiError | None = None


@dataclass
class Context:
    """What an operation sees: the connection to use, who is asking, and the request."""

    conn: Any
    account: Account
    incoming: Incoming
    now: datetime
    requests_today: int
    settings: ServerSettings

    @property
    def now_iso(self) -> str:
        return iso(self.now)

    def json(self) -> Any:
        return parse_json_body(
            self.incoming.body, self.incoming.content_type, self.settings.max_body_bytes
        )


@dataclass(frozen=True)
class Operation:
    """An endpoint's logic: ``run(ctx) -> (status, JSON body or None)``.

    ``bounded``: its work is bounded by the request (a page, a budget, the items sent), not
    by how much is stored, so it may run on the event loop (see ``routes.build_router``).
    """

    run: Callable[[Context], tuple[int, Any]]
    writes: bool
    bounded: bool = True


@dataclass
class _Quota:
    limit: int | None
    used: int
    reset: datetime

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": "unlimited" if self.limit is None else str(self.limit),
            "X-RateLimit-Remaining": "unlimited"
            if self.limit is None
            else str(max(self.limit - self.used, 0)),
            "X-RateLimit-Reset": str(int(self.reset.timestamp())),
        }


class Service:
    """Runs operations for authenticated requests against one :class:`Database`."""

    def __init__(self, settings: ServerSettings, db: Database) -> None:
        self.settings = settings
        self.db = db

    # -- the steps -------------------------------------------------------------------

    def authenticate(self, header_values: Sequence[str]) -> Account:
        if len(header_values) > 1:
            # The server will not pick one of several keys.
            raise ApiError(401, "invalid_api_key", "more than one X-API-Key header; send one")
        if not header_values or not header_values[0]:
            raise ApiError(401, "invalid_api_key", MISSING_KEY_MESSAGE)
        key = header_values[0]
        if not KEY_PATTERN.fullmatch(key):
            raise ApiError(401, "wrong_key_format", WRONG_KEY_FORMAT_MESSAGE)
        with self.db.read() as conn:
            account = keys_module.authenticate(conn, key)
        if account is None:
            raise ApiError(401, "invalid_api_key", UNKNOWN_KEY_MESSAGE)
        if account.suspended:
            raise ApiError(403, "account_suspended", "account suspended")
        return account

    @staticmethod
    def _quota_state(conn: Any, account: Account, now: datetime) -> _Quota:
        row = conn.execute(
            "SELECT requests FROM request_counts WHERE account_id = ? AND day = ?",
            (account.id, now.date().isoformat()),
        ).fetchone()
        return _Quota(account.request_limit, row[0] if row else 0, next_midnight(now))

    def _consume(self, conn: Any, account: Account, now: datetime) -> _Quota:
        quota = self._quota_state(conn, account, now)
        if quota.limit is not None and quota.used >= quota.limit:
            retry_after = max(1, math.ceil((quota.reset - now).total_seconds()))
            raise ApiError(
                429,
                "daily_quota_exceeded",
                f"the plan's {quota.limit} requests for today are used up; the quota resets at midnight UTC",
                headers={**quota.headers(), "Retry-After": str(retry_after)},
            )
        conn.execute(
            "INSERT INTO request_counts (account_id, day, requests) VALUES (?, ?, 1)"
            " ON CONFLICT (account_id, day) DO UPDATE SET requests = requests + 1",
            (account.id, now.date().isoformat()),
        )
        quota.used += 1
        return quota

    @staticmethod
    def _fingerprint(incoming: Incoming) -> str:
        digest = hashlib.sha256()
        for part in (
            incoming.method.encode(),
            incoming.path.encode(),
            incoming.raw_query,
            incoming.body or b"",
        ):
            digest.update(len(part).to_bytes(8, "big") + part)
        return digest.hexdigest()

    @staticmethod
    def _remember_answer(
        conn: Any, account: Account, key: str, fingerprint: str, status: int, body: bytes
    ) -> None:
        now = time.time()
        conn.execute(
            "DELETE FROM idempotency WHERE created_at < ?", (now - IDEMPOTENCY_TTL_SECONDS,)
        )
        conn.execute(
            "INSERT OR IGNORE INTO idempotency (account_id, key, fingerprint, status, body, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (account.id, key, fingerprint, status, body, now),
        )

    # -- the whole request -----------------------------------------------------------

    def execute(self, incoming: Incoming, op: Operation) -> Outcome:
        """Authenticate, replay or count, run; always an :class:`Outcome`, never an ApiError."""
        try:
            account = self.authenticate(incoming.api_keys)
        except ApiError as exc:
            return Outcome(exc.status, None, exc.headers, exc)
        idem = incoming.idempotency_key if incoming.method in ("POST", "PATCH", "DELETE") else None
        idem_error = None
        if idem is not None and not _IDEMPOTENCY_KEY.fullmatch(idem):
            idem_error = ApiError(
                400,
                "bad_request",
                "Idempotency-Key must be 1-255 printable ASCII characters",
                "Idempotency-Key",
            )
            idem = None
        fingerprint = self._fingerprint(incoming) if idem is not None else ""
        now = self.settings.clock()
        result: tuple[int, Any] | None = None
        error: ApiError | None = idem_error
        try:
            with self.db.write() as conn:
                if idem is not None:
                    stored = conn.execute(
                        "SELECT fingerprint, status, body FROM idempotency WHERE account_id = ? AND key = ? AND created_at >= ?",
                        (account.id, idem, time.time() - IDEMPOTENCY_TTL_SECONDS),
                    ).fetchone()
                    if stored is not None and stored["fingerprint"] == fingerprint:
                        headers = self._quota_state(conn, account, now).headers()
                        headers["Idempotent-Replayed"] = "true"
                        return Outcome(stored["status"], stored["body"] or None, headers)
                    if stored is not None:
                        error = ApiError(
                            409,
                            "idempotency_key_reused",
                            "this Idempotency-Key was used for a different request (method, path or body)",
                            "Idempotency-Key",
                        )
                quota = self._consume(conn, account, now)
                if op.writes and error is None:
                    conn.execute("SAVEPOINT op")
                    try:
                        result = op.run(
                            Context(conn, account, incoming, now, quota.used, self.settings)
                        )
                    except ApiError as exc:
                        conn.execute("ROLLBACK TO op")
                        error = exc
                    else:
                        if idem is not None:
                            self._remember_answer(
                                conn, account, idem, fingerprint, result[0], _body(result[1])
                            )
                    conn.execute("RELEASE op")
        except ApiError as exc:  # the quota is spent: nothing was counted, nothing ran
            return Outcome(exc.status, None, exc.headers, exc)
        if not op.writes and error is None:
            try:
                with self.db.read() as conn:
                    result = op.run(
                        Context(conn, account, incoming, now, quota.used, self.settings)
                    )
            except ApiError as exc:
                error = exc
            else:
                if idem is not None:
                    with self.db.write() as conn:
                        self._remember_answer(
                            conn, account, idem, fingerprint, result[0], _body(result[1])
                        )
        headers = quota.headers()
        if error is not None:
            return Outcome(error.status, None, {**headers, **error.headers}, error)
        if result is None:
            raise RuntimeError("operation returned no result")
        return Outcome(result[0], _body(result[1]) or None, headers)


def _body(value: Any) -> bytes:
    return b"" if value is None else json_bytes(value)
