"""The rules every adapter follows in the same way, written once (see CONTRIBUTING.md).

* :func:`clip_query`: a query is stripped and cut to ``MAX_QUERY_CHARS`` before it is sent,
  so a long user message never turns a turn into a 422.
* :func:`check_owner`: memory ids are account-wide, so before a model-driven ``forget`` an
  adapter reads the memory and refuses one that is not the bound user's (and agent's, when
  one is bound), with the same answer as for an unknown id.
* :func:`message_placeholder`: the searchable content of a chat message that has no text
  (tool calls only, images): ``[<role> message]`` in every adapter.
* :func:`renamed_argument`: an argument renamed to follow the policy keeps working under its
  old name, with a :class:`DeprecationWarning`.
"""

from __future__ import annotations

import warnings
from collections.abc import MutableMapping
from typing import Any

from .. import Memory, NotFoundError
from .._constants import MAX_QUERY_CHARS

__all__ = [
    "MAX_QUERY_CHARS",
    "check_owner",
    "clip_query",
    "message_placeholder",
    "renamed_argument",
    "renamed_attribute",
    "warn_renamed",
]


def clip_query(text: str) -> str:
    """``text`` without surrounding white space, cut to ``MAX_QUERY_CHARS`` characters.

    >>> clip_query("  where does alice live? ")
    'where does alice live?'
    >>> len(clip_query("x" * 10_000)) == MAX_QUERY_CHARS
    True
    """
    return text.strip()[:MAX_QUERY_CHARS]


def check_owner(memory: Memory, *, user_id: str, agent_id: str | None) -> None:
    """Raise :class:`NotFoundError` unless ``memory`` belongs to this user (and agent).

    ``agent_id=None`` means the adapter is bound to all of the user's agents, so only the
    user is compared. The error reads as for an id that does not exist, so a model learns
    nothing about other users' memories by trying their ids.
    """
    if memory.user_id != user_id or (agent_id is not None and memory.agent_id != agent_id):
        raise NotFoundError(f"memory {memory.id} not found", status_code=404, code="not_found")


def message_placeholder(role: str) -> str:
    """The content stored for a chat message without text, e.g. ``[assistant message]``.

    The message itself is kept whole in the memory's metadata; this is only what search
    sees, and a memory's content cannot be blank.
    """
    return f"[{role} message]"


def renamed_argument(
    values: MutableMapping[str, Any], old: str, new: str, *, owner: str, stacklevel: int = 3
) -> None:
    """Move ``values[old]`` to ``values[new]``, warning that ``old`` is deprecated.

    Args:
        values: keyword arguments (or a pydantic model's input) to fix in place.
        old, new: the argument's former and current names.
        owner: the class named in the messages.
        stacklevel: passed to :func:`warnings.warn`, so the warning points at the caller.

    Raises:
        TypeError: both names were given.
    """
    if old not in values:
        return
    if new in values:
        raise TypeError(f"{owner} got both {old}= and {new}=; pass {new}= only")
    warn_renamed(owner, old, new, stacklevel=stacklevel + 1)
    values[new] = values.pop(old)


def renamed_attribute(old: str, new: str) -> Any:
    """A read-only ``property`` for an attribute's former name, warning on each read.

    >>> class Retriever:
    ...     k = 4
    ...     limit = renamed_attribute("limit", "k")
    >>> import warnings
    >>> with warnings.catch_warnings(record=True):
    ...     Retriever().limit
    4
    """

    def read(self: Any) -> Any:
        warn_renamed(type(self).__name__, old, new)
        return getattr(self, new)

    return property(read, doc=f"Deprecated name of ``{new}``.")


def warn_renamed(owner: str, old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn that ``owner``'s argument ``old`` is now called ``new``."""
    warnings.warn(
        f"{owner}({old}=...) is deprecated; use {new}=... (same meaning)",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
