"""What one request may cost: SQL work and answer size, both capped per request.

One process serves every account, from one event loop and one write lock. A request whose
cost grows with what is stored times what it asks for (a list with 64 metadata filters over
memories of a thousand keys, twenty such lists in one batch) would otherwise hold the loop
or the lock for seconds while every other account waits. So each request carries a
:class:`Budget`:

- **SQL time.** The reads that grow with stored data (list, recall) run under SQLite's
  progress handler, which adds up the CPU time of the request's statements and interrupts
  the statement once the budget is spent: 422 ``query_too_expensive``, and nothing of the
  request is stored. The clock restarts as each statement starts, so the Python work between
  statements (recall's scoring) is not counted as database work. CPU time of the serving thread, not wall time, so a machine busy with
  other work does not turn an ordinary request into a refused one. A batch shares one
  budget between its operations.
- **Answer size.** Every answer is rendered through :meth:`Budget.render`, which refuses
  (422 ``response_too_large``) an answer over ``max_response_bytes`` instead of building
  and sending it; a batch is refused at the first operation that takes it over.

``max_steps`` caps the SQLite virtual-machine steps as well, so tests can run out of budget
deterministically.

On PostgreSQL (``postgres/database.py``) the database work runs in the database's own
processes, so the budget is the time of the request's budgeted statements as the server
waits for them (wall time, counted at a fifth: ``postgres/database.py``), and
``statement_timeout`` interrupts the one that would go past it: the same 422.

A budget bounds one request; :class:`CpuShare` bounds an account's requests together, so
many budget-sized requests from one account, however many connections they come from,
cannot take the server's CPU from the others.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from .errors import ApiError, json_bytes

__all__ = ["PROGRESS_INTERVAL", "Budget", "CpuShare"]

#: SQLite virtual-machine steps between two looks at the budget (about a millisecond of
#: the slowest steps, a JSON document parsed by ``json_each``; far less for most).
PROGRESS_INTERVAL = 1000


class Budget:
    """The SQL time and answer bytes one request may still spend.

    Example:
        >>> budget = Budget(seconds=0.1, max_response_bytes=8 << 20)
        >>> with budget.guard(conn):  # doctest: +SKIP
        ...     rows = conn.execute(expensive_select).fetchall()
        >>> body = budget.render({"memories": rows})  # doctest: +SKIP
    """

    def __init__(
        self, seconds: float, max_response_bytes: int, max_steps: int | None = None
    ) -> None:
        self.seconds = seconds
        self.max_response_bytes = max_response_bytes
        self.max_steps = max_steps
        self.spent_seconds = 0.0
        self.steps = 0
        self.response_bytes = 0
        self._started: float | None = None

    def _tick(self) -> int:
        self.steps += PROGRESS_INTERVAL
        if self._started is not None:
            now = time.thread_time()
            self.spent_seconds += now - self._started
            self._started = now
        over_time = self.spent_seconds > self.seconds
        over_steps = self.max_steps is not None and self.steps > self.max_steps
        return 1 if over_time or over_steps else 0

    def _statement(self, _sql: str) -> None:
        # A statement starts: what ran since the last look at the clock was the caller's
        # Python (scoring, building the next statement), not database work.
        self._started = time.thread_time()

    @property
    def exhausted(self) -> bool:
        return self.spent_seconds > self.seconds or (
            self.max_steps is not None and self.steps > self.max_steps
        )

    def guard(self, conn: Any) -> AbstractContextManager[None]:
        """Run the statements of the block on ``conn`` within the budget (422 past it).

        How is the database's own business (``backend.Dialect.guard``): SQLite counts with
        :meth:`progress_guard`, PostgreSQL with ``statement_timeout``.
        """
        from .backend import dialect_of

        return dialect_of(conn).guard(self, conn)

    @contextmanager
    def progress_guard(self, conn: sqlite3.Connection) -> Iterator[None]:
        """:meth:`guard` on SQLite: the progress handler interrupts a statement past the budget."""
        if self.exhausted:
            raise self.too_expensive()
        self._started = time.thread_time()
        conn.set_progress_handler(self._tick, PROGRESS_INTERVAL)
        conn.set_trace_callback(self._statement)
        try:
            yield
        except sqlite3.OperationalError as exc:
            if self.exhausted and "interrupt" in str(exc):
                raise self.too_expensive() from None
            raise
        finally:
            conn.set_progress_handler(None, PROGRESS_INTERVAL)
            conn.set_trace_callback(None)
            if self._started is not None:
                self.spent_seconds += time.thread_time() - self._started
                self._started = None

    def too_expensive(self) -> ApiError:
        return ApiError(
            422,
            "query_too_expensive",
            f"this request needs more than the {self.seconds * 1000:.0f} ms of database work "
            "one request may use; narrow it (fewer filters, a smaller limit, fewer operations)",
        )

    def render(self, value: Any) -> bytes:
        """``value`` as JSON, counted against the answer's byte cap (422 past it)."""
        body = json_bytes(value)
        self.charge(len(body))
        return body

    def charge(self, size: int) -> None:
        """Count ``size`` more bytes of answer; 422 ``response_too_large`` past the cap."""
        self.response_bytes += size
        if self.response_bytes > self.max_response_bytes:
            raise ApiError(
                422,
                "response_too_large",
                f"the answer would be larger than {self.max_response_bytes} bytes; "
                "ask for less (a smaller limit, fewer operations in the batch)",
            )


class CpuShare:
    """Each account's share of the server's CPU, as a token bucket of expensive time.

    A request's budgeted database time (the list and recall statements that grow with what
    is stored, as :class:`Budget` counts it) beyond ``free_seconds`` (what an ordinary
    request takes, so ordinary traffic never pays) is taken from its account's bucket, which refills at
    ``rate`` seconds per second up to ``burst``. An account whose bucket is empty gets
    429 ``rate_limited`` with ``Retry-After`` until it refills: one account sending only
    budget-sized requests, from any number of connections, gets about ``rate`` of one core,
    and the others keep the rest.

    Example:
        >>> share = CpuShare(rate=0.25, burst=0.5, free_seconds=0.02)
        >>> share.wait(account_id=1) is None
        True
    """

    def __init__(
        self,
        rate: float,
        burst: float,
        free_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate, self.burst, self.free_seconds, self._clock = rate, burst, free_seconds, clock
        self._lock = threading.Lock()
        self._buckets: dict[int, tuple[float, float]] = {}  # account -> (tokens, as of)

    def _tokens(self, account_id: int, now: float) -> float:
        tokens, since = self._buckets.get(account_id, (self.burst, now))
        return min(self.burst, tokens + (now - since) * self.rate)

    def wait(self, account_id: int) -> float | None:
        """``None`` if the account may run a request now, else the seconds until it may."""
        with self._lock:
            tokens = self._tokens(account_id, self._clock())
        return None if tokens > 0 else -tokens / self.rate + 0.001

    def charge(self, account_id: int, cpu_seconds: float) -> None:
        """Take a finished request's expensive CPU time from its account's bucket."""
        cost = cpu_seconds - self.free_seconds
        if cost <= 0:
            return
        with self._lock:
            now = self._clock()
            tokens = self._tokens(account_id, now) - cost
            if tokens >= self.burst:
                self._buckets.pop(account_id, None)
            else:
                self._buckets[account_id] = (tokens, now)

    def refusal(self, seconds: float) -> ApiError:
        return ApiError(
            429,
            "rate_limited",
            "this account's requests have used more than its share of the server's time; "
            "retry after the number of seconds in Retry-After",
            headers={"Retry-After": str(max(1, math.ceil(seconds)))},
        )
