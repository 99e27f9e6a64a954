"""Everything the two clients share: configuration, request building, retry decisions,
response parsing and error mapping.

:class:`MemLayerClient` and :class:`AsyncMemLayerClient` (in ``_client.py``) only *send*:
each public method builds a :class:`Call` here and hands it to a send loop that asks this
module whether to retry. Keeping all decisions here means the sync and async clients cannot
drift apart. What each operation's body and result look like is in ``_operations.py``.
"""

from __future__ import annotations

import json
import math
import os
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Generic, TypeVar

import httpx
import pydantic

from . import _constants as C
from ._exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    MemLayerError,
    RateLimitError,
    status_error_from_response,
)
from ._logging import get_logger, mask_key
from ._models import Memory, RateLimitInfo, RecalledMemory, Scope, Usage

# Still imported from here by ``_adapter.turn_memory`` and the LlamaIndex adapters.
from ._operations import (  # noqa: F401
    BATCH_PARSERS,
    MemoryItem,
    Op,
    memory_path,
    normalize_item,
    parse_batched_memories,
    parse_deleted,
    parse_memories,
    parse_memory,
    parse_nothing,
    parse_page,
    parse_recalled,
    parse_scopes,
    parse_usage,
    recall_body,
    remember_body,
    remember_many_body,
    remember_many_requests,
    scope_params,
    update_body,
)
from ._version import __version__

log = get_logger("memlayer_integrations.client")

TimeoutTypes = float | httpx.Timeout | None

#: What a call's answer is parsed into.
T = TypeVar("T")


class _NotGiven:
    """Marks an argument that was not passed (``None`` means "no timeout" for ``timeout``)."""

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __bool__(self) -> bool:
        return False


NOT_GIVEN: Any = _NotGiven()

#: Paths whose parsed URL a client keeps (``BaseClient._url``).
_URL_CACHE_SIZE = 64


@dataclass(frozen=True)
class Call(Generic[T]):
    """One logical API call: what to send and how to read the answer (into a ``T``)."""

    method: str
    path: str
    parse: Callable[[Any], T]
    json: Any = None
    params: Sequence[tuple[str, str]] | None = None
    timeout: Any = NOT_GIVEN
    # Made once per logical call and resent on every retry, so a write whose first attempt
    # did reach the server is stored once.
    idempotency_key: str | None = field(default=None)


def _json_text(value: Any, what: str, path: str = "", **options: Any) -> str:
    """``value`` as JSON text, refusing NaN and infinities before anything is sent.

    ``json.dumps`` writes them as ``NaN`` and ``Infinity``, which are not JSON: the server
    would answer 400 ``invalid_json`` and the request would still count against the daily
    quota. So the same :class:`BadRequestError` is raised here, naming where the value is.
    """
    try:
        return json.dumps(value, allow_nan=False, **options)
    except ValueError as exc:
        if "Out of range float" not in str(exc):  # a circular reference, say
            raise
        where = _non_finite_at(value, path) or None
    raise BadRequestError(
        f"{what}: {where or 'a number'} is NaN or infinite, which JSON cannot carry; "
        "send a finite number, a string or null",
        code="invalid_json",
        field=where,
    )


def _non_finite_at(value: Any, path: str) -> str | None:
    """Where the first NaN or infinity in ``value`` is: ``metadata.score``, ``items[1].metadata.x``."""
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    if isinstance(value, Mapping):
        children = [(f"{path}.{k}" if path else str(k), v) for k, v in value.items()]
    elif isinstance(value, (list, tuple)):
        children = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
    else:
        return None
    for where, child in children:
        found = _non_finite_at(child, where)
        if found is not None:
            return found
    return None


