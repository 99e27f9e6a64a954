"""The one error tree of the package.

Every error the clients raise derives from :class:`MemLayerError`, and every HTTP status is
mapped to its class in one place, :func:`status_error_from_response`::

    MemLayerError
    ├── MemLayerScopeError            an adapter has no user_id/agent_id (also a ValueError)
    ├── APIConnectionError            the request never got an HTTP answer
    │   └── APITimeoutError           ... because it timed out
    ├── APIResponseValidationError    an answer that does not match the contract
    └── APIStatusError                an HTTP error status (``status_code``, ``code``, ``request_id``)
        ├── BadRequestError           400, 413, 415, 431
        ├── AuthenticationError       401: missing, unknown or wrongly formatted key
        ├── PermissionDeniedError     403: account suspended
        │   └── MemoryLimitError      403: the plan's memory limit is reached
        ├── NotFoundError             404
        ├── ConflictError             409
        ├── UnprocessableEntityError  422: a field failed validation (``field``)
        │   └── RequestBudgetError    422: the request needs more work or answer than one may
        ├── RateLimitError            429 (``retry_after``, ``is_daily_quota``)
        └── InternalServerError       5xx

:class:`AuthenticationError` is also raised *before* any request when the key is missing or
malformed, so a bad key never spends a request from the daily quota.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from ._constants import REQUEST_ID_HEADER
from ._logging import redact

__all__ = [
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "InternalServerError",
    "MemLayerError",
    "MemLayerScopeError",
    "MemoryLimitError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestBudgetError",
    "UnprocessableEntityError",
]


class MemLayerError(Exception):
    """Root of every error raised by this package's clients.

    Attributes:
        message: a human-readable explanation, never containing the API key.
        status_code: the HTTP status, or ``None`` when no response was received.
        code: the server's machine-readable error code (``"invalid_api_key"``...), if any.
        request_id: the server's ``X-Request-Id``, to quote when reporting a problem.
        field: the request field a validation error is about, if any.
    """

    status_code: int | None = None

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        field: str | None = None,
    ) -> None:
        message = redact(message)
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        self.code = code
        self.request_id = request_id
        self.field = field

    def __str__(self) -> str:
        parts = [self.message]
        if self.status_code is not None:
            parts.append(f"(status {self.status_code}")
            if self.code:
                parts[-1] += f", code {self.code}"
            if self.request_id:
                parts[-1] += f", request {self.request_id}"
            parts[-1] += ")"
        return " ".join(parts)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, status_code={self.status_code!r}, "
            f"code={self.code!r}, request_id={self.request_id!r})"
        )


class MemLayerScopeError(MemLayerError, ValueError):
    """An adapter has no ``user_id`` (or ``agent_id``) to scope its memories by.

    Give it at construction or, where the framework has one, in the run context. There is
    never a shared default scope that would mix users' memories, so this fails closed.
    """


class APIConnectionError(MemLayerError):
    """The server could not be reached, or the connection broke before an answer."""


class APITimeoutError(APIConnectionError):
    """The request timed out (connect, read, write or pool)."""


class APIResponseValidationError(MemLayerError):
    """The server answered, but not with what the contract promises (for example HTML
    from a proxy, or JSON of the wrong shape)."""


class APIStatusError(MemLayerError):
    """The server answered with an HTTP error status."""

    status_code: int


class BadRequestError(APIStatusError):
    status_code = 400


class AuthenticationError(APIStatusError):
    """401: the API key is missing, unknown, revoked or not of the form ``ml_live_...``.

    Raised before sending anything when the key is missing or malformed.
    """

    status_code = 401


class PermissionDeniedError(APIStatusError):
    """403: the key is valid but may not do this (the account is suspended)."""

    status_code = 403


class MemoryLimitError(PermissionDeniedError):
    """403 ``memory_limit_reached``: storing this would exceed the plan's memory limit.

    Nothing of the refused request was stored. Forget memories or change plan.
    """


class NotFoundError(APIStatusError):
    status_code = 404


class ConflictError(APIStatusError):
    status_code = 409


class UnprocessableEntityError(APIStatusError):
    """422: a field failed validation; ``field`` names it."""

    status_code = 422


class RequestBudgetError(UnprocessableEntityError):
    """422 ``query_too_expensive`` or ``response_too_large``: the request would need more
    database work, or a larger answer, than the server lets one request have.

    Nothing of it was stored; the same request fails the same way, so it is not retried.
    Narrow it: fewer filters, a smaller ``limit``, fewer operations in a batch.
    """


class RateLimitError(APIStatusError):
    """429: too many requests.

    Attributes:
        retry_after: seconds until a retry can succeed, from ``Retry-After``.
        is_daily_quota: ``True`` when the plan's daily request quota is used up; the client
            raises these at once instead of sleeping until the day resets.
    """

    status_code = 429

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after

    @property
    def is_daily_quota(self) -> bool:
        return self.code == "daily_quota_exceeded"


class InternalServerError(APIStatusError):
    status_code = 500


# Errors that say "try again later", never "you may not" or "this is wrong": the ones an
# adapter's ``fail_open`` lets a turn or a tool call get past. Authentication and permission
# errors are never among them.
TRANSIENT_ERRORS: tuple[type[MemLayerError], ...] = (
    APIConnectionError,
    InternalServerError,
    RateLimitError,
)

_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: BadRequestError,
    415: BadRequestError,
    431: BadRequestError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}
_BY_CODE: dict[str, type[APIStatusError]] = {
    "memory_limit_reached": MemoryLimitError,
    "query_too_expensive": RequestBudgetError,
    "response_too_large": RequestBudgetError,
}


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), else ``None``."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from datetime import datetime, timezone
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def status_error_from_response(response: httpx.Response) -> APIStatusError:
    """Map an error response to its exception class: the one place statuses become errors."""
    status = response.status_code
    request_id = response.headers.get(REQUEST_ID_HEADER)
    code: str | None = None
    field: str | None = None
    message = f"HTTP {status}"
    try:
        body = json.loads(response.content) if response.content else None
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        code = err.get("code") if isinstance(err.get("code"), str) else None
        field = err.get("field") if isinstance(err.get("field"), str) else None
        if isinstance(err.get("message"), str):
            message = err["message"]
        if request_id is None and isinstance(body.get("request_id"), str):
            request_id = body["request_id"]
    elif response.content:
        # Not the contract's error body (an HTML page from a proxy, say): say so briefly
        # rather than dumping the page into the message.
        kind = response.headers.get("content-type", "unknown content type").split(";")[0]
        message = (
            f"HTTP {status} with a non-JSON body ({kind}): not a MemLayer error; check that "
            "the base URL is a MemLayer server"
        )

    cls = _BY_CODE.get(code or "") or _BY_STATUS.get(status)
    if cls is None:
        cls = InternalServerError if status >= 500 else APIStatusError
    kwargs: dict[str, Any] = dict(status_code=status, code=code, request_id=request_id, field=field)
    if cls is RateLimitError:
        return RateLimitError(
            message, retry_after=parse_retry_after(response.headers.get("retry-after")), **kwargs
        )
    return cls(message, **kwargs)
