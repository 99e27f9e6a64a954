"""What every authenticated request goes through, in order.

1. **Authenticate** the ``X-API-Key`` header (401/403), before anything else. A key this
   process has authenticated before is found in memory (by a digest of it, never the key
   itself), and its row is read again with the quota in step 3, in the request's
   transaction: a key revoked or an account suspended by any process is refused there,
   nothing counted, as it would have been here.
2. **Replay**: an ``Idempotency-Key`` already answered for this account returns the stored
   answer; nothing runs and no quota is spent. Only writes keep answers (up to
   ``max_idempotent_answer_bytes``), and forgetting a memory drops the answers showing it.
   With an embedder, the texts the operation will need as vectors are embedded next, before
   any transaction, so no other writer waits for the model; an embedder that fails answers
   503 ``embedder_unavailable``, and nothing is counted or stored. (An in-process model
   embeds a recall's question on a worker thread while steps 3-4 run: see
   ``Embedder.local``.)
3. **Count** the request against the account's daily quota (429 once it is spent), whatever
   happens next: errors, a failure inside the server included.
4. **Run** the operation within the request's :class:`~.budget.Budget` (database time,
   answer bytes) and its account's :class:`~.budget.CpuShare` (429 ``rate_limited`` when
   the account's expensive requests took more than their share of the server). Writes run in the same transaction as the quota count and the
   idempotency record, inside a savepoint: an operation that fails leaves nothing behind
   but the counted request, and a write and its idempotency record are committed together
   (so two concurrent requests with the same key cannot both store). Reads (a batch of
   reads too) run on a reader connection, concurrently with writes, never under the write
   lock. A write whose size grows with what is stored (``forget_all``) runs in bounded
   steps, one transaction each, with the lock free in between (:class:`Unfinished`).

The transaction is committed before the response is built, so an acknowledged write is on
disk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
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
from .backend import Backend
from .budget import Budget, CpuShare
from .embedders import EmbedderError
from .errors import ApiError
from .keys import Account
from .parsing import parse_json_body
from .settings import ServerSettings
from .store import Narrowed, iso, next_midnight, sweep_expired

__all__ = [
    "Answer",
    "Context",
    "Incoming",
    "Operation",
    "Outcome",
    "Rendered",
    "Service",
    "Unfinished",
    "memory_ids",
]

IDEMPOTENCY_TTL_SECONDS = 24 * 3600
#: Authenticated keys kept per process (by digest); past it the cache starts afresh.
AUTH_CACHE_SIZE = 4096
_UNPARSED: Any = object()
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
    _parsed: Any = field(default=_UNPARSED, repr=False)

    def json(self, max_bytes: int) -> Any:
        """The body's JSON value (parsed once), or the contract's 413/415/400 error."""
        if self._parsed is _UNPARSED:
            self._parsed = parse_json_body(self.body, self.content_type, max_bytes)
        return self._parsed


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
    budget: Budget
    #: Vectors prepared for this request; ``None`` when the server has no embedder.
    embeddings: Any = None
    #: What the earlier steps of this request did (see :class:`Unfinished`).
    carried: int = 0
    #: Agent prefixes this request's reads have narrowed (``store.Narrowed``), forgotten
    #: whenever it writes.
    narrowed: Narrowed = field(default_factory=dict, init=False)

    @functools.cached_property
    def now_iso(self) -> str:
        return iso(self.now)

    def json(self) -> Any:
        return self.incoming.json(self.settings.max_body_bytes)


@dataclass(frozen=True)
class Unfinished:
    """What an operation answers after one bounded step of a write whose size grows with
    what is stored (``forget_all``): ``done`` so far, and more to do.

    The service commits the step, frees the write lock (other accounts' writes go in
    between), and runs the operation again in a new transaction with ``ctx.carried =
    done``, until it answers. The last step and the idempotency record are committed
    together; a crash part way leaves each finished step done and nothing kept, so a
    retry with the same key runs again and finishes the job.
    """

    done: int


@dataclass(frozen=True)
class Operation:
    """An endpoint's logic: ``run(ctx) -> (status, JSON body or None)``.

    ``bounded``: its work is bounded by the request (a page, a budget, the items sent), not
    by how much is stored, so it may run on the event loop (see ``routes.build_router``).
    """

    run: Callable[[Context], tuple[int, Any]]
    writes: bool
    bounded: bool = True
    #: For an operation that may or may not write (a batch): whether this request does.
    writes_if: Callable[[Incoming], bool] | None = None
    #: Likewise for ``bounded``: whether this request's work is bounded.
    bounded_if: Callable[[Incoming], bool] | None = None
    #: For an operation that writes: whether its answer is kept for replays (default: it
    #: is). A batch of reads that only restart expiry clocks writes, but is still a read.
    keeps_answer_if: Callable[[Incoming], bool] | None = None
    #: With an embedder: embeds what ``run`` will need (``(incoming, embeddings)``), before
    #: the transaction. Such an operation never runs on the event loop then.
    prepare: Callable[[Incoming, Any], None] | None = None

    def writes_for(self, incoming: Incoming) -> bool:
        return self.writes if self.writes_if is None else self.writes_if(incoming)

    def bounded_for(self, incoming: Incoming) -> bool:
        return self.bounded if self.bounded_if is None else self.bounded_if(incoming)

    def keeps_answer_for(self, incoming: Incoming) -> bool:
        return self.keeps_answer_if is None or self.keeps_answer_if(incoming)


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
    """Runs operations for authenticated requests against one :class:`~.backend.Backend`."""

    def __init__(self, settings: ServerSettings, db: Backend, index: Any = None) -> None:
        self.settings = settings
        self.db = db
        #: The :class:`~.vectors.SemanticIndex` when the server has an embedder, else ``None``.
        self.index = index
        self.cpu_share = CpuShare(
            settings.cpu_share_rate, settings.cpu_share_burst, settings.cpu_free_seconds
        )
        #: SHA-256 of a key -> its account when last authenticated (see step 1).
        self._known: dict[bytes, Account] = {}

    # -- the steps -------------------------------------------------------------------

    def _embed(self, incoming: Incoming, op: Operation) -> Any:
        """The request's texts embedded before its transaction (``None``: no embedder).

        A body that does not parse is left for ``run`` to reject with the usual error.
        """
        if self.index is None:
            return None
        embeddings = self.index.embeddings()
        if op.prepare is not None:
            with contextlib.suppress(ApiError):
                op.prepare(incoming, embeddings)
        return embeddings

    def authenticate(self, header_values: Sequence[str]) -> Account:
        if len(header_values) > 1:
            # The server will not pick one of several keys.
            raise ApiError(401, "invalid_api_key", "more than one X-API-Key header; send one")
        if not header_values or not header_values[0]:
            raise ApiError(401, "invalid_api_key", MISSING_KEY_MESSAGE)
        key = header_values[0]
        if not KEY_PATTERN.fullmatch(key):
            raise ApiError(401, "wrong_key_format", WRONG_KEY_FORMAT_MESSAGE)
        digest = hashlib.sha256(key.encode()).digest()
        account = self._known.get(digest)
        if account is None:
            with self.db.read() as conn:
                account = keys_module.authenticate(conn, key)
            if account is None:
                raise ApiError(401, "invalid_api_key", UNKNOWN_KEY_MESSAGE)
            if not account.suspended:  # a suspended account is read afresh until reinstated
                if len(self._known) >= AUTH_CACHE_SIZE:
                    self._known.clear()
                self._known[digest] = account
        _refuse(account)
        return account

    def _recheck(self, conn: Any, account: Account, now: datetime) -> tuple[Account, _Quota]:
        """The account as its key's rows say now, and its quota (step 3's one read)."""
        fresh, used = keys_module.recheck(conn, account, now.date().isoformat())
        if fresh is None:
            self._forget(account)
            raise ApiError(401, "invalid_api_key", UNKNOWN_KEY_MESSAGE)
        if fresh != account:  # suspended, reinstated or another plan: remembered as it is now
            self._forget(account)
        _refuse(fresh)
        return fresh, _Quota(fresh.request_limit, used, next_midnight(now))

    def _forget(self, account: Account) -> None:
        for digest, known in list(self._known.items()):
            if known.key_id == account.key_id:
                self._known.pop(digest, None)  # another thread may have dropped it already

    def _consume(self, conn: Any, account: Account, now: datetime, quota: _Quota) -> _Quota:
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
            " ON CONFLICT (account_id, day) DO UPDATE SET requests = request_counts.requests + 1",
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

    def _remember_answer(
        self,
        conn: Any,
        account: Account,
        key: str,
        fingerprint: str,
        status: int,
        answer: Answer,
    ) -> None:
        """Keep a write's answer for replays, linked to the memories it shows
        (:meth:`.backend.Backend.keep_answer`; ``sqlite_schema.py``, migrations 4 and 7:
        forgetting one of them drops the kept answer).

        An answer over ``max_idempotent_answer_bytes``, or one showing a memory that is
        already gone (a batch that remembered and forgot it), is not kept: only that the
        request was answered, so a replay runs nothing and gets 409 instead.
        """
        now = time.time()
        conn.execute(
            "DELETE FROM idempotency WHERE created_at < ?", (now - IDEMPOTENCY_TTL_SECONDS,)
        )
        kept = len(answer.body) <= self.settings.max_idempotent_answer_bytes
        self.db.keep_answer(
            conn,
            account.id,
            key,
            fingerprint,
            status,
            answer.body if kept else None,
            now,
            sorted(answer.memory_ids),
        )

    @staticmethod
    def _replay(stored: Any, quota: _Quota) -> Outcome:
        headers = quota.headers()
        headers["Idempotent-Replayed"] = "true"
        if not stored["kept"]:
            error = ApiError(
                409,
                "idempotent_answer_gone",
                "this request was already carried out (nothing ran again); its answer is no "
                "longer kept, because a memory in it was forgotten or it was too large to keep",
                "Idempotency-Key",
            )
            return Outcome(error.status, None, headers, error)
        return Outcome(stored["status"], stored["body"] or None, headers)

    def _idempotency_key(self, incoming: Incoming) -> tuple[str | None, ApiError | None]:
        idem = incoming.idempotency_key if incoming.method in ("POST", "PATCH", "DELETE") else None
        if idem is not None and not _IDEMPOTENCY_KEY.fullmatch(idem):
            return None, ApiError(
                400,
                "bad_request",
                "Idempotency-Key must be 1-255 printable ASCII characters",
                "Idempotency-Key",
            )
        return idem, None

    def _budget(self) -> Budget:
        s = self.settings
        return Budget(s.query_budget_seconds, s.max_response_bytes, s.query_budget_steps)

    # -- the whole request -----------------------------------------------------------

    def execute(self, incoming: Incoming, op: Operation, account: Account | None = None) -> Outcome:
        """Authenticate (unless ``account`` is given), replay or count, run; always an
        :class:`Outcome`, never an ApiError.

        Only a request that writes takes the write lock for its work, and only its answer is
        kept for replays: a read (a recall, a batch of lists) runs on a reader connection
        and its answer is not kept (its ``Idempotency-Key`` is only checked for reuse).
        """
        if account is None:
            try:
                account = self.authenticate(incoming.api_keys)
            except ApiError as exc:
                return Outcome(exc.status, None, exc.headers, exc)
        try:
            embeddings = self._embed(incoming, op)
        except EmbedderError as exc:
            refused = ApiError(503, "embedder_unavailable", f"the embedder failed: {exc}")
            return Outcome(503, None, {}, refused)
        idem, error = self._idempotency_key(incoming)
        writes = op.writes_for(incoming)
        fingerprint = self._fingerprint(incoming) if idem is not None else ""
        now = self.settings.clock()
        budget = self._budget()
        answer: Answer | None = None
        unfinished: Unfinished | None = None
        failure: Exception | None = None
        try:
            with self.db.write() as conn:
                # Across server processes too: this account's quota count, memory cap and
                # idempotency records are read and written by one request at a time.
                self.db.lock_account(conn, account.id)
                account, quota = self._recheck(conn, account, now)
                if idem is not None:
                    stored = conn.execute(
                        "SELECT fingerprint, status, body, kept FROM idempotency"
                        " WHERE account_id = ? AND key = ? AND created_at >= ?",
                        (account.id, idem, time.time() - IDEMPOTENCY_TTL_SECONDS),
                    ).fetchone()
                    if stored is not None and stored["fingerprint"] == fingerprint:
                        return self._replay(stored, quota)
                    if stored is not None:
                        error = ApiError(
                            409,
                            "idempotency_key_reused",
                            "this Idempotency-Key was used for a different request (method, path or body)",
                            "Idempotency-Key",
                        )
                quota = self._consume(conn, account, now, quota)
                if error is None:
                    sweep_expired(conn, account, iso(now))
                wait = self.cpu_share.wait(account.id)
                if wait is not None and error is None:
                    error = self.cpu_share.refusal(wait)
                if writes and error is None:
                    conn.execute("SAVEPOINT op")
                    try:
                        ctx = Context(
                            conn,
                            account,
                            incoming,
                            now,
                            quota.used,
                            self.settings,
                            budget,
                            embeddings,
                        )
                        result = op.run(ctx)
                        if isinstance(result[1], Unfinished):
                            unfinished = result[1]
                        else:
                            answer = _answer(result, budget)
                    except ApiError as exc:
                        conn.execute("ROLLBACK TO op")
                        error = exc
                    except Exception as exc:  # a bug: undone, but the request still counts
                        conn.execute("ROLLBACK TO op")
                        failure = exc
                    else:
                        # A finished write whose answer is kept (not a batch of reads that
                        # only restarted expiry clocks).
                        kept = op.keeps_answer_for(incoming)
                        if idem is not None and answer is not None and kept:
                            self._remember_answer(
                                conn, account, idem, fingerprint, answer.status, answer
                            )
                    conn.execute("RELEASE op")
        except ApiError as exc:  # the quota is spent: nothing was counted, nothing ran
            return Outcome(exc.status, None, exc.headers, exc)
        if failure is not None:
            raise failure
        if unfinished is not None:
            try:
                answer = self._finish(op, unfinished, ctx, idem, fingerprint)
            except ApiError as exc:
                error = exc
        if not writes and error is None:
            try:
                with self.db.read() as conn:
                    ctx = Context(
                        conn, account, incoming, now, quota.used, self.settings, budget, embeddings
                    )
                    answer = _answer(op.run(ctx), budget)
            except ApiError as exc:
                error = exc
        # Only the budgeted reads (list, recall), whose cost grows with what is stored: a
        # write's cost is bounded by its item and body caps, so a bulk import is never
        # throttled.
        self.cpu_share.charge(account.id, budget.spent_seconds)
        headers = quota.headers()
        if error is not None:
            return Outcome(error.status, None, {**headers, **error.headers}, error)
        if answer is None:
            raise RuntimeError("operation returned no result")
        return Outcome(answer.status, answer.body or None, headers)

    def _finish(
        self,
        op: Operation,
        unfinished: Unfinished,
        first: Context,
        idem: str | None,
        fingerprint: str,
    ) -> Answer:
        """The remaining steps of an :class:`Unfinished` write, one transaction each."""
        done = unfinished.done
        while True:
            with self.db.write() as conn:
                self.db.lock_account(conn, first.account.id)
                ctx = dataclasses.replace(first, conn=conn, carried=done)
                result = op.run(ctx)
                if isinstance(result[1], Unfinished):
                    done = result[1].done
                    continue
                answer = _answer(result, first.budget)
                if idem is not None:
                    self._remember_answer(
                        conn, first.account, idem, fingerprint, answer.status, answer
                    )
                return answer


def _refuse(account: Account) -> None:
    if account.suspended:
        raise ApiError(403, "account_suspended", "account suspended")


@dataclass
class Answer:
    """An operation's answer, rendered: status, JSON body, and the memories it shows."""

    status: int
    body: bytes
    memory_ids: set[str] = field(default_factory=set)


@dataclass
class Rendered:
    """A result an operation rendered itself (``/v1/batch``, to stop at the byte cap
    before building the rest), with the ids of the memories in it."""

    body: bytes
    memory_ids: set[str]


def _answer(result: tuple[int, Any], budget: Budget) -> Answer:
    status, value = result
    if isinstance(value, Rendered):
        return Answer(status, value.body, value.memory_ids)
    if value is None:
        return Answer(status, b"")
    return Answer(status, budget.render(value), memory_ids(value))


def memory_ids(value: Any) -> set[str]:
    """The ids of the memories (objects with an ``id`` and a ``content``) in an answer."""
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("id"), str) and "content" in item:
                found.add(item["id"])
            else:
                stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found
