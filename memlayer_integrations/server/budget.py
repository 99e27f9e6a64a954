"""What one request may cost: SQL work and answer size, both capped per request.

One process serves every account, from one event loop and one write lock. A request whose
cost grows with what is stored times what it asks for (a list with 64 metadata filters over
memories of a thousand keys, twenty such lists in one batch) would otherwise hold the loop
or the lock for seconds while every other account waits. So each request carries a
:class:`Budget`:

- **SQL time.** The reads that grow with stored data (list, recall) run under SQLite's
  progress handler, which adds up the CPU time of the request's statements and interrupts
  the statement once the budget is spent: 422 ``query_too_expensive``, and nothing of the
  request is stored. CPU time of the serving thread, not wall time, so a machine busy with
  other work does not turn an ordinary request into a refused one. A batch shares one
  budget between its operations.
- **Answer size.** Every answer is rendered through :meth:`Budget.render`, which refuses
  (422 ``response_too_large``) an answer over ``max_response_bytes`` instead of building
  and sending it; a batch is refused at the first operation that takes it over.

``max_steps`` caps the SQLite virtual-machine steps as well, so tests can run out of budget
deterministically.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .errors import ApiError, json_bytes

__all__ = ["PROGRESS_INTERVAL", "Budget"]

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

    @property
    def exhausted(self) -> bool:
        return self.spent_seconds > self.seconds or (
            self.max_steps is not None and self.steps > self.max_steps
        )

    @contextmanager
    def guard(self, conn: sqlite3.Connection) -> Iterator[None]:
        """Run the statements of the block on ``conn`` within the budget (422 past it)."""
        if self.exhausted:
            raise self._too_expensive()
        self._started = time.thread_time()
        conn.set_progress_handler(self._tick, PROGRESS_INTERVAL)
        try:
            yield
        except sqlite3.OperationalError as exc:
            if self.exhausted and "interrupt" in str(exc):
                raise self._too_expensive() from None
            raise
        finally:
            conn.set_progress_handler(None, PROGRESS_INTERVAL)
            if self._started is not None:
                self.spent_seconds += time.thread_time() - self._started
                self._started = None

    def _too_expensive(self) -> ApiError:
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
