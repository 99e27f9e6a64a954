"""Whose memories an adapter reads and writes, decided once for every adapter.

Identity is bound by the application, never chosen by the model: an adapter is given
``user_id`` / ``agent_id`` at construction, or reads them per run from the run context, so
that one agent can serve many users. Per field, the first of these that has a value wins:

1. the value given at construction;
2. the run's context (``create_agent(..., context_schema=...)`` then
   ``agent.invoke(..., context=...)``), as a mapping key or an attribute;
3. ``config["configurable"]``.

A scope that is still missing raises :class:`MemLayerScopeError`; there is no shared default
scope that would mix several users' memories.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from langchain_core.runnables import RunnableConfig

from .. import MemLayerScopeError

__all__ = ["MemLayerScopeError", "Scope", "resolve_scope", "run_context"]

# Where LangGraph keeps the run's Runtime (and so its context) inside ``configurable``.
_RUNTIME_KEY = "__pregel_runtime"


@dataclass(frozen=True)
class Scope:
    """Whose memories a call reads or writes. ``agent_id=None``: all of the user's agents."""

    user_id: str
    agent_id: str | None
    session_id: str | None = None

    @property
    def write_agent_id(self) -> str:
        """The agent a write goes to; a write always needs one (a recall may search all)."""
        if self.agent_id is None:
            raise MemLayerScopeError(
                "storing a memory needs agent_id=...: every memory belongs to one user and one "
                "agent, chosen by the application"
            )
        return self.agent_id


def run_context(config: RunnableConfig | None) -> Any:
    """The LangGraph run context carried by ``config``, or ``None`` outside a graph run."""
    if not config:
        return None
    runtime = (config.get("configurable") or {}).get(_RUNTIME_KEY)
    return getattr(runtime, "context", None)


def _lookup(source: Any, name: str) -> str | None:
    if source is None:
        return None
    value = source.get(name) if isinstance(source, Mapping) else getattr(source, name, None)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise MemLayerScopeError(f"{name} must be a non-empty string, got {value!r}")
    return value


def resolve_scope(
    *,
    user_id: str | None,
    agent_id: str | None,
    config: RunnableConfig | None = None,
    context: Any = None,
    require_agent: bool = True,
    adapter: str = "MemLayer adapter",
) -> Scope:
    """The scope of this call, from construction, run context, then ``configurable``.

    Args:
        user_id, agent_id: the values given at construction (``None`` when not given).
        config: the run's config, if any.
        context: the run's context; read from ``config`` when not given.
        require_agent: whether a missing ``agent_id`` is an error (a recall may search all
            of a user's agents; a write may not).
        adapter: named in the error message.

    Raises:
        MemLayerScopeError: a required id is missing.
    """
    if context is None:
        context = run_context(config)
    configurable = (config or {}).get("configurable") or {}
    sources = (context, configurable)

    def pick(name: str, given: str | None) -> str | None:
        if given is not None:
            return given
        for source in sources:
            value = _lookup(source, name)
            if value is not None:
                return value
        return None

    uid = pick("user_id", user_id)
    aid = pick("agent_id", agent_id)
    missing = [name for name, value in (("user_id", uid), ("agent_id", aid)) if value is None]
    if not require_agent and "agent_id" in missing:
        missing.remove("agent_id")
    if missing:
        names = " and ".join(missing)
        raise MemLayerScopeError(
            f"{adapter}: no {names} for this run. Pass {names} when constructing it, in the "
            f"run context (invoke(..., context={{'user_id': ...}})) or in "
            f"config['configurable']; memories are never stored under a shared default scope."
        )
    return Scope(user_id=cast(str, uid), agent_id=aid)
