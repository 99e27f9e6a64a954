"""Everything the two clients share: configuration, request building, retry decisions,
response parsing and error mapping.

:class:`MemLayerClient` and :class:`AsyncMemLayerClient` (in ``_client.py``) only *send*:
each public method builds a :class:`Call` here and hands it to a send loop that asks this
module whether to retry. Keeping all decisions here means the sync and async clients cannot
drift apart.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from urllib.parse import quote
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Optional, Union

import httpx
import pydantic

from . import _constants as C
from ._exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    APITimeoutError,
    AuthenticationError,
    MemLayerError,
    RateLimitError,
    status_error_from_response,
)
from ._logging import get_logger, mask_key
from ._models import Memory, RateLimitInfo, RecalledMemory, Scope, Usage
from ._version import __version__

log = get_logger("memlayer_integrations.client")

TimeoutTypes = Union[float, httpx.Timeout, None]
#: A memory to store: its text, or a mapping with ``content`` and optional ``metadata``,
#: ``key`` and ``session_id``.
MemoryItem = Union[str, Mapping[str, Any]]


class _NotGiven:
    """Marks an argument that was not passed (``None`` means "no timeout" for ``timeout``)."""

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __bool__(self) -> bool:
        return False


NOT_GIVEN: Any = _NotGiven()


@dataclass(frozen=True)
class Call:
    """One logical API call: what to send and how to read the answer."""

    method: str
    path: str
    parse: Callable[[Any], Any]
    json: Any = None
    params: Optional[list[tuple[str, str]]] = None
    timeout: Any = NOT_GIVEN
    # Made once per logical call and resent on every retry, so a write whose first attempt
    # did reach the server is stored once.
    idempotency_key: Optional[str] = field(default=None)


def _drop_none(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


def normalize_item(item: MemoryItem) -> dict[str, Any]:
    """Turn a ``remember_many`` item into its wire form, rejecting what the server would."""
    if isinstance(item, str):
        return {"content": item}
    if isinstance(item, Mapping):
        unknown = set(item) - {"content", "metadata", "key", "session_id"}
        if unknown:
            raise TypeError(f"unknown memory item field(s): {sorted(unknown)}")
        if "content" not in item:
            raise TypeError("a memory item mapping needs 'content'")
        return _drop_none(dict(item))
    raise TypeError(f"a memory item is a str or a mapping, not {type(item).__name__}")


def _parse_memory(body: Any) -> Memory:
    return Memory.model_validate(body)


def _parse_memory_field(body: Any) -> Memory:
    return Memory.model_validate(body["memory"])


def _parse_memories(body: Any) -> list[Memory]:
    return [Memory.model_validate(m) for m in body["memories"]]


def _parse_recalled(body: Any) -> list[RecalledMemory]:
    return [RecalledMemory.model_validate(r) for r in body["results"]]


def _parse_deleted(body: Any) -> int:
    return int(body["deleted"])


def _parse_page(body: Any) -> tuple[list[Memory], Optional[str]]:
    return _parse_memories(body), body.get("next_cursor")


def _parse_usage(body: Any) -> Usage:
    return Usage.model_validate(body)


def _parse_scopes(body: Any) -> list[Scope]:
    return [Scope.model_validate(s) for s in body["scopes"]]


def _parse_nothing(body: Any) -> None:
    return None


# How each batch operation's result is read: the same shapes as the single endpoints.
_BATCH_PARSERS: dict[str, Callable[[Any], Any]] = {
    "remember": _parse_memory_field,
    "remember_many": _parse_memories,
    "recall": _parse_recalled,
    "get": _parse_memory_field,
    "update": _parse_memory_field,
    "forget": _parse_deleted,
    "forget_all": _parse_deleted,
    "list": _parse_page,
    "usage": lambda body: Usage.model_validate(body["usage"]),
}


class Op:
    """Builders for the operations of :meth:`MemLayerClient.batch`.

    A batch runs several operations in one request (one request against the daily quota),
    in order and all or nothing.

    Example:
        >>> memories, recalled = client.batch([
        ...     Op.remember_many(["likes tea"], user_id="u1", agent_id="bot"),
        ...     Op.recall("tea", user_id="u1"),
        ... ])
    """

    @staticmethod
    def remember(
        content: str,
        *,
        user_id: str,
        agent_id: str,
        metadata: Optional[Mapping[str, Any]] = None,
        session_id: Optional[str] = None,
        key: Optional[str] = None,
    ) -> dict[str, Any]:
        return {"op": "remember", **_remember_body(content, user_id, agent_id, metadata, session_id, key)}

    @staticmethod
    def remember_many(
        items: Sequence[MemoryItem], *, user_id: str, agent_id: str, session_id: Optional[str] = None
    ) -> dict[str, Any]:
        return {"op": "remember_many", **_remember_many_body(items, user_id, agent_id, session_id)}

    @staticmethod
    def recall(
        query: str,
        *,
        user_id: str,
        agent_id: Optional[str] = None,
        limit: int = C.DEFAULT_RECALL_LIMIT,
        filters: Optional[Mapping[str, Any]] = None,
        session_id: Optional[str] = None,
        offset: int = 0,
    ) -> dict[str, Any]:
        return {"op": "recall", **_recall_body(query, user_id, agent_id, limit, filters, session_id, offset)}

    @staticmethod
    def get(memory_id: str) -> dict[str, Any]:
        return {"op": "get", "memory_id": memory_id}

    @staticmethod
    def update(
        memory_id: str, *, content: Optional[str] = None, metadata: Optional[Mapping[str, Any]] = None
    ) -> dict[str, Any]:
        return {"op": "update", "memory_id": memory_id, **_update_body(content, metadata)}

    @staticmethod
    def forget(memory_id: str) -> dict[str, Any]:
        return {"op": "forget", "memory_id": memory_id}

    @staticmethod
    def forget_all(
        *,
        user_id: str,
        agent_id: Optional[str] = None,
        session_id: Optional[str] = None,
        keys: Optional[Sequence[str]] = None,
    ) -> dict[str, Any]:
        return {
            "op": "forget_all",
            **_drop_none(
                {"user_id": user_id, "agent_id": agent_id, "session_id": session_id, "keys": _list_or_none(keys)}
            ),
        }

    @staticmethod
    def list(
        *,
        user_id: str,
        agent_id: Optional[str] = None,
        session_id: Optional[str] = None,
        filters: Optional[Mapping[str, Any]] = None,
        keys: Optional[Sequence[str]] = None,
        limit: int = C.DEFAULT_PAGE_SIZE,
        cursor: Optional[str] = None,
    ) -> dict[str, Any]:
        return {
            "op": "list",
            **_drop_none(
                {
                    "user_id": user_id,
                    "agent_id": agent_id,
                    "session_id": session_id,
                    "filters": dict(filters) if filters is not None else None,
                    "keys": _list_or_none(keys),
                    "limit": limit,
                    "cursor": cursor,
                }
            ),
        }

    @staticmethod
    def usage() -> dict[str, Any]:
        return {"op": "usage"}


def _list_or_none(keys: Optional[Sequence[str]]) -> Optional[list[str]]:
    if keys is None:
        return None
    if isinstance(keys, str):
        raise TypeError("keys is a sequence of keys, not a single string")
    return list(keys)


def _remember_body(content, user_id, agent_id, metadata, session_id, key) -> dict[str, Any]:
    return _drop_none(
        {
            "content": content,
            "user_id": user_id,
            "agent_id": agent_id,
            "session_id": session_id,
            "metadata": dict(metadata) if metadata is not None else None,
            "key": key,
        }
    )


def _remember_many_body(items, user_id, agent_id, session_id) -> dict[str, Any]:
    if isinstance(items, (str, Mapping)):
        raise TypeError("items is a sequence of memories; wrap a single one in a list")
    return _drop_none(
        {
            "user_id": user_id,
            "agent_id": agent_id,
            "session_id": session_id,
            "items": [normalize_item(i) for i in items],
        }
    )


def _recall_body(query, user_id, agent_id, limit, filters, session_id, offset) -> dict[str, Any]:
    return _drop_none(
        {
            "query": query,
            "user_id": user_id,
            "agent_id": agent_id,
            "session_id": session_id,
            "filters": dict(filters) if filters is not None else None,
            "limit": limit,
            "offset": offset or None,
        }
    )


def _update_body(content, metadata) -> dict[str, Any]:
    if content is None and metadata is None:
        raise TypeError("update needs content, metadata or both")
    return _drop_none({"content": content, "metadata": dict(metadata) if metadata is not None else None})


def _memory_path(memory_id: str) -> str:
    if not isinstance(memory_id, str) or not memory_id:
        raise TypeError("memory_id must be a non-empty string")
    # Quote so that an id like "../usage" stays one path segment.
    return "/memories/" + quote(memory_id, safe="")


def _scope_params(
    user_id: str, agent_id: Optional[str], session_id: Optional[str], keys: Optional[Sequence[str]]
) -> list[tuple[str, str]]:
    params = [("user_id", user_id)]
    if agent_id is not None:
        params.append(("agent_id", agent_id))
    if session_id is not None:
        params.append(("session_id", session_id))
    for k in _list_or_none(keys) or []:
        params.append(("key", k))
    return params


class BaseClient:
    """Configuration and pure logic shared by the sync and async clients.

    Precedence for every setting: the argument, then the environment variable, then the
    default. Nothing here performs I/O.
    """

    def __init__(
        self,
        api_key: Optional[str],
        base_url: Optional[str],
        timeout: TimeoutTypes,
        max_retries: int,
        default_headers: Optional[Mapping[str, str]],
    ) -> None:
        if api_key is None:
            api_key = os.environ.get(C.API_KEY_ENV) or None
        if api_key is not None and not isinstance(api_key, str):
            # Accept pydantic's SecretStr without importing it here.
            getter = getattr(api_key, "get_secret_value", None)
            if getter is None:
                raise TypeError("api_key must be a str")
            api_key = getter()
        self._api_key: Optional[str] = api_key.strip() if api_key else None
        if base_url is None:
            base_url = os.environ.get(C.BASE_URL_ENV) or C.DEFAULT_BASE_URL
        self.base_url = str(base_url).rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.max_retries = max_retries
        self._default_headers = dict(default_headers or {})
        self._rate_limit: Optional[RateLimitInfo] = None

    # -- identity --------------------------------------------------------------------

    def _settings(self) -> dict[str, Any]:
        """The arguments that build a client of the other flavour for the same account."""
        return dict(
            api_key=self._api_key,
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=self.max_retries,
            default_headers=self._default_headers,
        )

    @property
    def rate_limit(self) -> Optional[RateLimitInfo]:
        """The ``X-RateLimit-*`` headers of the last response, or ``None`` before any."""
        return self._rate_limit

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_key={mask_key(self._api_key)!r})"

    def _check_key(self) -> str:
        """Refuse a missing or malformed key before sending, so it costs no request."""
        key = self._api_key
        if not key:
            raise AuthenticationError(
                f"{C.INVALID_KEY_MESSAGE}: pass api_key=... or set the {C.API_KEY_ENV} environment variable",
                code="invalid_api_key",
            )
        if not C.KEY_PATTERN.fullmatch(key):
            raise AuthenticationError(
                f"{C.WRONG_KEY_FORMAT_MESSAGE}: a MemLayer API key is '{C.KEY_PREFIX}' followed by "
                f"letters and digits; pass api_key=... or set {C.API_KEY_ENV}",
                code="wrong_key_format",
            )
        return key

    # -- request building ------------------------------------------------------------

    def _headers(self, call: Call) -> dict[str, str]:
        headers = {
            "Accept": "application/json",
            "User-Agent": f"memlayer-integrations/{__version__}",
            **self._default_headers,
            C.API_KEY_HEADER: self._check_key(),
        }
        if call.json is not None:
            headers["Content-Type"] = "application/json"
        if call.idempotency_key:
            headers[C.IDEMPOTENCY_HEADER] = call.idempotency_key
        return headers

    def _build_request(self, http: Union[httpx.Client, httpx.AsyncClient], call: Call) -> httpx.Request:
        timeout = self.timeout if call.timeout is NOT_GIVEN else call.timeout
        if not isinstance(timeout, httpx.Timeout):
            timeout = httpx.Timeout(timeout)
        content = json.dumps(call.json, ensure_ascii=False).encode() if call.json is not None else None
        return http.build_request(
            call.method,
            self.base_url + C.API_PREFIX + call.path,
            params=call.params,
            content=content,
            headers=self._headers(call),
            timeout=timeout,
        )

    @staticmethod
    def _call(method: str, path: str, parse: Callable[[Any], Any], **kwargs: Any) -> Call:
        if method != "GET":
            kwargs.setdefault("idempotency_key", f"idem_{uuid.uuid4().hex}")
        return Call(method, path, parse, **kwargs)

    # -- operations: one definition each, sent by both clients ------------------------

    def _remember(self, content, user_id, agent_id, metadata, session_id, key, timeout) -> Call:
        body = _remember_body(content, user_id, agent_id, metadata, session_id, key)
        return self._call("POST", "/memories", _parse_memory, json=body, timeout=timeout)

    def _remember_many(self, items, user_id, agent_id, session_id, timeout) -> Call:
        body = _remember_many_body(items, user_id, agent_id, session_id)
        return self._call("POST", "/memories/batch", _parse_memories, json=body, timeout=timeout)

    def _recall(self, query, user_id, agent_id, limit, filters, session_id, offset, timeout) -> Call:
        body = _recall_body(query, user_id, agent_id, limit, filters, session_id, offset)
        return self._call("POST", "/memories/search", _parse_recalled, json=body, timeout=timeout)

    def _get(self, memory_id, timeout) -> Call:
        return self._call("GET", _memory_path(memory_id), _parse_memory, timeout=timeout)

    def _update(self, memory_id, content, metadata, timeout) -> Call:
        body = _update_body(content, metadata)
        return self._call("PATCH", _memory_path(memory_id), _parse_memory, json=body, timeout=timeout)

    def _forget(self, memory_id, timeout) -> Call:
        return self._call("DELETE", _memory_path(memory_id), _parse_nothing, timeout=timeout)

    def _forget_all(self, user_id, agent_id, session_id, keys, timeout) -> Call:
        params = _scope_params(user_id, agent_id, session_id, keys)
        return self._call("DELETE", "/memories", _parse_deleted, params=params, timeout=timeout)

    def _list_page(self, user_id, agent_id, session_id, filters, keys, page_size, cursor, timeout) -> Call:
        params = _scope_params(user_id, agent_id, session_id, keys)
        if filters is not None:
            params.append(("filters", json.dumps(dict(filters), separators=(",", ":"))))
        params.append(("limit", str(page_size)))
        if cursor:
            params.append(("cursor", cursor))
        return self._call("GET", "/memories", _parse_page, params=params, timeout=timeout)

    def _list_scopes(self, user_id, timeout) -> Call:
        params = [("user_id", user_id)] if user_id is not None else None
        return self._call("GET", "/scopes", _parse_scopes, params=params, timeout=timeout)

    def _usage(self, timeout) -> Call:
        return self._call("GET", "/usage", _parse_usage, timeout=timeout)

    def _batch(self, operations: Sequence[Mapping[str, Any]], timeout) -> Call:
        ops = [dict(o) for o in operations]
        for i, op in enumerate(ops):
            if op.get("op") not in _BATCH_PARSERS:
                raise ValueError(f"operations[{i}]: unknown op {op.get('op')!r}; build operations with Op")
        names = [o["op"] for o in ops]

        def parse(body: Any) -> list[Any]:
            results = body["results"]
            if len(results) != len(names):
                raise ValueError("batch answered a different number of results")
            return [_BATCH_PARSERS[n](r) for n, r in zip(names, results)]

        return self._call("POST", "/batch", parse, json={"operations": ops}, timeout=timeout)

    # -- responses and retries -------------------------------------------------------

    def _record_rate_limit(self, response: httpx.Response) -> None:
        h = response.headers
        if "x-ratelimit-limit" not in h:
            return

        def number(value: Optional[str]) -> Optional[int]:
            try:
                return int(value) if value is not None else None
            except ValueError:  # "unlimited"
                return None

        reset = number(h.get("x-ratelimit-reset"))
        self._rate_limit = RateLimitInfo(
            limit=number(h.get("x-ratelimit-limit")),
            remaining=number(h.get("x-ratelimit-remaining")),
            reset_at=datetime.fromtimestamp(reset, timezone.utc) if reset is not None else None,
        )

    def _process_response(self, call: Call, response: httpx.Response) -> Any:
        """Parse a success into the call's result, or return the error to raise or retry."""
        self._record_rate_limit(response)
        if response.status_code >= 400:
            return status_error_from_response(response)
        if response.status_code == 204 or call.parse is _parse_nothing:
            return call.parse(None)
        try:
            body = json.loads(response.content)
            return call.parse(body)
        except (ValueError, KeyError, TypeError, pydantic.ValidationError) as exc:
            kind = response.headers.get("content-type", "no content type").split(";")[0]
            return APIResponseValidationError(
                f"{call.method} {call.path}: HTTP {response.status_code} answer is not the expected "
                f"JSON ({kind}): {type(exc).__name__}",
                status_code=response.status_code,
                request_id=response.headers.get(C.REQUEST_ID_HEADER),
            )

    def _retry_delay(self, error: MemLayerError, attempt: int) -> Optional[float]:
        """Seconds to wait before retrying after ``error``, or ``None`` to raise it now.

        ``attempt`` counts retries already made (0 before the first retry).
        """
        if attempt >= self.max_retries:
            return None
        status = error.status_code
        if isinstance(error, APIConnectionError):
            retry_after = None  # the network blinked: worth another go
        elif isinstance(error, RateLimitError):
            # The daily quota resets hours away: sleeping on it would hang the agent.
            if error.is_daily_quota:
                return None
            retry_after = error.retry_after
            if retry_after is not None and retry_after > C.MAX_RETRY_AFTER:
                return None
        elif status == 408 or (status is not None and status >= 500):
            # Request timeout and server-side failures are transient by nature.
            retry_after = None
        else:
            # Other 4xx say the request itself is wrong; repeating it cannot help.
            return None
        if retry_after is not None:
            return retry_after
        backoff = min(C.INITIAL_RETRY_DELAY * (2**attempt), C.MAX_RETRY_DELAY)
        # Jitter spreads the retries of many clients that failed together.
        return backoff * (1 - 0.25 * random.random())

    @staticmethod
    def _request_error(exc: httpx.RequestError, call: Call) -> MemLayerError:
        """Turn an httpx failure into this package's error tree, keeping it as the cause."""
        what = f"{call.method} {call.path}"
        error: MemLayerError
        if isinstance(exc, httpx.TimeoutException):
            error = APITimeoutError(f"{what} timed out ({type(exc).__name__})")
        elif isinstance(exc, httpx.TransportError):
            error = APIConnectionError(f"{what} failed: could not reach MemLayer ({type(exc).__name__}: {exc})")
        else:
            # An answer came but could not be read: a body that does not decode (a proxy's
            # wrong Content-Encoding) or a redirect loop. Resending gets the same answer.
            error = APIResponseValidationError(f"{what}: unreadable answer ({type(exc).__name__}: {exc})")
        error.__cause__ = exc
        return error
