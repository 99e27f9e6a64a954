"""The objects of the wire contract (``docs/wire-contract.md``), as pydantic v2 models.

The clients parse responses into these, and the local server serializes its answers from
them, so both sides agree on one definition.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from . import _display

__all__ = [
    "Memory",
    "MemoryList",
    "RateLimitInfo",
    "RecallResults",
    "RecalledMemory",
    "Scope",
    "ScopeList",
    "Usage",
]


class _Model(BaseModel):
    # Unknown fields from a newer server are kept rather than rejected, so an old client
    # keeps working when the service adds a field.
    model_config = ConfigDict(extra="allow", frozen=False)


class Memory(_Model):
    """One stored memory, scoped to a user and an agent.

    Example:
        >>> m = client.remember("User is on the Pro plan", user_id="user_123", agent_id="billing_bot")
        >>> m.content, m.user_id, m.agent_id
        ('User is on the Pro plan', 'user_123', 'billing_bot')
    """

    id: str
    content: str
    user_id: str
    agent_id: str
    session_id: str | None = None
    key: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    #: When the memory expires (``None``: never); it is not returned after that.
    expires_at: datetime | None = None
    #: Its time to live in seconds, restarted when a read refreshes it (``None``: none).
    ttl: float | None = None

    def provenance(self) -> dict[str, Any]:
        """Where the memory comes from, as JSON-friendly values: scope, key and times.

        Adapters put this in the metadata of the documents and nodes they return.
        """
        created = self.created_at.isoformat()
        # Most memories were never updated; formatting a datetime costs more than comparing.
        same = (
            self.updated_at == self.created_at
            and self.updated_at.utcoffset() == self.created_at.utcoffset()
        )
        updated = created if same else self.updated_at.isoformat()
        return {
            "user_id": self.user_id,
            "agent_id": self.agent_id,
            "session_id": self.session_id,
            "key": self.key,
            "created_at": created,
            "updated_at": updated,
        }

    def _repr_html_(self) -> str:
        return _display.memory_table(self)


class RecalledMemory(_Model):
    """A memory returned by ``recall``, with its relevance ``score`` (higher is better).

    On the local server ``score`` is in (0, 1): ``1 - e^-bm25`` over the scope searched
    (docs/wire-contract.md, RecalledMemory).
    """

    memory: Memory
    score: float = Field(description="relevance in (0, 1); higher is more relevant")

    def _repr_html_(self) -> str:
        return _display.recalled_table(self)


class Usage(_Model):
    """Where the account stands against its plan. ``None`` limits mean "no limit"."""

    plan: str
    memories_stored: int
    memories_limit: int | None = None
    requests_today: int
    requests_limit: int | None = None
    resets_at: datetime

    def _repr_html_(self) -> str:
        return _display.usage_table(self)


class Scope(_Model):
    """A (user, agent) pair that has memories stored under it."""

    user_id: str
    agent_id: str
    memories: int

    def _repr_html_(self) -> str:
        return _display.scopes_table([self])


class RateLimitInfo(_Model):
    """The ``X-RateLimit-*`` headers of the last response. ``None`` limits mean unlimited."""

    limit: int | None = None
    remaining: int | None = None
    reset_at: datetime | None = None


# The clients return these list types so that a notebook shows a table; everywhere else they
# are plain lists (same repr, equality and JSON).


class MemoryList(list[Memory]):
    """Memories as a list; a Jupyter notebook shows them as one table."""

    def _repr_html_(self) -> str:
        return _display.memories_table(self)


class RecallResults(list[RecalledMemory]):
    """Recall results, best first; a notebook shows rank, score and content as a table."""

    def _repr_html_(self) -> str:
        return _display.recall_table(self)


class ScopeList(list[Scope]):
    """Scopes as a list; a notebook shows them as a table."""

    def _repr_html_(self) -> str:
        return _display.scopes_table(self)
