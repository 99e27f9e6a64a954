"""What an MCP tool tells the model when MemLayer fails, and which failures it remembers.

MCP separates two kinds of failure. A protocol error means the server itself is broken; a
tool result with ``isError`` means the call failed and the model should read why. Every
MemLayer failure is of the second kind, so the model gets a message it can act on: try
another id, shorten the text, carry on without memory for now. An authentication failure
(401) cannot heal while the server runs, since the key is read once at start, so it is
remembered and every later call answers with it without sending a request.

No message contains the API key: :class:`MemLayerError` messages are redacted when they are
built, and the texts below never mention the key's value.
"""

from __future__ import annotations

from .. import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    MemLayerError,
    MemoryLimitError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)
from .._adapter import API_KEY_ENV

__all__ = ["auth_failure_text", "not_in_scope_text", "timeout_text", "tool_error_text"]


def not_in_scope_text(memory_id: str) -> str:
    # The same answer for "no such id" and "another user's id": the model must not learn
    # which ids exist outside its scope.
    return (
        f"No memory with id {memory_id!r} exists in this memory store (it may have been "
        "forgotten already). Use recall or list_memories to find the right id."
    )


def timeout_text(seconds: float) -> str:
    return (
        f"The memory service did not answer within {seconds:g} seconds. Continue without "
        "long-term memory for this step; you may try again later."
    )


def auth_failure_text(exc: AuthenticationError) -> str:
    """The error every tool call returns once MemLayer has rejected the key."""
    return (
        f"MemLayer authentication failed: {exc.message}. The memory tools cannot work until "
        f"the person running this MCP server sets {API_KEY_ENV} to a valid MemLayer API key "
        "and restarts it; tell the user, and do not retry."
    )


def tool_error_text(exc: MemLayerError) -> str:
    """A message the model can act on for any failure other than authentication."""
    field = f" (field: {exc.field})" if exc.field else ""
    if isinstance(exc, MemoryLimitError):
        return (
            "Long-term memory is full: the MemLayer plan's memory limit is reached. Forget "
            "memories that are no longer needed (list_memories, then forget), or tell the user."
        )
    if isinstance(exc, PermissionDeniedError):
        return (
            f"MemLayer denied access (permission denied): {exc.message}. The account may be "
            "suspended; tell the user. Retrying will not help."
        )
    if isinstance(exc, RateLimitError):
        if exc.is_daily_quota:
            return (
                "The MemLayer plan's daily request quota is used up. Continue without "
                "long-term memory until it resets, and tell the user if it matters."
            )
        wait = f" in about {exc.retry_after:g} seconds" if exc.retry_after else " later"
        return f"The memory service is rate limiting requests right now; try again{wait}."
    if isinstance(exc, (BadRequestError, UnprocessableEntityError)):
        return f"The memory service rejected the input{field}: {exc.message}. Fix it and try again."
    if isinstance(exc, ConflictError):
        return f"The memory service reported a conflict{field}: {exc.message}. Try again."
    if isinstance(exc, NotFoundError):
        return f"Not found: {exc.message}."
    if isinstance(exc, (APIConnectionError, InternalServerError)):
        return (
            "The memory service is unavailable right now. Continue without long-term memory "
            "for this step; you may try again later."
        )
    if isinstance(exc, APIStatusError):
        return f"The memory service failed (status {exc.status_code}): {exc.message}."
    return f"The memory service gave an answer this server could not read: {exc.message}."
