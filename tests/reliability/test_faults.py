"""Faults: whatever goes wrong between the client and the server ends in success after a
bounded number of retries, or in the right error of the package's tree; never in a hang, a
bare httpx or ``ValueError`` exception, or a write stored twice.

The faults are played two ways: by ``httpx.MockTransport`` scripts (``tests/client/_support``),
which give any answer or raise any transport error, and by :class:`FaultyServer`, a loopback
server that resets connections, hangs and answers late on a real socket, in front of the
real local server when a write must reach it before its answer is lost. Retry sleeps are
recorded, never slept (``sleeps``). How long the clients wait and what they resend is
pinned in ``tests/client/test_retries.py``.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from memlayer_integrations import (
    APIConnectionError,
    APIResponseValidationError,
    APITimeoutError,
    AsyncMemLayerClient,
    BadRequestError,
    InternalServerError,
    MemLayerClient,
    Op,
    PermissionDeniedError,
    RateLimitError,
    _constants,
)
from tests.client._support import Script, call, collect, error_response, usage_json

from ._faulty import (
    FORWARD,
    FORWARD_THEN_HANG,
    FORWARD_THEN_RESET,
    HANG,
    RESET,
    SLOW,
    TRUNCATE,
    FaultyServer,
    closed_port_url,
)

# Nothing here may hang: every fault ends within the clients' timeouts and bounded retries.
pytestmark = pytest.mark.timeout(60)

OK_USAGE = httpx.Response(200, json=usage_json())
HTML = b"<html><body><h1>502 Bad Gateway</h1>nginx</body></html>"


def server_error(status: int = 503) -> httpx.Response:
    return error_response(status, "internal_error", "try again")


# -- scripted answers: what is retried, and what it ends as -------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        server_error(500),
        server_error(502),
        server_error(503),
        error_response(408, "timeout"),
        error_response(429, "rate_limited", headers={"Retry-After": "1"}),
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("read timed out"),
        httpx.RemoteProtocolError("peer closed connection"),
        error_response(429, "rate_limited"),  # no Retry-After: backs off
        httpx.Response(
            502, content=HTML, headers={"Content-Type": "text/html"}
        ),  # a proxy's error page
    ],
    ids=[
        "500",
        "502",
        "503",
        "408",
        "429-rate-limited",
        "connect",
        "read-timeout",
        "protocol",
        "429-no-retry-after",
        "502-html",
    ],
)
async def test_transient_failures_are_retried(make_client, sleeps, failure):
    script = Script(failure, OK_USAGE)
    client = make_client(script)
    usage = await call(client, "usage")
    assert usage.plan == "free"
    assert len(script.requests) == 2
    assert len(sleeps) == 1


@pytest.mark.parametrize("max_retries", [0, 1, 2, 4])
async def test_gives_up_after_max_retries(make_client, sleeps, max_retries):
    script = Script(server_error())
    client = make_client(script, max_retries=max_retries)
    with pytest.raises(InternalServerError):
        await call(client, "usage")
    assert len(script.requests) == max_retries + 1
    assert len(sleeps) == max_retries


async def test_two_retries_by_default(make_client, sleeps):
    script = Script(httpx.ConnectError("down"))
    with pytest.raises(APIConnectionError):
        await call(make_client(script), "usage")
    assert len(script.requests) == 1 + _constants.DEFAULT_MAX_RETRIES == 3


@pytest.mark.parametrize("retry_after", ["3600", "5", None])
async def test_daily_quota_is_never_retried(make_client, sleeps, retry_after):
    headers = {"Retry-After": retry_after} if retry_after else {}
    script = Script(
        error_response(429, "daily_quota_exceeded", "daily quota exceeded", headers=headers),
        OK_USAGE,
    )
    client = make_client(script, max_retries=5)
    with pytest.raises(RateLimitError) as info:
        await call(client, "usage")
    assert info.value.is_daily_quota
    assert info.value.code == "daily_quota_exceeded"
    assert info.value.retry_after == (float(retry_after) if retry_after else None)
    assert len(script.requests) == 1
    assert sleeps == []


# -- scripted answers: timeouts and connection errors ---------------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ReadTimeout("read"),
        httpx.ConnectTimeout("connect"),
        httpx.WriteTimeout("w"),
        httpx.PoolTimeout("p"),
    ],
)
async def test_a_timeout_ends_as_api_timeout_error_after_the_retries(make_client, sleeps, exc):
    script = Script(exc)
    with pytest.raises(APITimeoutError) as info:
        await call(
            make_client(script, max_retries=2), "remember", "x", user_id="u1", agent_id="bot"
        )
    assert isinstance(info.value, APIConnectionError)
    assert info.value.status_code is None
    assert "POST /memories" in str(info.value)
    assert isinstance(info.value.__cause__, type(exc))
    assert len(script.requests) == 3 and len(sleeps) == 2


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx.ReadError("reset"),
        httpx.RemoteProtocolError("closed"),
        httpx.ProxyError("proxy says no"),
    ],
)
async def test_connection_errors_end_as_api_connection_error(make_client, sleeps, exc):
    script = Script(exc)
    with pytest.raises(APIConnectionError) as info:
        await call(make_client(script, max_retries=1), "usage")
    assert not isinstance(info.value, APITimeoutError)
    assert info.value.status_code is None and info.value.request_id is None
    assert len(script.requests) == 2


async def test_a_4xx_after_a_retry_is_raised_as_itself(make_client, sleeps):
    script = Script(httpx.ConnectError("blip"), error_response(400, "bad_request", "no"))
    with pytest.raises(BadRequestError):
        await call(make_client(script), "usage")
    assert len(script.requests) == 2


# -- scripted answers that are not the contract's (a proxy, broken JSON) --------------------


async def test_html_error_page_from_a_proxy_is_the_status_error(make_client, sleeps):
    answer = httpx.Response(502, content=HTML, headers={"Content-Type": "text/html"})
    client = make_client(Script(answer), max_retries=0)
    with pytest.raises(InternalServerError) as info:
        await call(client, "usage")
    assert info.value.status_code == 502
    assert info.value.code is None
    assert "text/html" in info.value.message
    assert "nginx" not in info.value.message  # the page is not dumped into the message


async def test_html_on_a_4xx_is_the_status_error(make_client):
    answer = httpx.Response(403, content=HTML, headers={"Content-Type": "text/html"})
    client = make_client(Script(answer))
    with pytest.raises(PermissionDeniedError) as info:
        await call(client, "usage")
    assert info.value.status_code == 403


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, content=HTML, headers={"Content-Type": "text/html"}),
        httpx.Response(
            200, content=b'{"plan": "free", ', headers={"Content-Type": "application/json"}
        ),
        httpx.Response(200, json={"plan": "free"}),  # valid JSON, wrong shape
        httpx.Response(200, json=["not", "an", "object"]),
        httpx.Response(200, content=b""),
    ],
    ids=["html", "truncated-json", "missing-fields", "json-array", "empty"],
)
async def test_a_success_that_is_not_the_contract_is_a_validation_error(make_client, answer):
    script = Script(answer)
    client = make_client(script)
    with pytest.raises(APIResponseValidationError) as info:
        await call(client, "usage")
    assert info.value.status_code == 200
    assert len(script.requests) == 1  # not retried: the same answer would come back


async def test_a_body_that_does_not_decode_is_a_validation_error(make_client):
    # A proxy that says gzip and sends something else: httpx fails while decoding.
    answer = httpx.Response(
        200,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        stream=httpx.ByteStream(b"definitely not gzip"),
    )
    client = make_client(Script(answer))
    with pytest.raises(APIResponseValidationError):
        await call(client, "usage")


async def test_a_redirect_loop_is_a_validation_error(flavor, fake_key):
    def loop(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": str(request.url)})

    transport = httpx.MockTransport(loop)
    if flavor == "sync":
        client = MemLayerClient(
            fake_key,
            base_url="http://memlayer.test",
            http_client=httpx.Client(transport=transport, follow_redirects=True),
        )
    else:
        client = AsyncMemLayerClient(
            fake_key,
            base_url="http://memlayer.test",
            http_client=httpx.AsyncClient(transport=transport, follow_redirects=True),
        )
    with pytest.raises(APIResponseValidationError, match="TooManyRedirects"):
        await call(client, "usage")


async def test_a_redirect_not_followed_is_a_validation_error(make_client):
    client = make_client(
        Script(httpx.Response(301, headers={"Location": "https://elsewhere.test/"}))
    )
    with pytest.raises(APIResponseValidationError) as info:
        await call(client, "usage")
    assert info.value.status_code == 301


# -- real sockets: refused, reset, hung, slow -----------------------------------------------


@pytest.fixture
async def live(flavor: str):
    """``live(url, key, **kwargs)``: a real client of the test's flavour, closed afterwards."""
    made: list[Any] = []

    def make(url: str, key: str, **kwargs: Any) -> Any:
        cls = MemLayerClient if flavor == "sync" else AsyncMemLayerClient
        made.append(cls(api_key=key, base_url=url, **kwargs))
        return made[-1]

    yield make
    for client in made:
        await call(client, "close")


