"""Scripted transports and small helpers shared by the client tests.

Most client behaviour (error mapping, retries, headers, redaction) is pinned with
``httpx.MockTransport``: a :class:`Script` handler gives the answers (or transport errors)
it was scripted with and records every request it sees. The same test runs against the
sync and the async client through the ``flavor`` fixture and :func:`call`.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any

import httpx

BASE_URL = "http://memlayer.test"

Answer = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


def memory_json(n: int = 1, **overrides: Any) -> dict[str, Any]:
    body = {
        "id": f"mem_{n:032x}",
        "content": f"memory {n}",
        "user_id": "u1",
        "agent_id": "bot",
        "session_id": None,
        "key": None,
        "metadata": {},
        "created_at": "2026-11-27T18:40:00.123456Z",
        "updated_at": "2026-11-27T18:40:00.123456Z",
    }
    body.update(overrides)
    return body


def usage_json() -> dict[str, Any]:
    return {
        "plan": "free",
        "memories_stored": 12,
        "memories_limit": 500,
        "requests_today": 31,
        "requests_limit": 100,
        "resets_at": "2026-11-28T00:00:00Z",
    }


def error_response(
    status: int,
    code: str,
    message: str = "something went wrong",
    *,
    field: str | None = None,
    request_id: str = "req_0123456789abcdef",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    body = {"error": {"code": code, "message": message, "field": field}, "request_id": request_id}
    return httpx.Response(
        status, json=body, headers={"X-Request-Id": request_id, **(headers or {})}
    )


class Script:
    """A MockTransport handler that gives scripted answers in order and records requests.

    Each answer is a response, an exception to raise (``httpx.ReadTimeout`` ...), or a
    callable from request to response. The last answer repeats once the script runs out.
    """

    def __init__(self, *answers: Answer) -> None:
        if not answers:
            answers = (httpx.Response(200, json=usage_json()),)
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        index = min(len(self.requests), len(self.answers)) - 1
        answer = self.answers[index]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer) and not isinstance(answer, httpx.Response):
            return answer(request)
        # A Response can only be sent once (its stream is consumed): hand out copies.
        raw = b"".join(answer.stream)  # the bytes as sent, before any Content-Encoding
        return httpx.Response(
            answer.status_code, headers=answer.headers, stream=httpx.ByteStream(raw)
        )

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) if r.content else None for r in self.requests]

    def header(self, name: str) -> list[str | None]:
        return [r.headers.get(name) for r in self.requests]


async def call(client: Any, method: str, *args: Any, **kwargs: Any) -> Any:
    """Call ``method`` on either client flavour and return its result."""
    result = getattr(client, method)(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


async def collect(iterator: Any) -> list[Any]:
    """Drain a sync or async iterator into a list."""
    if hasattr(iterator, "__aiter__"):
        return [item async for item in iterator]
    return list(iterator)