class BaseClient:
    """Configuration and pure logic shared by the sync and async clients.

    Precedence for every setting: the argument, then the environment variable, then the
    default. Nothing here performs I/O.
    """

    #: Whether the httpx client is the client's own (made without ``http_client=``).
    _owns_http: bool

    def __init__(
        self,
        api_key: str | pydantic.SecretStr | None,
        base_url: str | None,
        timeout: TimeoutTypes,
        max_retries: int,
        default_headers: Mapping[str, str] | None,
    ) -> None:
        if api_key is None:
            api_key = os.environ.get(C.API_KEY_ENV) or None
        if api_key is not None and not isinstance(api_key, str):
            # pydantic's SecretStr, or anything else that keeps a secret the same way.
            getter = getattr(api_key, "get_secret_value", None)
            if getter is None:
                raise TypeError("api_key must be a str")
            api_key = str(getter())
        self._api_key: str | None = api_key.strip() if api_key else None
        # Where the URL came from, so that "could not reach" can say which setting to fix.
        self._base_url_source = "from base_url="
        if base_url is None:
            base_url = os.environ.get(C.BASE_URL_ENV) or None
            self._base_url_source = f"from ${C.BASE_URL_ENV}"
        if base_url is None:
            base_url = C.DEFAULT_BASE_URL
            self._base_url_source = f"the default, as ${C.BASE_URL_ENV} is not set"
        self.base_url = str(base_url).rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.max_retries = max_retries
        self._default_headers = dict(default_headers or {})
        #: The last response's ``X-RateLimit-*`` values (limit, remaining, reset), read into
        #: a :class:`RateLimitInfo` only when :attr:`rate_limit` is asked for.
        self._rate_limit_headers: tuple[str | None, str | None, str | None] | None = None
        #: The key as last checked by :meth:`_check_key` (so it is matched once, not per call).
        self._checked_key: str | None = None
        #: Parsed URLs of the paths called so far (see :meth:`_url`).
        self._urls: dict[str, httpx.URL] = {}
        #: Our own httpx client's headers merged with ours, per (key, has a JSON body): see
        #: :meth:`_build_request`.
        self._merged_headers: dict[tuple[str, bool], httpx.Headers] = {}

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
    def rate_limit(self) -> RateLimitInfo | None:
        """The ``X-RateLimit-*`` headers of the last response, or ``None`` before any."""
        if self._rate_limit_headers is None:
            return None
        limit, remaining, reset_header = self._rate_limit_headers

        def number(value: str | None) -> int | None:
            try:
                return int(value) if value is not None else None
            except ValueError:  # "unlimited"
                return None

        reset = number(reset_header)
        return RateLimitInfo(
            limit=number(limit),
            remaining=number(remaining),
            reset_at=datetime.fromtimestamp(reset, timezone.utc) if reset is not None else None,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_key={mask_key(self._api_key)!r})"

    def _check_key(self) -> str:
        """Refuse a missing or malformed key before sending, so it costs no request."""
        key = self._api_key
        if key is not None and key is self._checked_key:
            return key
        if not key:
            raise AuthenticationError(
                f"invalid or missing API key: no key was given; pass api_key=... or set the {C.API_KEY_ENV} environment variable",
                code="invalid_api_key",
            )
        if not C.KEY_PATTERN.fullmatch(key):
            raise AuthenticationError(
                f"{C.WRONG_KEY_FORMAT_MESSAGE}; pass api_key=... or set {C.API_KEY_ENV}",
                code="wrong_key_format",
            )
        self._checked_key = key
        return key

    # -- request building ------------------------------------------------------------

    def _headers(self, call: Call[Any]) -> dict[str, str]:
        headers = self._fixed_headers(call.json is not None)
        if call.idempotency_key:
            headers[C.IDEMPOTENCY_HEADER] = call.idempotency_key
        return headers

    def _fixed_headers(self, with_json: bool) -> dict[str, str]:
        """The headers every request sends (``Content-Type`` with a JSON body)."""
        headers = {
            "Accept": "application/json",
            "User-Agent": f"memlayer-integrations/{__version__}",
            **self._default_headers,
            C.API_KEY_HEADER: self._check_key(),
        }
        if with_json:
            headers["Content-Type"] = "application/json"
        return headers

    def _build_request(
        self, http: httpx.Client | httpx.AsyncClient, call: Call[Any]
    ) -> httpx.Request:
        timeout = self.timeout if call.timeout is NOT_GIVEN else call.timeout
        if not isinstance(timeout, httpx.Timeout):
            timeout = httpx.Timeout(timeout)
        content = None
        if call.json is not None:
            content = _json_text(
                call.json, f"{call.method} {call.path}", ensure_ascii=False
            ).encode()
        url = self._url(call.path)
        params = tuple(call.params) if call.params is not None else None
        if not self._owns_http:
            return http.build_request(
                call.method,
                url,
                params=params,
                content=content,
                headers=self._headers(call),
                timeout=timeout,
            )
        # Our own client has no base URL, cookies or params to merge, only its default
        # headers: the request build_request would make, with the merge of the headers
        # (two thirds of its cost) done once per key and kind of request.
        kind = (self._check_key(), call.json is not None)
        merged = self._merged_headers.get(kind)
        if merged is None:
            merged = httpx.Headers(http.headers)
            merged.update(self._fixed_headers(call.json is not None))
            self._merged_headers[kind] = merged
        headers = httpx.Headers(merged)
        if call.idempotency_key:
            headers[C.IDEMPOTENCY_HEADER] = call.idempotency_key
        return httpx.Request(
            call.method,
            url,
            params=params,
            content=content,
            headers=headers,
            extensions={"timeout": timeout.as_dict()},
        )

    def _url(self, path: str) -> httpx.URL:
        """The URL of an API path, parsed once: parsing a URL is a good part of what
        building a small request costs. Paths naming a memory are many; past
        ``_URL_CACHE_SIZE`` paths the rest are parsed each time."""
        url = self._urls.get(path)
        if url is None:
            url = httpx.URL(self.base_url + C.API_PREFIX + path)
            if len(self._urls) < _URL_CACHE_SIZE:
                self._urls[path] = url
        return url

    @staticmethod
    def _call(method: str, path: str, parse: Callable[[Any], T], **kwargs: Any) -> Call[T]:
        if method != "GET":
            kwargs.setdefault("idempotency_key", f"idem_{uuid.uuid4().hex}")
        return Call(method, path, parse, **kwargs)

    # -- operations: one definition each, sent by both clients ------------------------

    def _remember(
        self,
        content: str,
        user_id: str,
        agent_id: str,
        metadata: Mapping[str, Any] | None,
        session_id: str | None,
        key: str | None,
        ttl: float | None,
        expires_at: datetime | str | None,
        timeout: TimeoutTypes,
    ) -> Call[Memory]:
        body = remember_body(content, user_id, agent_id, metadata, session_id, key, ttl, expires_at)
        return self._call("POST", "/memories", parse_memory, json=body, timeout=timeout)

    def _remember_many(
        self,
        items: Sequence[MemoryItem],
        user_id: str,
        agent_id: str,
        session_id: str | None,
        timeout: TimeoutTypes,
    ) -> list[tuple[int, Call[list[Memory]]]]:
        """``(items stored, call)`` for each request of a ``remember_many``, in order."""
        return [
            (
                r.count,
                self._call(
                    "POST",
                    r.path,
                    parse_memories if r.path == "/memories/batch" else parse_batched_memories,
                    json=r.body,
                    timeout=timeout,
                ),
            )
            for r in remember_many_requests(items, user_id, agent_id, session_id)
        ]

    def _recall(
        self,
        query: str,
        user_id: str,
        agent_id: str | None,
        limit: int,
        filters: Mapping[str, Any] | None,
        session_id: str | None,
        offset: int,
        explain: bool,
        agent_prefix: str | None,
        timeout: TimeoutTypes,
    ) -> Call[list[RecalledMemory]]:
        body = recall_body(
            query, user_id, agent_id, limit, filters, session_id, offset, explain, agent_prefix
        )
        return self._call("POST", "/memories/search", parse_recalled, json=body, timeout=timeout)

    def _get(self, memory_id: str, timeout: TimeoutTypes) -> Call[Memory]:
        return self._call("GET", memory_path(memory_id), parse_memory, timeout=timeout)

    def _update(
        self,
        memory_id: str,
        content: str | None,
        metadata: Mapping[str, Any] | None,
        timeout: TimeoutTypes,
    ) -> Call[Memory]:
        body = update_body(content, metadata)
        return self._call("PATCH", memory_path(memory_id), parse_memory, json=body, timeout=timeout)

    def _forget(self, memory_id: str, timeout: TimeoutTypes) -> Call[None]:
        return self._call("DELETE", memory_path(memory_id), parse_nothing, timeout=timeout)

    def _forget_all(
        self,
        user_id: str,
        agent_id: str | None,
        session_id: str | None,
        keys: Sequence[str] | None,
        timeout: TimeoutTypes,
    ) -> Call[int]:
        params = scope_params(user_id, agent_id, session_id, keys)
        return self._call("DELETE", "/memories", parse_deleted, params=params, timeout=timeout)

    def _list_page(
        self,
        user_id: str,
        agent_id: str | None,
        session_id: str | None,
        filters: Mapping[str, Any] | None,
        keys: Sequence[str] | None,
        agent_prefix: str | None,
        page_size: int,
        cursor: str | None,
        timeout: TimeoutTypes,
    ) -> Call[tuple[list[Memory], str | None]]:
        params = scope_params(user_id, agent_id, session_id, keys)
        if agent_prefix is not None:
            params.append(("agent_prefix", agent_prefix))
        if filters is not None:
            filters_json = _json_text(
                dict(filters), "GET /memories", "filters", separators=(",", ":")
            )
            params.append(("filters", filters_json))
        params.append(("limit", str(page_size)))
        if cursor:
            params.append(("cursor", cursor))
        return self._call("GET", "/memories", parse_page, params=params, timeout=timeout)

    @staticmethod
    def _next_cursor(cursor: str | None, seen: set[str]) -> str | None:
        """The cursor to ask for the next page with, or ``None`` after the last page.

        ``seen`` holds the cursors of this listing so far. A server that hands back one of
        them would make ``list_memories`` fetch the same pages forever; stop instead.
        """
        if not cursor:
            return None
        if cursor in seen:
            raise APIResponseValidationError(
                f"GET /memories: the server sent the page cursor {cursor!r} a second time; "
                "stopping the listing rather than fetching the same pages forever"
            )
        seen.add(cursor)
        return cursor

    def _list_scopes(
        self, user_id: str | None, agent_prefix: str | None, timeout: TimeoutTypes
    ) -> Call[list[Scope]]:
        given = [("user_id", user_id), ("agent_prefix", agent_prefix)]
        params = [(name, value) for name, value in given if value is not None] or None
        return self._call("GET", "/scopes", parse_scopes, params=params, timeout=timeout)

    def _usage(self, timeout: TimeoutTypes) -> Call[Usage]:
        return self._call("GET", "/usage", parse_usage, timeout=timeout)

    def _batch(
        self, operations: Sequence[Mapping[str, Any]], timeout: TimeoutTypes
    ) -> Call[list[Any]]:
        ops = [dict(o) for o in operations]
        for i, op in enumerate(ops):
            if op.get("op") not in BATCH_PARSERS:
                raise ValueError(
                    f"operations[{i}]: unknown op {op.get('op')!r}; build operations with Op"
                )
        names = [o["op"] for o in ops]

        def parse(body: Any) -> list[Any]:
            results = body["results"]
            if len(results) != len(names):
                raise ValueError("batch answered a different number of results")
            return [BATCH_PARSERS[n](r) for n, r in zip(names, results, strict=True)]

        return self._call("POST", "/batch", parse, json={"operations": ops}, timeout=timeout)

    # -- responses and retries -------------------------------------------------------

    def _record_rate_limit(self, response: httpx.Response) -> None:
        # Kept as text: every response carries them, few callers look (see rate_limit).
        h = response.headers
        limit = h.get("x-ratelimit-limit")
        if limit is not None:
            self._rate_limit_headers = (
                limit,
                h.get("x-ratelimit-remaining"),
                h.get("x-ratelimit-reset"),
            )

    def _process_response(self, call: Call[T], response: httpx.Response) -> T | MemLayerError:
        """Parse a success into the call's result, or return the error to raise or retry."""
        self._record_rate_limit(response)
        if response.status_code >= 400:
            error = status_error_from_response(response)
            if isinstance(error, AuthenticationError):
                # A key refused by the wrong server (a forgotten MEMLAYER_BASE_URL sends a
                # local key to the hosted service) looks like a bad key: say where it went.
                error.message += f" (sent to {self.base_url}, {self._base_url_source})"
                error.args = (error.message,)
            return error
        if response.status_code == 204 or call.parse is parse_nothing:
            return call.parse(None)
        try:
            body = json.loads(response.content)
            return call.parse(body)
        except (ValueError, KeyError, TypeError, pydantic.ValidationError) as exc:
            kind = response.headers.get("content-type", "no content type").split(";")[0]
            # Often a base URL that points at something other than MemLayer: name it.
            return APIResponseValidationError(
                f"{call.method} {call.path}: HTTP {response.status_code} answer from "
                f"{self.base_url} ({self._base_url_source}) is not the expected JSON ({kind}): "
                f"{type(exc).__name__}; check that this URL is a MemLayer server",
                status_code=response.status_code,
                request_id=response.headers.get(C.REQUEST_ID_HEADER),
            )

    def _retry_delay(self, error: MemLayerError, attempt: int) -> float | None:
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
            return float(retry_after)
        backoff = min(C.INITIAL_RETRY_DELAY * 2.0**attempt, C.MAX_RETRY_DELAY)
        # Jitter spreads the retries of many clients that failed together.
        return backoff * (1 - 0.25 * random.random())

    def _closed_error(self) -> MemLayerError:
        """What using a client after ``close()`` raises, instead of httpx's ``RuntimeError``."""
        return MemLayerError(
            f"this {type(self).__name__} (for {self.base_url}) is closed, so it cannot send "
            "requests; build a new client, or close it only when you are done with it"
        )

    def _request_error(self, exc: httpx.RequestError, call: Call[Any]) -> MemLayerError:
        """Turn an httpx failure into this package's error tree, keeping it as the cause.

        Transport errors name the URL that was tried and where it came from: a forgotten
        ``MEMLAYER_BASE_URL`` otherwise looks like an outage of the hosted service.
        """
        what = f"{call.method} {call.path}"
        where = f"{self.base_url} ({self._base_url_source})"
        error: MemLayerError
        if isinstance(exc, httpx.TimeoutException):
            error = APITimeoutError(
                f"{what} timed out ({type(exc).__name__}) at {where}; the server is slow or "
                "unreachable: retry later, or pass a longer timeout="
            )
        elif isinstance(exc, httpx.TransportError):
            error = APIConnectionError(
                f"{what} failed: could not reach MemLayer at {where} "
                f"({type(exc).__name__}: {exc}); check that the server is running and that "
                f"base_url or ${C.BASE_URL_ENV} points to it"
            )
        else:
            # An answer came but could not be read: a body that does not decode (a proxy's
            # wrong Content-Encoding) or a redirect loop. Resending gets the same answer.
            error = APIResponseValidationError(
                f"{what}: unreadable answer from {self.base_url} ({type(exc).__name__}: {exc})"
            )
        scrub_key(exc)
        error.__cause__ = exc
        return error


def scrub_key(exc: BaseException) -> None:
    """Mask the API key in every httpx request reachable from ``exc`` and its chain.

    httpx masks ``Authorization`` but not ``X-API-Key``, and its errors keep the request
    they failed on (``exc.request.headers``): an error tracker that records an exception's
    attributes or a frame's locals would store the key. The request objects are masked in
    place, so every reference to them (the send loop's ``request`` local too) is masked.
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        requests: list[httpx.Request | None] = []
        if isinstance(current, httpx.RequestError):
            requests.append(current._request)
        if isinstance(current, httpx.HTTPStatusError):
            requests += [current.request, current.response.request]
        for request in requests:
            if request is not None and C.API_KEY_HEADER in request.headers:
                # Header values are ASCII: the mask's ellipsis is spelled with dots here.
                masked = mask_key(request.headers[C.API_KEY_HEADER]).replace("…", "...")
                request.headers[C.API_KEY_HEADER] = masked
        pending += [current.__cause__, current.__context__]