async def test_connection_refused_ends_as_api_connection_error(live, fake_key, sleeps):
    client = live(closed_port_url(), fake_key, max_retries=2)
    with pytest.raises(APIConnectionError) as info:
        await call(client, "usage")
    assert not isinstance(info.value, APITimeoutError)
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert len(sleeps) == 2  # tried three times, then gave up


@pytest.mark.parametrize(
    "fault", [RESET, TRUNCATE, HANG], ids=["reset", "reset-mid-body", "no-answer"]
)
async def test_a_fault_once_is_retried_to_success(live, fake_key, sleeps, fault):
    with FaultyServer((fault, FORWARD)) as server:
        usage = await call(live(server.url, fake_key, timeout=0.5), "usage")
    assert usage.plan == "free"
    assert len(server.seen) == 2 and len(sleeps) == 1


@pytest.mark.parametrize(
    ("fault", "error"),
    [(RESET, APIConnectionError), (TRUNCATE, APIConnectionError), (HANG, APITimeoutError)],
    ids=["reset", "reset-mid-body", "no-answer"],
)
async def test_a_fault_that_persists_ends_as_its_error_after_bounded_retries(
    live, fake_key, sleeps, fault, error
):
    with FaultyServer((fault,)) as server, pytest.raises(error) as info:
        await call(live(server.url, fake_key, timeout=0.3, max_retries=2), "usage")
    assert info.value.status_code is None and "GET /usage" in str(info.value)
    assert len(server.seen) == 3 and len(sleeps) == 2


async def test_a_slow_answer_within_the_timeout_is_waited_for_not_retried(live, fake_key, sleeps):
    with FaultyServer((SLOW,), delay=0.3) as server:
        usage = await call(live(server.url, fake_key, timeout=5.0), "usage")
    assert usage.plan == "free"
    assert len(server.seen) == 1 and sleeps == []


# -- real sockets: a write that reached the server, whose answer was lost -------------------


async def _prepare(client: Any) -> dict[str, Any]:
    """Memories for the writes below to change, made directly (not through the faulty server)."""
    a = await call(client, "remember", "to update", user_id="u1", agent_id="bot")
    b = await call(client, "remember", "to forget", user_id="u1", agent_id="bot")
    await call(client, "remember", "also forgotten", user_id="u2", agent_id="bot")
    return {"update": a.id, "forget": b.id}


WRITES = {
    "remember": lambda ids: ("remember", ("stored once",), {"user_id": "u1", "agent_id": "bot"}),
    "remember_many": lambda ids: (
        "remember_many",
        (["first of two", "second of two"],),
        {"user_id": "u1", "agent_id": "bot"},
    ),
    "update": lambda ids: ("update", (ids["update"],), {"content": "updated once"}),
    "forget": lambda ids: ("forget", (ids["forget"],), {}),
    "forget_all": lambda ids: ("forget_all", (), {"user_id": "u2"}),
    "batch": lambda ids: (
        "batch",
        ([Op.remember("batched once", user_id="u1", agent_id="bot"), Op.usage()],),
        {},
    ),
}
#: The contents of u1's memories once each write happened exactly once.
AFTER = {
    "remember": ["to update", "to forget", "stored once"],
    "remember_many": ["to update", "to forget", "first of two", "second of two"],
    "update": ["updated once", "to forget"],
    "forget": ["to update"],
    "forget_all": ["to update", "to forget"],
    "batch": ["to update", "to forget", "batched once"],
}


@pytest.mark.parametrize(
    "fault", [FORWARD_THEN_HANG, FORWARD_THEN_RESET], ids=["read-timeout", "reset"]
)
@pytest.mark.parametrize("write", list(WRITES))
async def test_a_write_whose_answer_was_lost_is_done_exactly_once(
    live, base_url, api_key, sleeps, write, fault
):
    direct = live(base_url, api_key)
    ids = await _prepare(direct)
    method, args, kwargs = WRITES[write](ids)
    with FaultyServer((fault, FORWARD), upstream=base_url) as server:
        # 1 s: long enough that the retry's real answer never times out on a busy machine
        result = await call(live(server.url, api_key, timeout=1.0), method, *args, **kwargs)
    # The retry carried the first attempt's Idempotency-Key, and the server answered it from
    # the first attempt: a forget is not a 404 the second time, forget_all counts what it deleted.
    assert len(server.seen) == 2 and len(sleeps) == 1
    keys = [s.headers.get("Idempotency-Key") for s in server.seen]
    assert keys[0] and keys[0] == keys[1]
    if write == "forget_all":
        assert result == 1
    elif write == "forget":
        assert result is None
    stored = [m.content for m in await collect(direct.list_memories(user_id="u1"))]
    assert stored == AFTER[write]
    assert (await call(direct, "usage")).memories_stored == len(stored) + (write != "forget_all")
